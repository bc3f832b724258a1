package controller

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/garantia/garantia/broker/metadata"
)

// maxFrameBytes bounds one RPC frame; requests and responses are a few
// hundred bytes, so anything near this is a broken or hostile peer.
const maxFrameBytes = 1 << 20

// maxIdleConns bounds the pooled connections to one peer.
const maxIdleConns = 4

// RPC operations.
const (
	opHeartbeat   = "heartbeat"
	opCreateTopic = "create_topic"
	opAlterISR    = "alter_isr"
	// opDeleteTopic and opCreatePartitions are metadata.DeleteTopic and
	// metadata.CreatePartitions.
	opDeleteTopic      = "delete_topic"
	opCreatePartitions = "create_partitions"
	// opReadIndex asks the controller for the index of the last metadata
	// log entry it applied (see Controller.Sync).
	opReadIndex = "read_index"
	// opWaitApplied asks any node, controller or not, to answer once it
	// has applied the metadata log up to Index (see WaitApplied).
	opWaitApplied = "wait_applied"
)

// request is one controller RPC.
type request struct {
	Op string `json:"op"`
	// TimeoutMs bounds the work the controller does for this request.
	TimeoutMs   int64              `json:"timeout_ms"`
	Heartbeat   *heartbeatRequest  `json:"heartbeat,omitempty"`
	CreateTopic *createTopicParams `json:"create_topic,omitempty"`
	AlterISR    *alterISRParams    `json:"alter_isr,omitempty"`
	Topic       *topicParams       `json:"topic,omitempty"`
	// Index is the metadata log index opWaitApplied waits for.
	Index uint64 `json:"index,omitempty"`
}

// topicParams name a topic to delete, or to grow to Partitions partitions.
type topicParams struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions,omitempty"`
}

// heartbeatRequest registers a broker incarnation and keeps its session.
type heartbeatRequest struct {
	Broker      metadata.Broker `json:"broker"`
	Incarnation uint64          `json:"incarnation"`
	// AppliedIndex is the last metadata log index the broker's node applied.
	AppliedIndex uint64 `json:"applied_index"`
}

type createTopicParams struct {
	Name              string               `json:"name"`
	Partitions        int32                `json:"partitions"`
	ReplicationFactor int16                `json:"replication_factor"`
	Config            metadata.TopicConfig `json:"config"`
}

