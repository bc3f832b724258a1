package server

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/broker/wire"
)

// VersionRange is the span of versions the broker serves for one API key.
type VersionRange struct {
	Key      int16
	Min, Max int16
}

// SupportedAPIs is every request the broker serves, as ApiVersions
// advertises it. The ranges cover what franz-go's kgo (v1.22) and
// librdkafka 2.x negotiate. Fetch stops at v12 and Produce at v12 because
// v13 addresses topics by id only; ListOffsets stops at v6 because v7 asks
// for max-timestamp lookups.
var SupportedAPIs = []VersionRange{
	{Key: int16(kmsg.Produce), Min: 3, Max: 12},
	{Key: int16(kmsg.Fetch), Min: 4, Max: 12},
	{Key: int16(kmsg.ListOffsets), Min: 1, Max: 6},
	{Key: int16(kmsg.Metadata), Min: 0, Max: 12},
	{Key: int16(kmsg.ApiVersions), Min: 0, Max: 4},
	{Key: int16(kmsg.CreateTopics), Min: 0, Max: 7},
	{Key: int16(kmsg.InitProducerID), Min: 0, Max: 4},
	{Key: int16(kmsg.OffsetForLeaderEpoch), Min: 0, Max: 4},
}

func supportedRange(key int16) (VersionRange, bool) {
	for _, r := range SupportedAPIs {
		if r.Key == key {
			return r, true
		}
	}
	return VersionRange{}, false
}

// handleFrame decodes one request frame and does its work, returning how
// its response is to be produced. An error means the frame is garbage and
// the connection must close.
func (s *Server) handleFrame(ctx context.Context, frame []byte) (*pending, error) {
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

	req, err := wire.ParseBody(h, rest)
	if err != nil {
		return nil, err
	}
	if req == nil {
		// kmsg knows no schema for this key or version, so there is no
		// typed response to fill: answer an error-only body.
		s.log.Warn("unknown API key or version", "key", h.Key, "version", h.Version)
		p.raw = wire.AppendErrorOnly(nil, h.CorrelationID, kerr.UnsupportedVersion.Code)
		return p, nil
	}
	if r, ok := supportedRange(h.Key); !ok || h.Version < r.Min || h.Version > r.Max {
		s.log.Warn("unsupported API key or version", "api", kmsg.NameForKey(h.Key), "key", h.Key, "version", h.Version)
		p.resp = errorResponse(req, kerr.UnsupportedVersion)
		return p, nil
	}

	fetch, _ := req.(*kmsg.FetchRequest)
	s.counts.add(h.Key, fetch != nil && fetch.ReplicaID >= 0)
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
	default:
		// SupportedAPIs and this switch disagree: a bug, but one that
		// must cost the client an error, not the broker a crash.
		s.log.Error("supported API has no handler", "api", kmsg.NameForKey(h.Key))
		p.resp = errorResponse(req, kerr.UnsupportedVersion)
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

// errorResponse builds the response to req with every error field it
// mirrors set to e, as Kafka's AbstractRequest.getErrorResponse does. It
// answers requests at versions or keys we do not serve.
func errorResponse(req kmsg.Request, e *kerr.Error) kmsg.Response {
	resp := req.ResponseKind()
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		out := resp.(*kmsg.ProduceResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, e.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.FetchRequest:
		out := resp.(*kmsg.FetchResponse)
		out.ErrorCode = e.Code
		for _, t := range r.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic, rt.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode, rp.RecordBatches = p.Partition, e.Code, []byte{}
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.ListOffsetsRequest:
		out := resp.(*kmsg.ListOffsetsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, e.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.MetadataRequest:
		out := resp.(*kmsg.MetadataResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic, rt.TopicID, rt.ErrorCode = t.Topic, t.TopicID, e.Code
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.OffsetForLeaderEpochRequest:
		out := resp.(*kmsg.OffsetForLeaderEpochResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, e.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			out.Topics = append(out.Topics, rt)
		}
	case *kmsg.CreateTopicsRequest:
		out := resp.(*kmsg.CreateTopicsResponse)
		for _, t := range r.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = t.Topic, e.Code
			out.Topics = append(out.Topics, rt)
		}
	default:
		// Most other responses carry a top-level ErrorCode; set it where
		// there is one. kmsg's generated structs all name it ErrorCode.
		if v := reflect.ValueOf(resp); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
			if f := v.Elem().FieldByName("ErrorCode"); f.IsValid() && f.CanSet() && f.Kind() == reflect.Int16 {
				f.SetInt(int64(e.Code))
			}
		}
	}
	return resp
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
	for _, r := range SupportedAPIs {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = r.Key, r.Min, r.Max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	slices.SortFunc(resp.ApiKeys, func(a, b kmsg.ApiVersionsResponseApiKey) int { return int(a.ApiKey) - int(b.ApiKey) })
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
