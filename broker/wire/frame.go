package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxFrameBytes bounds one request frame (Kafka's
// socket.request.max.bytes is 100 MiB too). A larger size prefix closes the
// connection before any of the body is allocated.
const DefaultMaxFrameBytes = 100 << 20

// Errors of framing and decoding. Each closes the connection it came from
// and no other.
var (
	// ErrFrameTooLarge: the size prefix exceeded the frame limit, so the
	// body was not read (a client cannot make the broker allocate it).
	ErrFrameTooLarge = errors.New("wire: frame larger than the limit")
	// ErrMalformed: the frame's header or body does not parse as the
	// request its key and version claim, so no reply can be trusted to be
	// understood by the sender.
	ErrMalformed = errors.New("wire: malformed request")
)

// ReadFrame reads one int32-size-prefixed frame. A size below zero or above
// maxBytes returns ErrFrameTooLarge (wrapped) without reading the body.
func ReadFrame(r io.Reader, maxBytes int) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || int64(n) > int64(maxBytes) {
		return nil, fmt.Errorf("%w: size prefix %d, limit %d bytes", ErrFrameTooLarge, n, maxBytes)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return frame, nil
}

// Header is the part of a request header that every version shares
// (request header v1): enough to answer even a request whose body cannot be
// parsed.
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
}

// ParseHeader reads the v1 request header (key, version, correlation id,
// nullable client id) and returns the rest of the frame. The flexible
// header's tag section, if any, is still at the start of rest: only the
// request type knows whether it is there.
func ParseHeader(frame []byte) (Header, []byte, error) {
	r := kbin.Reader{Src: frame}
	h := Header{
		Key:           r.Int16(),
		Version:       r.Int16(),
		CorrelationID: r.Int32(),
		ClientID:      r.NullableString(),
	}
	if err := r.Complete(); err != nil {
		return Header{}, nil, fmt.Errorf("%w: request header of %d bytes: %v", ErrMalformed, len(frame), err)
	}
	return h, r.Src, nil
}

// ParseBody decodes the body of a request whose header was h. It returns
// the request, or a nil request and no error when kmsg does not know the key
// or the version (the caller answers with an error code), or ErrMalformed
// when the bytes do not parse.
func ParseBody(h Header, rest []byte) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil || h.Version < 0 || h.Version > req.MaxVersion() {
		return nil, nil
	}
	req.SetVersion(h.Version)
	r := kbin.Reader{Src: rest}
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
		if err := r.Complete(); err != nil {
			return nil, fmt.Errorf("%w: %s v%d header tags: %v", ErrMalformed, kmsg.NameForKey(h.Key), h.Version, err)
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return nil, fmt.Errorf("%w: %s v%d body: %v", ErrMalformed, kmsg.NameForKey(h.Key), h.Version, err)
	}
	return req, nil
}

// AppendResponse appends one response frame: size, correlation id, the
// header tag section for flexible versions (response header v1; ApiVersions
// always uses header v0 so that a client that guessed a too-new version can
// still read it), then the body.
func AppendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		dst = append(dst, 0) // empty tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
