package server_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/node"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
	"github.com/garantia/garantia/internal/kafkatest"
)

// testLogger writes the broker's logs to the test log when -v is given.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type nodeOpt func(*node.Config)

func withAutoCreate(partitions int32) nodeOpt {
	return func(c *node.Config) { c.AutoCreateTopics, c.Partitions = true, partitions }
}

func withMaxFrame(n int) nodeOpt { return func(c *node.Config) { c.MaxFrameBytes = n } }

// startNode runs a broker node on a free loopback port over an in-memory
// store and stops it (checking that it stopped cleanly) at cleanup.
func startNode(t testing.TB, opts ...nodeOpt) *node.Node {
	t.Helper()
	cfg := node.Config{
		ID:         1,
		Listen:     "127.0.0.1:0",
		Store:      storage.NewMemStore(),
		Partitions: 1,
		Logger:     testLogger(t),
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := node.Start(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-n.Done():
			if err := n.Err(); err != nil {
				t.Errorf("node stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("node did not stop within 10s of its context ending")
		}
	})
	return n
}

// newClient is a kgo client for n, closed at cleanup.
func newClient(t testing.TB, n *node.Node, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kafkatest.Client(t, n.Addr().String(), opts...)
}

// createTopic creates a topic through the protocol.
func createTopic(t testing.TB, cl *kgo.Client, name string, partitions int32) {
	t.Helper()
	kafkatest.CreateTopic(t, cl, name, partitions)
}

// rawConn speaks the protocol by hand, for requests a real client would
// never send (bad versions, garbage, pipelines).
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, n *node.Node) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", n.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// frame encodes req with a v1/v2 request header.
func frame(req kmsg.Request, corr int32) []byte { return kafkatest.Frame(req, corr, "raw") }

func (r *rawConn) writeRaw(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) send(req kmsg.Request, corr int32) { r.t.Helper(); r.writeRaw(frame(req, corr)) }

// readFrame reads one response frame, returning its correlation id and
// the rest.
func (r *rawConn) readFrame(timeout time.Duration) (int32, []byte, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	b, err := wire.ReadFrame(r.br, 1<<30)
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("response frame of %d bytes", len(b))
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:], nil
}

// recv reads the response to a request of resp's kind and version, which
// must carry correlation id corr.
func (r *rawConn) recv(resp kmsg.Response, corr int32) {
	r.t.Helper()
	got, body, err := r.readFrame(10 * time.Second)
	if err != nil {
		r.t.Fatalf("reading the response to correlation id %d: %v", corr, err)
	}
	if got != corr {
		r.t.Fatalf("response correlation id %d, want %d (responses out of request order)", got, corr)
	}
	if err := resp.ReadFrom(kafkatest.ResponseBody(resp, body)); err != nil {
		r.t.Fatalf("decoding %s v%d response: %v", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
}

// expectClosed asserts that the broker closes the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	for {
		_, _, err := r.readFrame(5 * time.Second)
		if err == nil {
			continue // responses to earlier requests may still arrive
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("connection still open 5s after a request that must close it")
		}
		if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
			r.t.Logf("connection ended with %v", err)
		}
		return
	}
}
