package controller

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// rpcMagic is the first byte of a controller RPC connection. Raft's
// connections start with the type of their first RPC, 0..4 in
// hashicorp/raft v1, so the two never collide.
const rpcMagic byte = 'G'

// firstByteTimeout bounds how long an accepted connection may stay silent
// before saying which protocol it speaks; both ours and Raft's write at once.
const firstByteTimeout = 10 * time.Second

var errMuxClosed = errors.New("controller: connection mux is closed")

// mux splits one TCP listener between Raft and the controller RPC server,
// and tracks every connection either side accepts or dials so that Close
// leaves no connection (and so no goroutine blocked on one) behind.
type mux struct {
	ln       net.Listener
	log      *slog.Logger
	serveRPC func(net.Conn)

	raftConns    chan net.Conn
	closed       chan struct{} // mux closed: listener and every connection
	streamClosed chan struct{} // Raft closed its stream layer
	closeOnce    sync.Once
	streamOnce   sync.Once

	mu    sync.Mutex
	conns map[*muxConn]struct{}
	wg    sync.WaitGroup // accept loop and per-connection routers
}

func newMux(ln net.Listener, log *slog.Logger, serveRPC func(net.Conn)) *mux {
	m := &mux{
		ln:           ln,
		log:          log,
		serveRPC:     serveRPC,
		raftConns:    make(chan net.Conn),
		closed:       make(chan struct{}),
		streamClosed: make(chan struct{}),
		conns:        map[*muxConn]struct{}{},
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

func (m *mux) isClosed() bool {
	select {
	case <-m.closed:
		return true
	default:
		return false
	}
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() {
				return
			}
			// A broken listener would spin; an accept error on a live one
			// (out of file descriptors) is worth a pause.
			m.log.Error("controller: accepting a connection", "err", err)
			select {
			case <-m.closed:
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		c := m.track(conn)
		if c == nil {
			continue
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

// route reads the first byte and hands the connection to the RPC server or
// to Raft.
func (m *mux) route(c *muxConn) {
	defer m.wg.Done()
	var first [1]byte
	_ = c.SetReadDeadline(time.Now().Add(firstByteTimeout))
	if _, err := io.ReadFull(c.Conn, first[:]); err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if first[0] == rpcMagic {
		m.serveRPC(c)
		c.Close()
		return
	}
	c.r = io.MultiReader(bytes.NewReader(first[:]), c.Conn)
	select {
	case m.raftConns <- c:
	case <-m.closed:
		c.Close()
	case <-m.streamClosed:
		c.Close()
	}
}

// track registers conn, or closes it and returns nil when the mux is
// closed.
func (m *mux) track(conn net.Conn) *muxConn {
	c := &muxConn{Conn: conn, m: m}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed() {
		conn.Close()
		return nil
	}
	m.conns[c] = struct{}{}
	return c
}

// dial opens a tracked connection to addr.
func (m *mux) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if m.isClosed() {
		return nil, errMuxClosed
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c := m.track(conn)
	if c == nil {
		return nil, errMuxClosed
	}
	return c, nil
}

// Close closes the listener and every tracked connection. Raft's Accept
// keeps blocking until Raft closes its stream layer, so that a shutting
// down transport does not log accept errors.
func (m *mux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		close(m.closed)
		conns := make([]*muxConn, 0, len(m.conns))
		for c := range m.conns {
			conns = append(conns, c)
		}
		m.mu.Unlock()
		err = m.ln.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return err
}

// wait blocks until the accept loop and every router (and with it every
// RPC server connection) have returned; call after Close.
func (m *mux) wait() { m.wg.Wait() }

// muxConn is a tracked connection; r, when set, replays the byte the router
// read before handing the connection to Raft.
type muxConn struct {
	net.Conn
	m    *mux
	r    io.Reader
	once sync.Once
}

func (c *muxConn) Read(b []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(b)
	}
	return c.Conn.Read(b)
}

func (c *muxConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// raftStream is the mux's face to Raft's NetworkTransport.
type raftStream struct{ m *mux }

var _ raft.StreamLayer = raftStream{}

// Accept implements net.Listener for Raft: the connections whose first byte
// is not ours.
func (s raftStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftConns:
		return c, nil
	case <-s.m.streamClosed:
		return nil, errMuxClosed
	}
}

// Close implements net.Listener; the shared listener is the mux's to close.
func (s raftStream) Close() error {
	s.m.streamOnce.Do(func() { close(s.m.streamClosed) })
	return nil
}

// Addr implements net.Listener.
func (s raftStream) Addr() net.Addr { return s.m.ln.Addr() }

// Dial implements raft.StreamLayer; address is what the server address
// provider gave for the peer (Config.Peers).
func (s raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.m.dial(string(address), timeout)
}
