package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/internal/kafkatest"
)

// TestKcatInterop checks the broker against a client nobody here wrote:
// kcat (librdkafka) produces 1,000 messages and reads them back to the
// end; kgo must see the same messages at the same offsets.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (Debian: apt-get install -y kcat); skipping the librdkafka interop test")
	}
	b := startBroker(t, t.TempDir(), "--auto-create-topics", "--partitions", "2")
	const topic, count = "kcat-interop", 1000
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var in bytes.Buffer
	for i := range count {
		fmt.Fprintf(&in, "message-%04d\n", i)
	}
	produce := exec.CommandContext(ctx, kcat, "-P", "-b", b.addr, "-t", topic, "-X", "request.required.acks=-1")
	produce.Stdin = &in
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}

	consume := exec.CommandContext(ctx, kcat, "-C", "-b", b.addr, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\n")
	out, err := consume.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kcat -C: %v\n%s", err, stderr)
	}
	type at struct {
		p int32
		o int64
	}
	byKcat := map[at]string{}
	next := map[int32]int64{}
	lastMsg := map[int32]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 {
			t.Fatalf("kcat -C printed %q", line)
		}
		p, _ := strconv.ParseInt(f[0], 10, 32)
		o, _ := strconv.ParseInt(f[1], 10, 64)
		if o != next[int32(p)] {
			t.Fatalf("partition %d: offset %d after %d (not contiguous from 0)", p, o, next[int32(p)]-1)
		}
		next[int32(p)] = o + 1
		if f[2] <= lastMsg[int32(p)] {
			t.Fatalf("partition %d: %q after %q (producer order not kept)", p, f[2], lastMsg[int32(p)])
		}
		lastMsg[int32(p)] = f[2]
		byKcat[at{int32(p), o}] = f[2]
	}
	if len(byKcat) != count {
		t.Fatalf("kcat read %d messages back, produced %d", len(byKcat), count)
	}
	seen := map[string]bool{}
	for _, m := range byKcat {
		seen[m] = true
	}
	for i := range count {
		if m := fmt.Sprintf("message-%04d", i); !seen[m] {
			t.Fatalf("%s was produced by kcat but not read back", m)
		}
	}

	// kgo agrees with kcat on every offset.
	hws := highWatermarks(t, kafkatest.Client(t, b.addr), topic, 2)
	for _, r := range consumeAll(t, b.addr, topic, hws) {
		if got := byKcat[at{r.Partition, r.Offset}]; got != string(r.Value) {
			t.Fatalf("at %d/%d kgo read %q, kcat %q", r.Partition, r.Offset, r.Value, got)
		}
	}

	// kcat's metadata view: one broker, leader of both partitions.
	list := exec.CommandContext(ctx, kcat, "-L", "-b", b.addr, "-t", topic, "-J")
	lout, err := list.Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
		Topics []struct {
			Topic      string `json:"topic"`
			Partitions []struct {
				Partition int32 `json:"partition"`
				Leader    int32 `json:"leader"`
			} `json:"partitions"`
		} `json:"topics"`
	}
	if err := json.Unmarshal(lout, &md); err != nil {
		t.Fatalf("kcat -L -J printed %s: %v", lout, err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Name != b.addr || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 2 {
		t.Fatalf("kcat -L: %s", lout)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Leader != md.Brokers[0].ID {
			t.Fatalf("kcat -L: partition %d led by %d", p.Partition, p.Leader)
		}
	}
}
