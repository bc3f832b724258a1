package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/group"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// VersionRange is the span of versions the broker serves for one API key.
type VersionRange struct {
	Key      int16
	Min, Max int16
}

// SupportedAPIs is every request the broker serves, as ApiVersions
// advertises it; anything else is refused (see handleFrame). The ranges
// cover what franz-go's kgo (v1.22), sarama (1.61), kafka-go (0.4) and
// librdkafka 2.x send. Fetch stops at v12 and Produce at v12 because v13
// addresses topics by id only; ListOffsets stops at v6 because v7 asks for
// max-timestamp lookups; OffsetCommit and OffsetFetch stop at v9 because
// v10 addresses topics by id; FindCoordinator stops at v5 because v6 adds
// share groups. The group APIs (FindCoordinator through DeleteGroups) are
// served only with a group coordinator (Config.Groups).
var SupportedAPIs = []VersionRange{
	{Key: int16(kmsg.Produce), Min: 3, Max: 12},
	{Key: int16(kmsg.Fetch), Min: 4, Max: 12},
	{Key: int16(kmsg.ListOffsets), Min: 1, Max: 6},
	{Key: int16(kmsg.Metadata), Min: 0, Max: 12},
	{Key: int16(kmsg.OffsetCommit), Min: 0, Max: 9},
	{Key: int16(kmsg.OffsetFetch), Min: 0, Max: 9},
	{Key: int16(kmsg.FindCoordinator), Min: 0, Max: 5},
	{Key: int16(kmsg.JoinGroup), Min: 0, Max: 9},
	{Key: int16(kmsg.Heartbeat), Min: 0, Max: 4},
	{Key: int16(kmsg.LeaveGroup), Min: 0, Max: 5},
	{Key: int16(kmsg.SyncGroup), Min: 0, Max: 5},
	{Key: int16(kmsg.DescribeGroups), Min: 0, Max: 5},
	{Key: int16(kmsg.ListGroups), Min: 0, Max: 5},
	{Key: int16(kmsg.ApiVersions), Min: 0, Max: 4},
	{Key: int16(kmsg.CreateTopics), Min: 0, Max: 7},
	{Key: int16(kmsg.DeleteTopics), Min: 0, Max: 6},
	{Key: int16(kmsg.InitProducerID), Min: 0, Max: 4},
	{Key: int16(kmsg.OffsetForLeaderEpoch), Min: 0, Max: 4},
	{Key: int16(kmsg.DescribeConfigs), Min: 0, Max: 4},
	{Key: int16(kmsg.CreatePartitions), Min: 0, Max: 3},
	{Key: int16(kmsg.DeleteGroups), Min: 0, Max: 2},
	{Key: int16(kmsg.DescribeCluster), Min: 0, Max: 2},
}

func supportedRange(key int16) (VersionRange, bool) {
	for _, r := range SupportedAPIs {
		if r.Key == key {
			return r, true
		}
	}
	return VersionRange{}, false
}

// groupAPI reports whether key is one of the group APIs, served only with
// a group coordinator.
func groupAPI(key int16) bool {
	switch kmsg.Key(key) {
	case kmsg.OffsetCommit, kmsg.OffsetFetch, kmsg.FindCoordinator, kmsg.JoinGroup, kmsg.Heartbeat,
		kmsg.LeaveGroup, kmsg.SyncGroup, kmsg.DescribeGroups, kmsg.ListGroups, kmsg.DeleteGroups:
		return true
	}
	return false
}

// Served is the list of APIs this server answers, as its ApiVersions
// response lists them.
func (s *Server) Served() []VersionRange {
	out := make([]VersionRange, 0, len(SupportedAPIs))
	for _, r := range SupportedAPIs {
		if s.cfg.Groups == nil && groupAPI(r.Key) {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b VersionRange) int { return int(a.Key) - int(b.Key) })
	return out
}

func (s *Server) servedRange(key int16) (VersionRange, bool) {
	if s.cfg.Groups == nil && groupAPI(key) {
		return VersionRange{}, false
	}
	return supportedRange(key)
}

