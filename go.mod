module github.com/garantia/garantia

go 1.26.0

require (
	github.com/anishathalye/porcupine v1.3.1 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	github.com/twmb/franz-go v1.22.3 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.1 // indirect
)
