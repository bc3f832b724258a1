package proxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/garantia/garantia/db"
)

// Direction is one direction of a proxied connection's traffic.
type Direction int

const (
	// Up is what the dialing side sends towards the upstream.
	Up Direction = iota
	// Down is what the upstream sends back.
	Down
)

func (d Direction) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Defaults of Options.
const (
	DefaultDialTimeout       = time.Second
	DefaultRetransmitTimeout = 200 * time.Millisecond
)

// Limits that bound what a proxy holds.
const (
	// chunkBytes is the most one read takes from a socket.
	chunkBytes = 32 << 10
	// queueChunks is how many chunks a direction holds before it stops
	// reading (a cut direction holds up to queueChunks*chunkBytes, 2 MiB,
	// then the sender's writes block, as on a full TCP window).
	queueChunks = 64
	// maxBackoffShift caps the doubling of a loss stall (TCP caps its
	// backoff too): 200ms << 5 is 6.4s.
	maxBackoffShift = 5
)

// ErrClosed is returned by a Proxy's methods after Close.
var ErrClosed = errors.New("proxy: closed")

// Options configure a Proxy.
type Options struct {
	// Name names the proxy in errors ("n1->n2 kafka").
	Name string
	// Listen is the loopback host:port to listen on; port 0 picks one.
	Listen string
	// Upstream is the host:port each connection is forwarded to.
	Upstream string
	// Seed seeds the jitter and loss draws.
	Seed uint64
	// DialTimeout bounds the dial to the upstream; 0 means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// RetransmitTimeout is the stall of one lost packet; 0 means
	// DefaultRetransmitTimeout.
	RetransmitTimeout time.Duration
}

// Proxy forwards the connections it accepts to its upstream, holding,
// delaying or stalling each direction's bytes as its faults say. Its
// methods are safe for concurrent use.
type Proxy struct {
	opts  Options
	ln    net.Listener
	gates [2]*gate
	seq   atomic.Uint64 // connections accepted

	mu       sync.Mutex // guards upstream, conns and closed
	upstream string
	conns    map[*pconn]struct{}
	closed   bool

	wg sync.WaitGroup // the accept loop and every connection's goroutines
}

// New listens on opts.Listen and starts forwarding.
func New(opts Options) (*Proxy, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.RetransmitTimeout <= 0 {
		opts.RetransmitTimeout = DefaultRetransmitTimeout
	}
	host, _, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: Listen %q: %w", opts.Name, opts.Listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		// The project's rule: nothing but loopback, ever.
		return nil, fmt.Errorf("proxy %s: Listen %q: not a loopback address", opts.Name, opts.Listen)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", opts.Name, err)
	}
	p := &Proxy{
		opts:     opts,
		ln:       ln,
		gates:    [2]*gate{newGate(), newGate()},
		upstream: opts.Upstream,
		conns:    map[*pconn]struct{}{},
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Name is Options.Name.
func (p *Proxy) Name() string { return p.opts.Name }

// SetUpstream changes where new connections are forwarded (a node that
// moved to another port); open connections keep theirs.
func (p *Proxy) SetUpstream(addr string) {
	p.mu.Lock()
	p.upstream = addr
	p.mu.Unlock()
}

// Upstream is where new connections are forwarded.
func (p *Proxy) Upstream() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upstream
}

// Cut starts (true) or ends (false) a cut of direction d: bytes are held,
// not lost, and delivered in order when the cut ends (see the package
// comment).
func (p *Proxy) Cut(d Direction, cut bool) {
	p.gates[d].update(func(s *faults) { s.cut = cut })
}

// Shape sets the packet fault of direction d; the zero Packet ends it.
func (p *Proxy) Shape(d Direction, pk db.Packet) {
	p.gates[d].update(func(s *faults) { s.packet = pk })
}

// Faults reports direction d's faults.
func (p *Proxy) Faults(d Direction) (cut bool, pk db.Packet) {
	s, _, _ := p.gates[d].load()
	return s.cut, s.packet
}

// Conns is the number of connections the proxy holds open.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection (held bytes are
// dropped) and returns once every goroutine of the proxy has ended. It
// is safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := make([]*pconn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.abort()
	}
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("proxy %s: %w", p.opts.Name, err)
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &pconn{p: p, client: client, ctx: ctx, cancel: cancel, done: ctx.Done(), seq: p.seq.Add(1)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			return
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.serve()
	}
}

