package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/internal/leakcheck"
)

// upstream is a real TCP server on loopback: it echoes what it reads and
// counts the connections it accepted.
type upstream struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.accepted++
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(u.close)
	return u
}

func (u *upstream) addr() string { return u.ln.Addr().String() }

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.accepted
}

func (u *upstream) close() {
	u.ln.Close()
	u.mu.Lock()
	for _, c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func newProxy(t *testing.T, upstream string) *Proxy {
	t.Helper()
	p, err := New(Options{Name: "test", Listen: "127.0.0.1:0", Upstream: upstream, Seed: 1, RetransmitTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readWithin reads exactly len(want) bytes within d and compares them.
func readWithin(t *testing.T, c net.Conn, want []byte, d time.Duration) {
	t.Helper()
	got := make([]byte, len(want))
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %q: %v", want, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// silentFor asserts that nothing arrives on c for d.
func silentFor(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	n, err := c.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read %q (%v) through a cut link, want silence", buf[:n], err)
	}
}

func TestForwards(t *testing.T) {
	leakcheck.Check(t)
	u := newUpstream(t)
	p := newProxy(t, u.addr())
	c := dial(t, p.Addr())
	for _, msg := range []string{"hello", "kafka", strings.Repeat("x", 200<<10)} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		readWithin(t, c, []byte(msg), 5*time.Second)
	}
	if p.Conns() != 1 {
		t.Errorf("Conns = %d, want 1", p.Conns())
	}
}

// TestCutHoldsThenDelivers: a cut stops an established stream in either
// direction; nothing is lost, and the held bytes arrive when it heals.
func TestCutHoldsThenDelivers(t *testing.T) {
	for _, d := range []Direction{Up, Down} {
		t.Run(d.String(), func(t *testing.T) {
			leakcheck.Check(t)
			u := newUpstream(t)
			p := newProxy(t, u.addr())
			c := dial(t, p.Addr())
			if _, err := c.Write([]byte("before")); err != nil {
				t.Fatal(err)
			}
			readWithin(t, c, []byte("before"), 5*time.Second)

			p.Cut(d, true)
			if cut, _ := p.Faults(d); !cut {
				t.Fatal("Faults does not report the cut")
			}
			if _, err := c.Write([]byte("during")); err != nil {
				t.Fatal(err)
			}
			silentFor(t, c, 300*time.Millisecond)

			p.Cut(d, false)
			readWithin(t, c, []byte("during"), 5*time.Second)
			if u.count() != 1 {
				t.Errorf("upstream accepted %d connections, want 1", u.count())
			}
		})
	}
}

// TestCutBlocksNewConnections: a connection made during a cut does not
// reach the upstream until the heal; one whose client gives up during the
// cut never does.
func TestCutBlocksNewConnections(t *testing.T) {
	leakcheck.Check(t)
	u := newUpstream(t)
	p := newProxy(t, u.addr())
	p.Cut(Down, true)

	gaveUp := dial(t, p.Addr())
	if _, err := gaveUp.Write([]byte("stale")); err != nil {
		t.Fatal(err)
	}
	waiting := dial(t, p.Addr())
	if _, err := waiting.Write([]byte("patient")); err != nil {
		t.Fatal(err)
	}
	silentFor(t, waiting, 200*time.Millisecond)
	if u.count() != 0 {
		t.Fatalf("upstream accepted %d connections during the cut", u.count())
	}
	waitConns(t, p, 2)
	gaveUp.Close()
	// The proxy drops the connection once it reads the FIN; healing
	// before that would test a client that had not given up yet.
	waitConns(t, p, 1)

	p.Cut(Down, false)
	readWithin(t, waiting, []byte("patient"), 5*time.Second)
	if u.count() != 1 {
		t.Errorf("upstream accepted %d connections after the heal, want 1 (the client that gave up must not arrive)", u.count())
	}
}

// TestLatency: every byte is delayed, and order is kept.
func TestLatency(t *testing.T) {
	leakcheck.Check(t)
	u := newUpstream(t)
	p := newProxy(t, u.addr())
	c := dial(t, p.Addr())
	const delay = 150 * time.Millisecond
	p.Shape(Up, db.Packet{Delay: delay, Jitter: 50 * time.Millisecond})
	start := time.Now()
	if _, err := c.Write([]byte("slow")); err != nil {
		t.Fatal(err)
	}
	readWithin(t, c, []byte("slow"), 5*time.Second)
	// A delay is a lower bound the proxy must honour (minus the jitter).
	if took := time.Since(start); took < delay-50*time.Millisecond {
		t.Errorf("round trip took %s with a %s±50ms delay", took, delay)
	}
	p.Shape(Up, db.Packet{})
	if _, pk := p.Faults(Up); !pk.IsZero() {
		t.Errorf("Faults after unshaping = %+v", pk)
	}
}

// TestLossStallsButKeepsTheStream: with loss and jitter on both
// directions, a numbered stream arrives complete and in order.
func TestLossStallsButKeepsTheStream(t *testing.T) {
	leakcheck.Check(t)
	u := newUpstream(t)
	p := newProxy(t, u.addr())
	pk := db.Packet{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.3}
	p.Shape(Up, pk)
	p.Shape(Down, pk)
	c := dial(t, p.Addr())
	const n = 300
	go func() {
		for i := uint32(0); i < n; i++ {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], i)
			if _, err := c.Write(b[:]); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := uint32(0); i < n; i++ {
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("after %d numbers: %v", i, err)
		}
		if got := binary.BigEndian.Uint32(b[:]); got != i {
			t.Fatalf("number %d arrived as %d: the stream lost or reordered bytes", i, got)
		}
	}
}

// TestLossStallsEveryChunk: loss 1 stalls each chunk at least one
// retransmission timeout.
func TestLossStallsEveryChunk(t *testing.T) {
	leakcheck.Check(t)
	u := newUpstream(t)
	p, err := New(Options{Name: "lossy", Listen: "127.0.0.1:0", Upstream: u.addr(), RetransmitTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Shape(Up, db.Packet{Loss: 1})
	c := dial(t, p.Addr())
	start := time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	readWithin(t, c, []byte("x"), 5*time.Second)
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("a lost chunk arrived after %s, before one retransmission timeout", took)
	}
}

// TestCloseEndsEverything: Close drops held bytes, closes every
// connection and ends every goroutine, even with a cut in force and a
// writer blocked on a full socket.
func TestCloseEndsEverything(t *testing.T) {
	leakcheck.Check(t)
	// An upstream that never reads: the proxy's writes block.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stuck []net.Conn
	var mu sync.Mutex
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			stuck = append(stuck, c)
			mu.Unlock()
		}
	}()
	defer func() {
		ln.Close()
		<-acceptDone
		mu.Lock()
		for _, c := range stuck {
			c.Close()
		}
		mu.Unlock()
	}()

	p, err := New(Options{Name: "close", Listen: "127.0.0.1:0", Upstream: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	blocked := dial(t, p.Addr())
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := blocked.Write(buf); err != nil {
				return
			}
		}
	}()
	held := dial(t, p.Addr())
	waitConns(t, p, 2)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(stuck)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream accepted %d of the 2 connections after 5s", n)
		}
	}
	p.Cut(Up, true)
	if _, err := held.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p.Conns() != 0 {
		t.Errorf("Conns after Close = %d", p.Conns())
	}
	_ = held.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := held.Read(make([]byte, 8)); err == nil {
		t.Error("a connection still answers after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestUpstreamDown: with nothing at the upstream, the client's connection
// is closed at once, like a refused connection.
func TestUpstreamDown(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := newProxy(t, dead)
	c := dial(t, p.Addr())
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 8)); err == nil || isTimeout(err) {
		t.Fatalf("read from a proxy to a dead upstream: %v, want the connection closed", err)
	}

	// SetUpstream points new connections at a live one.
	u := newUpstream(t)
	p.SetUpstream(u.addr())
	if p.Upstream() != u.addr() {
		t.Fatalf("Upstream = %s", p.Upstream())
	}
	c2 := dial(t, p.Addr())
	if _, err := c2.Write([]byte("alive")); err != nil {
		t.Fatal(err)
	}
	readWithin(t, c2, []byte("alive"), 5*time.Second)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestNewRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:0", "0.0.0.0:0", "localhost:0", "nonsense"} {
		if p, err := New(Options{Name: "x", Listen: addr, Upstream: "127.0.0.1:1"}); err == nil {
			p.Close()
			t.Errorf("New(Listen %q) succeeded, want a loopback-only refusal", addr)
		}
	}
}

