package server_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/garantia/garantia/broker/node"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/internal/leakcheck"
)

// TestShutdownStopsEverything starts a node, gives it busy connections
// (a parked long-poll fetch, an idle raw connection, a kgo client), ends
// its context and checks that Run returns promptly and that no goroutine
// of the broker is left.
func TestShutdownStopsEverything(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := node.Start(ctx, node.Config{ID: 1, Listen: "127.0.0.1:0", Store: storage.NewMemStore(), Partitions: 1, AutoCreateTopics: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr().String()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "s", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	parked := &rawConn{t: t}
	parked.c, err = net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer parked.c.Close()
	parked.send(fetchReq("s", 0, 1, 30000, 1, 1<<20, 1<<20), 1) // parks for 30s
	waitParked(t)

	start := time.Now()
	cancel()
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("node still running 5s after its context ended (a parked fetch must not hold shutdown)")
	}
	if err := n.Err(); err != nil {
		t.Fatalf("node stopped with %v", err)
	}
	t.Logf("shutdown took %v", time.Since(start))
	cl.Close()
	// leakcheck.Check proves, at the end, that no goroutine is left.
}

// waitParked waits until a fetch is parked in the broker: a goroutine
// waits inside handleFetch for the high watermark to move. Shutting down
// before that would test an idle connection, not a parked fetch.
func waitParked(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		if strings.Contains(string(buf[:runtime.Stack(buf, true)]), "broker/server.(*Server).handleFetch(") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no fetch parked in the broker 5s after it was sent")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRandomFramesNeverStopTheBroker throws seeded random frames (random
// keys, versions and bodies, some valid headers) at the broker over many
// connections and checks that it keeps serving a well-behaved client.
func TestRandomFramesNeverStopTheBroker(t *testing.T) {
	n := startNode(t, withAutoCreate(2), withMaxFrame(1<<16))
	rng := rand.New(rand.NewPCG(seed(t), 1))
	good := dialRaw(t, n)
	for i := range 200 {
		c, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, rng.IntN(200))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		if len(body) >= 4 && rng.IntN(2) == 0 {
			// A plausible header: a real key and version, so the body
			// decoders get exercised rather than the header check.
			binary.BigEndian.PutUint16(body, uint16(rng.IntN(70)))
			binary.BigEndian.PutUint16(body[2:], uint16(rng.IntN(14)))
		}
		size := uint32(len(body))
		if rng.IntN(10) == 0 {
			size = rng.Uint32() // a lying size prefix
		}
		var b []byte
		b = binary.BigEndian.AppendUint32(b, size)
		b = append(b, body...)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(b)
		// Read whatever comes back until the broker answers or closes.
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		c.Read(buf)
		c.Close()
		if i%20 == 0 {
			apiVersions(good, 3, int32(i))
		}
	}
	apiVersions(good, 3, 1000)
	cl := newClient(t, n, kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx10s(t), &kgo.Record{Topic: "after-fuzz", Value: []byte("still here")}).FirstErr(); err != nil {
		t.Fatalf("broker no longer serves after random frames: %v", err)
	}
}