// faults are what one direction suffers.
type faults struct {
	cut    bool
	packet db.Packet
}

// gate holds a direction's faults; waiters learn of changes through the
// changed channel, closed and replaced on every update.
type gate struct {
	mu      sync.Mutex
	s       faults
	version uint64
	changed chan struct{}
	// clear is true while the direction suffers no fault at all: the
	// readers' fast path checks it without the lock.
	clear atomic.Bool
}

func newGate() *gate {
	g := &gate{changed: make(chan struct{})}
	g.clear.Store(true)
	return g
}

func (g *gate) load() (faults, uint64, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s, g.version, g.changed
}

func (g *gate) update(f func(*faults)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.s
	f(&g.s)
	if g.s == old {
		return
	}
	g.version++
	g.clear.Store(g.s == faults{})
	close(g.changed)
	g.changed = make(chan struct{})
}

// pconn is one proxied connection.
type pconn struct {
	p      *Proxy
	client net.Conn
	seq    uint64

	// ctx ends when the connection is aborted; done is its Done channel.
	ctx    context.Context
	cancel context.CancelFunc
	done   <-chan struct{}

	lanes [2]lane // indexed by Direction

	mu       sync.Mutex
	upstream net.Conn // set once dialed
	aborted  bool
}

// lane is one direction of a connection. Its reader hands chunks to its
// writer through q, unless the fast path applies: with no fault in force
// and nothing queued, the reader writes what it read to dst itself. Most
// of a run's traffic crosses a healthy link, and each hand-off between
// the two goroutines costs a scheduler wake-up on both sides.
type lane struct {
	q chan chunk
	// queued counts the chunks in q or being written by the writer; the
	// reader takes the fast path only at zero, so no chunk overtakes
	// another and the two never write dst at once.
	queued atomic.Int64
	// dst is where the lane delivers, set before its writer starts.
	dst atomic.Pointer[net.Conn]
	// bypassed tells the writer that chunks went by the fast path, so
	// its loss streak is over (TCP's backoff ends with a delivery).
	bypassed atomic.Bool
}

// abort closes both sides and wakes every goroutine of the connection.
func (c *pconn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		return
	}
	c.aborted = true
	c.cancel()
	c.client.Close()
	if c.upstream != nil {
		c.upstream.Close()
	}
}

// chunk is a stretch of bytes read from one side, or the end of it.
type chunk struct {
	b   []byte
	at  time.Time // when it was read
	end bool      // the source hit EOF or an error; b is empty
}

// serve forwards one connection until both directions end.
func (c *pconn) serve() {
	p := c.p
	defer p.wg.Done()
	var readers sync.WaitGroup
	defer func() {
		c.abort() // unblocks the readers
		readers.Wait()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()

	// Read the client at once, as its kernel would let it send; the bytes
	// wait in the queue until there is an upstream to write them to.
	c.lanes[Up].q = make(chan chunk, queueChunks)
	c.lanes[Down].q = make(chan chunk, queueChunks)
	clientEOF := make(chan struct{})
	readers.Add(1)
	go func() {
		defer readers.Done()
		c.read(Up, c.client, clientEOF)
	}()

	// The handshake needs both directions: while either is cut, the
	// connection does not reach the upstream.
	if !c.awaitLink(clientEOF) {
		return
	}
	p.mu.Lock()
	addr := p.upstream
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, p.opts.DialTimeout)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", addr)
	cancel()
	if err != nil {
		return // the node is down: the client sees its connection close
	}
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		up.Close()
		return
	}
	c.upstream = up
	c.mu.Unlock()

	c.lanes[Up].dst.Store(&up)
	c.lanes[Down].dst.Store(&c.client)
	readers.Add(1)
	go func() {
		defer readers.Done()
		c.read(Down, up, nil)
	}()
	var writers sync.WaitGroup
	writers.Add(2)
	go func() {
		defer writers.Done()
		c.write(Up)
	}()
	go func() {
		defer writers.Done()
		c.write(Down)
	}()
	writers.Wait()
}