// TestStreamSurvivesFaultsComingAndGoing streams numbered words through
// the proxy (echoed back by the upstream) while faults start and end
// quickly in both directions, so that chunks go now by the queue, now by
// the fast path of a healthy lane. Every word must come back exactly
// once and in order.
func TestStreamSurvivesFaultsComingAndGoing(t *testing.T) {
	leakcheck.Check(t)
	u := newUpstream(t)
	p := newProxy(t, u.addr())
	c := dial(t, p.Addr())

	const words = 200_000
	stop := make(chan struct{})
	var faults sync.WaitGroup
	faults.Add(1)
	go func() {
		defer faults.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				p.Cut(Up, false)
				p.Cut(Down, false)
				p.Shape(Up, db.Packet{})
				return
			case <-time.After(time.Millisecond):
			}
			switch i % 4 {
			case 0:
				p.Cut(Direction(i/4%2), true)
			case 1:
				p.Cut(Up, false)
				p.Cut(Down, false)
			case 2:
				p.Shape(Up, db.Packet{Delay: time.Millisecond})
			case 3:
				p.Shape(Up, db.Packet{})
			}
		}
	}()
	writeErr := make(chan error, 1)
	go func() {
		w := make([]byte, 4)
		var buf []byte
		for i := range uint32(words) {
			binary.BigEndian.PutUint32(w, i)
			buf = append(buf, w...)
			if len(buf) >= 512 || i == words-1 {
				if _, err := c.Write(buf); err != nil {
					writeErr <- err
					return
				}
				buf = buf[:0]
			}
		}
		writeErr <- nil
	}()
	r := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := range uint32(words) {
		if _, err := io.ReadFull(c, r); err != nil {
			t.Fatalf("word %d: %v", i, err)
		}
		if got := binary.BigEndian.Uint32(r); got != i {
			t.Fatalf("word %d came back as %d: the stream lost, repeated or reordered bytes", i, got)
		}
	}
	close(stop)
	faults.Wait()
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
}

// waitConns waits until p holds want connections, failing t after 5s.
func waitConns(t *testing.T, p *Proxy, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Conns() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the proxy holds %d connections after 5s, want %d", p.Conns(), want)
		}
		time.Sleep(time.Millisecond)
	}
}
