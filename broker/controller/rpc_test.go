package controller

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/hashicorp/go-hclog"
)

func TestErrorsSurviveTheWire(t *testing.T) {
	for _, e := range errorCodes {
		t.Run(e.code, func(t *testing.T) {
			sent := errorResponse(fmt.Errorf("alter ISR of q-0: %w", e.err))
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := writeFrame(w, sent); err != nil {
				t.Fatal(err)
			}
			var got response
			if err := readFrame(bufio.NewReader(&buf), &got); err != nil {
				t.Fatal(err)
			}
			err := got.err()
			if !errors.Is(err, e.err) || err.Error() != sent.Error {
				t.Errorf("got %v (%q), want a match for %v with message %q", err, err, e.err, sent.Error)
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != e.code {
				t.Errorf("not a RemoteError with code %s: %#v", e.code, err)
			}
		})
	}
	if err := errorResponse(errors.New("disk on fire")).err(); errors.Is(err, metadata.ErrNoController) || err.(*RemoteError).Code != codeInternal {
		t.Errorf("unknown error: %#v", err)
	}
	if err := (&response{}).err(); err != nil {
		t.Errorf("success carries error %v", err)
	}
}

func TestFramesAreBounded(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], maxFrameBytes+1)
	var v response
	if err := readFrame(bufio.NewReader(bytes.NewReader(hdr[:])), &v); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized frame: %v", err)
	}
	binary.BigEndian.PutUint32(hdr[:], 3)
	if err := readFrame(bufio.NewReader(bytes.NewReader(append(hdr[:], "{x}"...))), &v); err == nil {
		t.Error("garbage frame decoded")
	}
	if err := readFrame(bufio.NewReader(bytes.NewReader(append(hdr[:], "{}"...))), &v); err == nil {
		t.Error("truncated frame decoded")
	}
}

// A single-node cluster is its own controller; a peer speaking garbage on
// the controller port is dropped without harm.
func TestSingleNodeAndGarbageConnections(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, nil)
	n := c.node(1)
	c.waitLeader(settle)
	c.waitRegistered(settle)
	for _, junk := range [][]byte{
		{rpcMagic, 0, 0, 0, 2, '{', '}'}, // a request without an op
		{rpcMagic, 0xff, 0xff, 0xff, 0xff},
		{rpcMagic, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'},
		{0x99, 'n', 'o', 't', ' ', 'r', 'a', 'f', 't'},
	} {
		conn, err := net.Dial("tcp", n.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(settle))
		if _, err := conn.Write(junk); err != nil {
			t.Fatal(err)
		}
		if junk[0] == rpcMagic && junk[4] == 2 {
			var resp response
			if err := readFrame(bufio.NewReader(conn), &resp); err != nil || resp.Code != codeBadRequest {
				t.Errorf("request without op: %+v, %v", resp, err)
			}
		}
		conn.Close()
	}
	if err := n.CreateTopic(ctxFor(t, settle), "q", 2, 1, metadata.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if s := n.Snapshot(); s.ControllerID != 1 || len(s.Topics["q"].Partitions) != 2 {
		t.Errorf("snapshot: %+v", s)
	}

	// A closed controller refuses at once instead of retrying until the
	// caller's deadline.
	c.stop(1)
	start := time.Now()
	err := n.CreateTopic(ctxFor(t, settle), "late", 1, 1, metadata.TopicConfig{})
	if !errors.Is(err, metadata.ErrNoController) || time.Since(start) > settle/2 {
		t.Errorf("create topic after Close: %v after %s", err, time.Since(start))
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStartRefusesBadConfigAndABusyDataDir(t *testing.T) {
	t.Parallel()
	ok := func() Config {
		return Config{NodeID: 1, Listen: "127.0.0.1:0", Peers: map[int32]string{2: "127.0.0.1:1"},
			DataDir: t.TempDir(), Advertised: metadata.Broker{Host: "127.0.0.1", Port: 9092}}
	}
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"negative id", func(c *Config) { c.NodeID = -1 }, "node id"},
		{"bad listen", func(c *Config) { c.Listen = "nope" }, "listen"},
		{"self as peer", func(c *Config) { c.Peers[1] = "127.0.0.1:2" }, "own id"},
		{"bad peer address", func(c *Config) { c.Peers[2] = "127.0.0.1" }, "peer 2"},
		{"peer port 0", func(c *Config) { c.Peers[2] = "127.0.0.1:0" }, "peer 2"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data directory"},
		{"no advertised port", func(c *Config) { c.Advertised.Port = 0 }, "advertised"},
		{"heartbeat slower than session", func(c *Config) { c.SessionTimeout = time.Second; c.HeartbeatInterval = 2 * time.Second }, "heartbeat interval"},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -1 }, "request timeout"},
		{"tiny election timeout", func(c *Config) { c.ElectionTimeout = time.Millisecond }, "election timeout"},
	} {
		cfg := ok()
		tc.tweak(&cfg)
		_, err := Start(cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrConfig mentioning %q", tc.name, err, tc.want)
		}
	}

	first := ok()
	n, err := Start(first)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	second := ok()
	second.DataDir = first.DataDir
	if _, err := Start(second); err == nil || !strings.Contains(err.Error(), "another broker") {
		t.Errorf("second controller on one data directory: %v", err)
	}
}

func TestRaftLoggerAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := newRaftLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), hclog.Info)
	if l.IsDebug() || !l.IsInfo() {
		t.Errorf("floor Info: IsDebug %v, IsInfo %v", l.IsDebug(), l.IsInfo())
	}
	l.Debug("dropped below the floor")
	l.Named("net").Info("configured", "servers", hclog.Fmt("%d of %s", 3, "voters"), "id", 2)
	l.With("peer", 3).Warn("failed to contact")
	l.quiet.Store(true)
	l.Error("closing noise")
	out := buf.String()
	for _, want := range []string{`msg="raft.net: configured" servers="3 of voters" id=2`, `level=WARN msg="raft: failed to contact" peer=3`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"dropped", "closing noise"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log has %q:\n%s", unwanted, out)
		}
	}
	if l.IsError() {
		t.Error("a quiet logger reports Error enabled")
	}
}