// awaitLink waits until neither direction is cut. It reports false when
// the connection should be dropped: the client gave up first, or the
// proxy is closing.
func (c *pconn) awaitLink(clientEOF <-chan struct{}) bool {
	for waited := false; ; waited = true {
		up, _, upChanged := c.p.gates[Up].load()
		down, _, downChanged := c.p.gates[Down].load()
		if !up.cut && !down.cut {
			// A client that closed while the link was cut, before the
			// handshake could complete, never existed for the upstream.
			return !waited || !isClosed(clientEOF)
		}
		select {
		case <-upChanged:
		case <-downChanged:
		case <-clientEOF:
			return false
		case <-c.done:
			return false
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// read copies src into direction d's lane until src ends or the
// connection is aborted, and then queues the end. eof, when not nil, is
// closed as soon as src ends.
func (c *pconn) read(d Direction, src net.Conn, eof chan<- struct{}) {
	l := &c.lanes[d]
	g := c.p.gates[d]
	buf := make([]byte, chunkBytes)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if dst := l.dst.Load(); dst != nil && l.queued.Load() == 0 && g.clear.Load() {
				// The fast path. A fault that starts while this write
				// runs finds the chunk delivered just before it.
				l.bypassed.Store(true)
				if _, werr := (*dst).Write(buf[:n]); werr != nil {
					c.abort()
					return
				}
			} else {
				b := make([]byte, n)
				copy(b, buf[:n])
				l.queued.Add(1)
				select {
				case l.q <- chunk{b: b, at: time.Now()}:
				case <-c.done:
					return
				}
			}
		}
		if err != nil {
			if eof != nil {
				close(eof)
			}
			l.queued.Add(1)
			select {
			case l.q <- chunk{end: true, at: time.Now()}:
			case <-c.done:
			}
			return
		}
	}
}

// write delivers direction d's queued chunks as its faults allow. At the
// source's end it half-closes the destination (the FIN travels on); a
// failed write aborts the connection.
func (c *pconn) write(d Direction) {
	l := &c.lanes[d]
	dst := *l.dst.Load()
	g := c.p.gates[d]
	rng := rand.New(rand.NewPCG(c.p.opts.Seed, c.seq<<1|uint64(d)))
	var last time.Time // the delivery time of the previous chunk
	streak := 0        // losses in a row, for the backoff
	for {
		var ch chunk
		select {
		case ch = <-l.q:
		case <-c.done:
			return
		}
		if l.bypassed.Swap(false) {
			streak = 0
		}
		at, ok := c.await(g, ch, last, rng, &streak)
		if !ok {
			return
		}
		last = at
		if ch.end {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			} else {
				dst.Close()
			}
			l.queued.Add(-1)
			return
		}
		if _, err := dst.Write(ch.b); err != nil {
			c.abort()
			return
		}
		l.queued.Add(-1)
	}
}

// await waits until ch may be delivered: no cut in force, and its delay
// and any loss stall have passed. It reports the delivery time, or false
// when the connection was aborted. A change of the faults while it waits
// is taken into account at once (a heal releases everything held).
func (c *pconn) await(g *gate, ch chunk, last time.Time, rng *rand.Rand, streak *int) (time.Time, bool) {
	drawnFor := ^uint64(0)
	var extra time.Duration
	for {
		s, version, changed := g.load()
		if s.cut {
			select {
			case <-changed:
				continue
			case <-c.done:
				return time.Time{}, false
			}
		}
		if version != drawnFor {
			// Draw this chunk's jitter and loss once per fault setting.
			drawnFor = version
			extra = c.draw(s.packet, rng, streak)
		}
		at := ch.at.Add(s.packet.Delay + extra)
		if at.Before(last) {
			at = last // never overtake an earlier chunk
		}
		wait := time.Until(at)
		if wait <= 0 {
			return at, true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			return at, true
		case <-changed:
			t.Stop()
		case <-c.done:
			t.Stop()
			return time.Time{}, false
		}
	}
}

// draw is a chunk's jitter plus its loss stall under pk.
func (c *pconn) draw(pk db.Packet, rng *rand.Rand, streak *int) time.Duration {
	var extra time.Duration
	if pk.Jitter > 0 {
		extra = time.Duration(rng.Int64N(int64(2*pk.Jitter)+1)) - pk.Jitter
	}
	if pk.Loss > 0 && rng.Float64() < pk.Loss {
		shift := *streak
		if shift > maxBackoffShift {
			shift = maxBackoffShift
		}
		extra += c.p.opts.RetransmitTimeout << shift
		*streak++
	} else {
		*streak = 0
	}
	return extra
}
