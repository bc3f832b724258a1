package replication

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/wire"
)

// peerBufferBytes sizes a peer connection's buffers.
const peerBufferBytes = 64 << 10

// maxPeerResponseBytes bounds a response from a peer (a fetch asks for at
// most Config.FetchMaxBytes plus headers).
const maxPeerResponseBytes = 256 << 20

// peerConn is one connection from this node to another broker's Kafka
// listener, speaking the protocol as a client: one request at a time, the
// versions fixed (the peer is one of ours), no ApiVersions handshake.
type peerConn struct {
	addr     string
	c        net.Conn
	br       *bufio.Reader
	clientID string
	corr     int32
	buf      []byte
}

func dialPeer(ctx context.Context, addr, clientID string, timeout time.Duration) (*peerConn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &peerConn{addr: addr, c: c, br: bufio.NewReaderSize(c, peerBufferBytes), clientID: clientID}, nil
}

func (pc *peerConn) Close() error { return pc.c.Close() }

// roundTrip sends req and reads its response. It gives up when ctx ends
// (its deadline bounds the whole exchange), after which the connection is
// out of step and must be closed.
func (pc *peerConn) roundTrip(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		pc.c.SetDeadline(dl)
	} else {
		pc.c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	pc.corr++
	corr := pc.corr
	b := append(pc.buf[:0], 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = kbin.AppendNullableString(b, &pc.clientID)
	if req.IsFlexible() {
		b = append(b, 0) // request header v2: no tagged fields
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	pc.buf = b
	if _, err := pc.c.Write(b); err != nil {
		return nil, pc.wrap(ctx, req, err)
	}
	frame, err := wire.ReadFrame(pc.br, maxPeerResponseBytes)
	if err != nil {
		return nil, pc.wrap(ctx, req, err)
	}
	if len(frame) < 4 {
		return nil, fmt.Errorf("%s: %s response of %d bytes", pc.addr, kmsg.NameForKey(req.Key()), len(frame))
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corr {
		return nil, fmt.Errorf("%s: response correlation id %d, want %d", pc.addr, got, corr)
	}
	resp := req.ResponseKind()
	body := frame[4:]
	if resp.IsFlexible() {
		r := kbin.Reader{Src: body}
		kmsg.SkipTags(&r)
		if err := r.Complete(); err != nil {
			return nil, fmt.Errorf("%s: %s response header: %w", pc.addr, kmsg.NameForKey(req.Key()), err)
		}
		body = r.Src
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%s: decoding %s v%d response: %w", pc.addr, kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp, nil
}

func (pc *peerConn) wrap(ctx context.Context, req kmsg.Request, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %s: %w", pc.addr, kmsg.NameForKey(req.Key()), cerr)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s: %s: no response in time: %w", pc.addr, kmsg.NameForKey(req.Key()), err)
	}
	return fmt.Errorf("%s: %s: %w", pc.addr, kmsg.NameForKey(req.Key()), err)
}
