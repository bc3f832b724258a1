package db

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Probe sends one Kafka ApiVersions request to addr on a fresh connection
// and returns nil if the broker answered it without error. It is how
// backends decide a node is up: an open port is not enough, the node must
// speak the protocol.
func Probe(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}

	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "garantia-probe"
	req.ClientSoftwareVersion = "1"
	const correlationID = 1
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("garantia-probe")).AppendRequest(nil, req, correlationID)
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("write ApiVersions: %w", err)
	}

	var head [8]byte // size, correlation id
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fmt.Errorf("read ApiVersions response: %w", err)
	}
	size := int32(binary.BigEndian.Uint32(head[:4]))
	if size < 4 || size > 1<<20 {
		return fmt.Errorf("ApiVersions response: implausible size %d", size)
	}
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != correlationID {
		return fmt.Errorf("ApiVersions response: correlation id %d, want %d", got, correlationID)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return fmt.Errorf("read ApiVersions response: %w", err)
	}
	// The body is v3 when the broker knows v3; otherwise Kafka answers in
	// v0 with UNSUPPORTED_VERSION, which still proves the node is serving.
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	if err := resp.ReadFrom(body); err != nil || resp.ErrorCode == kerr.UnsupportedVersion.Code {
		resp = kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		if err := resp.ReadFrom(body); err != nil {
			return fmt.Errorf("decode ApiVersions response: %w", err)
		}
		if resp.ErrorCode == kerr.UnsupportedVersion.Code {
			return nil
		}
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("ApiVersions: %w", err)
	}
	if len(resp.ApiKeys) == 0 {
		return fmt.Errorf("ApiVersions: the broker lists no API keys")
	}
	return nil
}

// maxResponseBytes bounds the response RoundTrip accepts.
const maxResponseBytes = 64 << 20

// RoundTrip sends req to the broker at addr on a fresh connection, in the
// version req carries, and returns the broker's response. It is for the
// harness's own questions to one particular node (who leads partition 2,
// in your view?), where a client library would pick the broker itself.
// ctx bounds the whole exchange; without a deadline in ctx, 5s do.
func RoundTrip(ctx context.Context, addr string, req kmsg.Request) (kmsg.Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Closing the connection when ctx ends unblocks the reads below.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	const correlationID = 7
	frame := kmsg.NewRequestFormatter(kmsg.FormatterClientID("garantia-harness")).AppendRequest(nil, req, correlationID)
	if _, err := conn.Write(frame); err != nil {
		return nil, fmt.Errorf("write %s request: %w", kmsg.NameForKey(req.Key()), err)
	}
	var head [8]byte // size, correlation id
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return nil, fmt.Errorf("read %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	size := int32(binary.BigEndian.Uint32(head[:4]))
	if size < 4 || size > maxResponseBytes {
		return nil, fmt.Errorf("%s response: implausible size %d", kmsg.NameForKey(req.Key()), size)
	}
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != correlationID {
		return nil, fmt.Errorf("%s response: correlation id %d, want %d", kmsg.NameForKey(req.Key()), got, correlationID)
	}
	body := make([]byte, size-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, fmt.Errorf("read %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// Flexible responses (but ApiVersions, whose header stays v0 so that
	// old clients can read it) start with the header's tagged fields.
	if resp.IsFlexible() && req.Key() != int16(kmsg.ApiVersions) {
		if body, err = skipTags(body); err != nil {
			return nil, fmt.Errorf("%s response header: %w", kmsg.NameForKey(req.Key()), err)
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// skipTags skips a tagged-field section (a uvarint count, then for each
// field a uvarint tag, a uvarint size and that many bytes).
func skipTags(b []byte) ([]byte, error) {
	n, used := binary.Uvarint(b)
	if used <= 0 {
		return nil, fmt.Errorf("bad tag count")
	}
	b = b[used:]
	for i := uint64(0); i < n; i++ {
		if _, used = binary.Uvarint(b); used <= 0 {
			return nil, fmt.Errorf("bad tag")
		}
		b = b[used:]
		size, used := binary.Uvarint(b)
		if used <= 0 || size > uint64(len(b)-used) {
			return nil, fmt.Errorf("bad tag size")
		}
		b = b[used+int(size):]
	}
	return b, nil
}
