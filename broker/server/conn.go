package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

// connBufferBytes sizes each connection's read and write buffers.
const connBufferBytes = 64 << 10

// retainedResponseBytes is the largest response encoding buffer a
// connection keeps for reuse.
const retainedResponseBytes = 1 << 20

// conn is one client connection.
type conn struct {
	s      *Server
	c      net.Conn
	ctx    context.Context // ends when the connection or the server does
	cancel context.CancelFunc
	log    *slog.Logger
	queue  chan *pending // requests read, in order, awaiting their response
	// remote is the client's address as Kafka reports it ("/HOST"), for
	// DescribeGroups.
	remote string
}

// pending is one request's place in the response order.
type pending struct {
	corr     int32
	received time.Time
	// Exactly one of these is how the response is produced: a ready
	// response, pre-encoded bytes, or a wait run by the writer (so that
	// waiting never stalls the reader).
	resp kmsg.Response
	raw  []byte
	wait func(ctx context.Context) kmsg.Response
	// noResponse: acks=0 produce; nothing goes back.
	noResponse bool
	// closeAfter: close the connection once everything before and
	// including this request is answered (Kafka closes an acks=0
	// connection whose produce failed, so that the client notices).
	closeAfter bool
}

func (s *Server) newConn(ctx context.Context, c net.Conn) *conn {
	ctx, cancel := context.WithCancel(ctx)
	return &conn{
		s:      s,
		c:      c,
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With("remote", c.RemoteAddr().String()),
		queue:  make(chan *pending, s.cfg.MaxInflightPerConn),
		remote: "/" + remoteHost(c.RemoteAddr()),
	}
}

// serve runs the connection until either side ends it.
func (cc *conn) serve() {
	defer cc.c.Close()
	defer cc.cancel()
	stop := context.AfterFunc(cc.ctx, func() { cc.c.Close() })
	defer stop()
	cc.log.Debug("connection opened")

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cc.cancel() // a dead writer must stop the reader too
		if err := cc.writeLoop(); err != nil && cc.ctx.Err() == nil {
			cc.log.Debug("connection write failed", "err", err)
		}
	}()
	cc.readLoop()
	<-done
	cc.log.Debug("connection closed")
}

func (cc *conn) readLoop() {
	defer close(cc.queue)
	br := bufio.NewReaderSize(cc.c, connBufferBytes)
	for {
		frame, err := wire.ReadFrame(br, cc.s.cfg.MaxFrameBytes)
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrFrameTooLarge):
				cc.log.Warn("closing connection: oversized frame", "err", err)
				// Answer nothing more: the client sent something we will not
				// read, so the stream is out of step from here on.
				cc.cancel()
			case cc.ctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
				cc.cancel()
			default:
				cc.log.Debug("connection read failed", "err", err)
				cc.cancel()
			}
			return
		}
		p, err := cc.handleSafely(frame)
		if err != nil {
			// Earlier requests are still answered; then the writer closes
			// the connection because the queue ends here.
			cc.log.Warn("closing connection: malformed request", "err", err)
			return
		}
		select {
		case cc.queue <- p:
		case <-cc.ctx.Done():
			return
		}
		if p.closeAfter {
			return
		}
	}
}

// handleSafely runs the handler and turns a panic into an error that
// closes this connection only: a bug triggered by one client's bytes must
// not take down the broker for everyone else.
func (cc *conn) handleSafely(frame []byte) (p *pending, err error) {
	defer func() {
		if r := recover(); r != nil {
			cc.log.Error("handler panicked; closing the connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			p, err = nil, fmt.Errorf("handler panic: %v", r)
		}
	}()
	return cc.s.handleFrame(cc.ctx, frame, cc.remote)
}

func (cc *conn) writeLoop() error {
	bw := bufio.NewWriterSize(cc.c, connBufferBytes)
	var buf []byte
	for p := range cc.queue {
		resp, err := cc.resolveSafely(p)
		if err != nil {
			return err
		}
		switch {
		case p.noResponse:
		case p.raw != nil:
			if _, err := bw.Write(p.raw); err != nil {
				return err
			}
		default:
			buf = wire.AppendResponse(buf[:0], p.corr, resp)
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			if cap(buf) > retainedResponseBytes {
				buf = nil // a large fetch's buffer is not kept for the connection's life
			}
		}
		// Flush when nothing else is ready, so that pipelined responses
		// share one write but none waits on a later request.
		if len(cc.queue) == 0 || p.closeAfter {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if p.closeAfter {
			return nil
		}
	}
	return bw.Flush()
}

func (cc *conn) resolveSafely(p *pending) (resp kmsg.Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			cc.log.Error("response builder panicked; closing the connection", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("response panic: %v", r)
		}
	}()
	if p.wait != nil {
		return p.wait(cc.ctx), nil
	}
	return p.resp, nil
}

func remoteHost(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}