type alterISRParams struct {
	Topic          string  `json:"topic"`
	Index          int32   `json:"index"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	ISR            []int32 `json:"isr"`
}

// response answers a request.
type response struct {
	// Code is empty on success, else one of the error codes below.
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// LeaderID is the controller the answering node knows of, -1 if none.
	LeaderID int32 `json:"leader_id"`
	// Index is the log index of the entry that made a change; the caller
	// waits until its own node has applied it.
	Index     uint64              `json:"index,omitempty"`
	Partition *metadata.Partition `json:"partition,omitempty"`
}

// Error codes, and the metadata errors they stand for.
const (
	codeNotController = "NOT_CONTROLLER"
	codeNoController  = "NO_CONTROLLER"
	codeBadRequest    = "BAD_REQUEST"
	codeInternal      = "INTERNAL"
)

var errorCodes = []struct {
	code string
	err  error
}{
	{codeNotController, metadata.ErrNotController},
	{codeNoController, metadata.ErrNoController},
	{"TOPIC_EXISTS", metadata.ErrTopicExists},
	{"UNKNOWN_TOPIC", metadata.ErrUnknownTopic},
	{"INVALID_REPLICATION_FACTOR", metadata.ErrInvalidReplicationFactor},
	{"INVALID_PARTITIONS", metadata.ErrInvalidPartitions},
	{"FENCED_LEADER_EPOCH", metadata.ErrFencedLeaderEpoch},
	{"STALE_PARTITION_EPOCH", metadata.ErrStalePartitionEpoch},
	{"INVALID_ISR", metadata.ErrInvalidISR},
	{codeBadRequest, errBadRequest},
}

// errBadRequest: a malformed or unknown request (a peer of another
// version).
var errBadRequest = errors.New("controller: bad request")

func errorResponse(err error) *response {
	code := codeInternal
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			code = e.code
			break
		}
	}
	return &response{Code: code, Error: err.Error(), LeaderID: -1}
}

// err rebuilds the error a response carries, matching its sentinel.
func (r *response) err() error {
	if r.Code == "" {
		return nil
	}
	re := &RemoteError{Code: r.Code, Message: r.Error}
	for _, e := range errorCodes {
		if e.code == r.Code {
			re.sentinel = e.err
		}
	}
	return re
}

// retryable reports whether the request should go to another (or the
// same, later) controller: the node was not the controller, or was and
// lost its leadership before the change committed.
func (r *response) retryable() bool {
	return r.Code == codeNotController || r.Code == codeNoController
}

// RemoteError is an error the controller answered with. errors.Is matches
// it against the metadata error it stands for.
type RemoteError struct {
	Code     string
	Message  string
	sentinel error
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the metadata error the code stands for, if any.
func (e *RemoteError) Unwrap() error { return e.sentinel }

// writeFrame writes one length-prefixed JSON frame.
func writeFrame(w *bufio.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > maxFrameBytes {
		return fmt.Errorf("controller: frame of %d bytes exceeds the %d byte limit", len(body), maxFrameBytes)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame into v.
func readFrame(r *bufio.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrameBytes {
		return fmt.Errorf("controller: frame of %d bytes exceeds the %d byte limit", n, maxFrameBytes)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("controller: decoding a frame: %w", err)
	}
	return nil
}

// serveConn answers requests on one RPC connection until it fails or the
// controller closes (the mux closes the connection).
func (c *Controller) serveConn(conn net.Conn) {
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	for {
		var req request
		if err := readFrame(r, &req); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
				c.log.Debug("controller: reading a request", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		timeout := time.Duration(req.TimeoutMs) * time.Millisecond
		if timeout <= 0 || timeout > c.cfg.RequestTimeout {
			timeout = c.cfg.RequestTimeout
		}
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		resp := c.handle(ctx, &req)
		cancel()
		if err := writeFrame(w, resp); err != nil {
			c.log.Debug("controller: writing a response", "remote", conn.RemoteAddr().String(), "err", err)
			return
		}
	}
}

// rpcConn is a client connection to one peer's controller port.
type rpcConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

// clientPool keeps idle connections to peers.
type clientPool struct {
	mu   sync.Mutex
	idle map[int32][]*rpcConn
}

func (p *clientPool) get(id int32) *rpcConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.idle[id]
	if len(conns) == 0 {
		return nil
	}
	rc := conns[len(conns)-1]
	p.idle[id] = conns[:len(conns)-1]
	return rc
}

func (p *clientPool) put(id int32, rc *rpcConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle[id]) >= maxIdleConns {
		rc.conn.Close()
		return
	}
	p.idle[id] = append(p.idle[id], rc)
}

// callPeer sends req to peer id and reads the answer, within ctx.
func (c *Controller) callPeer(ctx context.Context, id int32, req *request) (*response, error) {
	addr, ok := c.cfg.Peers[id]
	if !ok {
		return nil, fmt.Errorf("controller: broker %d is the controller but not among this node's peers", id)
	}
	rc := c.pool.get(id)
	if rc == nil {
		timeout := c.cfg.RequestTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		conn, err := c.mux.dial(addr, timeout)
		if err != nil {
			return nil, fmt.Errorf("controller: dialing broker %d at %s: %w", id, addr, err)
		}
		if _, err := conn.Write([]byte{rpcMagic}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("controller: dialing broker %d at %s: %w", id, addr, err)
		}
		rc = &rpcConn{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
	}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMs = time.Until(dl).Milliseconds()
		_ = rc.conn.SetDeadline(dl)
	}
	// A cancelled context (not only an expired one) must unblock the call.
	stop := context.AfterFunc(ctx, func() { _ = rc.conn.SetDeadline(time.Now()) })
	var resp response
	err := writeFrame(rc.w, req)
	if err == nil {
		err = readFrame(rc.r, &resp)
	}
	stopped := stop()
	if err != nil {
		rc.conn.Close()
		return nil, fmt.Errorf("controller: %s request to broker %d at %s: %w", req.Op, id, addr, err)
	}
	if !stopped {
		// The cancellation may have set a deadline just now: the answer
		// is good, the connection is not.
		rc.conn.Close()
		return &resp, nil
	}
	_ = rc.conn.SetDeadline(time.Time{})
	c.pool.put(id, rc)
	return &resp, nil
}
