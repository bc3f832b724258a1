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