// handleFrame decodes one request frame and does its work, returning how
// its response is to be produced. An error means the frame is garbage and
// the connection must close. remote is the client's address.
//
// A request this broker does not serve is refused the way Kafka refuses
// it: an ApiVersions newer than we speak gets UNSUPPORTED_VERSION with our
// range (KIP-511), any other key or version closes the connection after
// the answers to the requests before it. Never an empty success: a
// client must not take an unserved DeleteTopics for a deleted topic.
func (s *Server) handleFrame(ctx context.Context, frame []byte, remote string) (*pending, error) {
	h, rest, err := wire.ParseHeader(frame)
	if err != nil {
		return nil, err
	}
	p := &pending{corr: h.CorrelationID, received: time.Now()}

	// KIP-511: an ApiVersions request newer than we know is answered at
	// v0 with UNSUPPORTED_VERSION and our ApiVersions range, without
	// parsing the body (its layout may be one we cannot read), so that the
	// client can retry at a version we speak.
	if av, _ := supportedRange(int16(kmsg.ApiVersions)); h.Key == av.Key && (h.Version > av.Max || h.Version < 0) {
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = av.Key, av.Min, av.Max
		resp.ApiKeys = append(resp.ApiKeys, k)
		p.resp = resp
		s.log.Debug("ApiVersions version too new; answering v0 UNSUPPORTED_VERSION", "version", h.Version)
		return p, nil
	}
	if r, ok := s.servedRange(h.Key); !ok || h.Version < r.Min || h.Version > r.Max {
		s.log.Warn("closing connection: unsupported API key or version", "api", kmsg.NameForKey(h.Key), "key", h.Key, "version", h.Version, "remote", remote)
		p.noResponse, p.closeAfter = true, true
		return p, nil
	}

	req, err := wire.ParseBody(h, rest)
	if err != nil {
		return nil, err
	}
	if req == nil {
		// Served per our table but unknown to kmsg: the table is wrong.
		return nil, fmt.Errorf("%w: %s v%d is listed as served but kmsg cannot parse it", wire.ErrMalformed, kmsg.NameForKey(h.Key), h.Version)
	}

	fetch, _ := req.(*kmsg.FetchRequest)
	s.counts.add(h.Key, fetch != nil && fetch.ReplicaID >= 0)
	if s.cfg.Groups != nil && group.Handled(req) {
		cl := group.Client{Host: remote}
		if h.ClientID != nil {
			cl.ID = *h.ClientID
		}
		resp, wait := s.cfg.Groups.Handle(ctx, req, cl)
		if wait != nil {
			p.wait = wait
		} else {
			p.resp = resp
		}
		return p, nil
	}
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		p.resp = s.handleApiVersions(r)
	case *kmsg.MetadataRequest:
		p.resp = s.handleMetadata(ctx, r)
	case *kmsg.ProduceRequest:
		s.handleProduce(p, r)
	case *kmsg.FetchRequest:
		received := p.received
		p.wait = func(ctx context.Context) kmsg.Response { return s.handleFetch(ctx, received, r) }
	case *kmsg.ListOffsetsRequest:
		p.resp = s.handleListOffsets(r)
	case *kmsg.OffsetForLeaderEpochRequest:
		p.resp = s.handleOffsetForLeaderEpoch(r)
	case *kmsg.CreateTopicsRequest:
		p.resp = s.handleCreateTopics(ctx, r)
	case *kmsg.InitProducerIDRequest:
		p.resp = s.handleInitProducerID(r)
	case *kmsg.FindCoordinatorRequest:
		p.resp = s.handleFindCoordinator(ctx, r)
	case *kmsg.DeleteTopicsRequest:
		p.resp = s.handleDeleteTopics(ctx, r)
	case *kmsg.CreatePartitionsRequest:
		p.resp = s.handleCreatePartitions(ctx, r)
	case *kmsg.DescribeConfigsRequest:
		p.resp = s.handleDescribeConfigs(r)
	case *kmsg.DescribeClusterRequest:
		p.resp = s.handleDescribeCluster(r)
	default:
		// The table and this switch disagree: a bug, but one that must
		// cost the client its connection, not the broker a crash.
		s.log.Error("closing connection: a served API has no handler", "api", kmsg.NameForKey(h.Key))
		p.noResponse, p.closeAfter = true, true
	}
	return p, nil
}

// errorCode maps an error from a handler to the Kafka error code the
// client should see.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	switch {
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrCorruptBatch), errors.Is(err, wire.ErrBadBatch):
		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, storage.ErrClosed):
		return kerr.KafkaStorageError.Code
	}
	return kerr.UnknownServerError.Code
}

// handleApiVersions lists what we serve.
func (s *Server) handleApiVersions(req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	// v3+ names the client software; Kafka rejects names outside
	// [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?.
	if req.Version >= 3 && (!validSoftwareName(req.ClientSoftwareName) || !validSoftwareName(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	for _, r := range s.Served() {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = r.Key, r.Min, r.Max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}

func validSoftwareName(s string) bool {
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	if s == "" || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// handleInitProducerID gives an idempotent producer a fresh id at epoch 0,
// as Kafka does for producers without a transactional id.
func (s *Server) handleInitProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if s.pids == nil {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	id, err := s.pids.NextProducerID()
	if err != nil {
		s.log.Error("cannot allocate a producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
