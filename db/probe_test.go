package db

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// serve accepts connections on loopback and hands each to handle.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

// TestProbeRefusesNonKafka: an open port is not a broker.
func TestProbeRefusesNonKafka(t *testing.T) {
	closed := serve(t, func(net.Conn) {})
	garbage := serve(t, func(c net.Conn) {
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	})
	silent := serve(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // until the prober hangs up
	wrongID := serve(t, func(c net.Conn) {
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte{0, 0, 0, 6, 0, 0, 0, 9, 0, 0}) // correlation id 9
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	for name, addr := range map[string]string{
		"closes at once": closed, "speaks http": garbage, "never answers": silent,
		"wrong correlation id": wrongID, "nothing listening": refused,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := Probe(ctx, addr); err == nil {
				t.Fatalf("Probe(%s) = nil, want an error", addr)
			}
		})
	}
}

func TestNameOf(t *testing.T) {
	for id, want := range map[int32]string{1: "n1", 12: "n12", 0: "n0"} {
		if got := NameOf(id); got != want {
			t.Errorf("NameOf(%d) = %q, want %q", id, got, want)
		}
	}
}
