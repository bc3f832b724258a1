package partition

import (
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/garantia/garantia/broker/wire"
)

// producerBatchesMax is how many recent batches per producer are kept for
// duplicate detection: Kafka keeps five, matching the most in-flight
// requests an idempotent producer may have.
const producerBatchesMax = 5

// batchMeta is what duplicate detection needs of one appended batch.
type batchMeta struct {
	firstSeq, lastSeq int32
	baseOffset        int64
}

// producerState is one idempotent producer's view of this partition.
type producerState struct {
	epoch   int16
	batches []batchMeta // oldest first, at most producerBatchesMax
}

func (s *producerState) last() batchMeta { return s.batches[len(s.batches)-1] }

// nextSeq is the sequence that must follow seq (sequences wrap to 0 after
// math.MaxInt32, as Kafka's do).
func nextSeq(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

// checkResult is the outcome of checking a batch against producer state.
type checkResult struct {
	duplicate  bool
	baseOffset int64 // of the original, when duplicate
}

// check decides whether the batch with header h may be appended. It
// follows Kafka's ProducerStateManager: an older epoch is fenced, a new
// epoch must start at sequence 0, a batch equal to one of the last five is
// a duplicate (answered with the original offset, never appended twice),
// and any other sequence that does not follow the last one is a gap.
//
// A producer with no state here is accepted at any sequence, as Kafka
// before 4.5 does: its state may have been legitimately lost with the log
// prefix that held it.
func check(producers map[int64]*producerState, h wire.BatchHeader) (checkResult, error) {
	if h.ProducerID < 0 {
		return checkResult{}, nil
	}
	st := producers[h.ProducerID]
	if st == nil {
		return checkResult{}, nil
	}
	switch {
	case h.ProducerEpoch < st.epoch:
		return checkResult{}, fmt.Errorf("%w: producer %d epoch %d is older than the current epoch %d (a newer producer instance fenced it)",
			kerr.InvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, st.epoch)
	case h.ProducerEpoch > st.epoch:
		if h.BaseSequence != 0 {
			return checkResult{}, fmt.Errorf("%w: producer %d starts epoch %d at sequence %d, a new epoch must start at 0",
				kerr.OutOfOrderSequenceNumber, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return checkResult{}, nil
	}
	for _, b := range st.batches {
		if b.firstSeq == h.BaseSequence && b.lastSeq == h.LastSequence() {
			return checkResult{duplicate: true, baseOffset: b.baseOffset}, nil
		}
	}
	if want := nextSeq(st.last().lastSeq); h.BaseSequence != want {
		return checkResult{}, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d (a batch is missing or was reordered)",
			kerr.OutOfOrderSequenceNumber, h.ProducerID, h.ProducerEpoch, h.BaseSequence, want)
	}
	return checkResult{}, nil
}

// record notes an appended batch (h with its assigned base offset) in the
// producer state. Batches from non-idempotent producers leave no state.
func record(producers map[int64]*producerState, h wire.BatchHeader) {
	if h.ProducerID < 0 || h.BaseSequence < 0 {
		return
	}
	st := producers[h.ProducerID]
	if st == nil || h.ProducerEpoch > st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		producers[h.ProducerID] = st
	} else if h.ProducerEpoch < st.epoch {
		// Only possible while rebuilding from a log written by a broker
		// that let a fenced epoch through; the newer epoch wins.
		return
	}
	st.batches = append(st.batches, batchMeta{firstSeq: h.BaseSequence, lastSeq: h.LastSequence(), baseOffset: h.BaseOffset})
	if len(st.batches) > producerBatchesMax {
		st.batches = append(st.batches[:0], st.batches[1:]...)
	}
}
