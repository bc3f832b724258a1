package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBrokerFlags(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout for code 0, stderr otherwise
	}{
		{"help", []string{"--help"}, 0, "--advertise"},
		{"unknown flag", []string{"--nope", "--data-dir", dir}, 254, "unknown flag: --nope"},
		{"no data dir", nil, 254, "--data-dir is required"},
		{"bad fsync", []string{"--data-dir", dir, "--fsync", "sometimes"}, 254, "fsync"},
		{"bad partitions", []string{"--data-dir", dir, "--partitions", "0"}, 254, "--partitions 0"},
		{"bad id", []string{"--data-dir", dir, "--id", "-3"}, 254, "--id -3"},
		{"bad listen", []string{"--data-dir", dir, "--listen", "nonsense"}, 254, "listen address \"nonsense\""},
		{"bad advertise", []string{"--data-dir", dir, "--advertise", "host:notaport"}, 254, "advertise address"},
		{"bad log format", []string{"--data-dir", dir, "--log-format", "xml"}, 254, "--log-format"},
		{"positional argument", []string{"--data-dir", dir, "extra"}, 254, "unexpected argument"},
		{"help lists the bugs", []string{"--help"}, 0, "hw-truncation"},
		{"help lists replication flags", []string{"--help"}, 0, "--replica-lag-time-max"},
		{"unknown bug", []string{"--data-dir", dir, "--bug", "early-ack", "--bug", "nope"}, 254, "unknown bug \"nope\"; known bugs: hw-truncation, early-ack, stale-leader"},
		{"lag below fetch wait", []string{"--data-dir", dir, "--replica-lag-time-max", "100ms"}, 254, "must exceed --replica-fetch-max-wait"},
		{"bad min ISR", []string{"--data-dir", dir, "--min-insync-replicas", "0"}, 254, "--min-insync-replicas 0"},
		{"bad replication factor", []string{"--data-dir", dir, "--default-replication-factor", "0"}, 254, "--default-replication-factor 0"},
		{"bad peer", []string{"--data-dir", dir, "--peer-kafka", "2:host:1"}, 254, "--peer-kafka"},
		{"id too large", []string{"--data-dir", dir, "--id", "70000"}, 254, "--id 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(garantiaBin, append([]string{"broker"}, tt.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr.String())
			}
			out := stderr.String()
			if tt.wantCode == 0 {
				out = stdout.String()
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Fatalf("output does not mention %q:\n%s", tt.wantOut, out)
			}
		})
	}
}

// TestSIGTERMShutsDownGracefully and a second broker on a locked data
// directory fails to start with an internal-error exit.
func TestSIGTERMShutsDownGracefully(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, "--log-format", "json")

	second := exec.Command(garantiaBin, "broker", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-file", filepath.Join(t.TempDir(), "second.log"))
	var stderr bytes.Buffer
	second.Stderr = &stderr
	second.Run()
	if code := second.ProcessState.ExitCode(); code != 255 || !strings.Contains(stderr.String(), "locked") {
		t.Fatalf("second broker on the same data directory: exit %d, stderr %q; want 255 naming the lock", code, stderr.String())
	}

	if code := b.stop(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !b.logContains(`"msg":"broker stopped"`) {
		t.Fatalf("no \"broker stopped\" log line after SIGTERM")
	}
}
