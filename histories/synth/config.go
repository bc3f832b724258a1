package synth

import (
	"errors"
	"fmt"
	"time"
)

// Config describes the simulated test. Start from [DefaultConfig] and change
// what you need: every field is used as given (a zero rate means none), and
// [Config.Validate] rejects what cannot be simulated.
type Config struct {
	// Ops is the number of client events (history lines: invocations plus
	// completions, Jepsen's notion of an "op") of the main phase. It is
	// rounded up to an even number, since every invoked operation completes.
	// The final drain (about 2*Keys + 2*records/MaxPollRecords events) and the
	// nemesis events come on top of it.
	Ops int
	// Keys is the number of partitions, named "0", "1", ...
	Keys int
	// Processes is the number of concurrent client threads. Thread i starts
	// as process i; after an info completion it continues as process
	// i+Processes, then i+2*Processes, ... (Jepsen's rule).
	Processes int
	// InfoRate is the fraction of operations whose outcome is unknown (info).
	InfoRate float64
	// FailRate is the fraction of operations that definitely did not happen.
	FailRate float64
	// Acks0 makes ok sends report no offset (["send", k, [null, v]]), as a
	// producer with acks=0 would.
	Acks0 bool
	// Seed drives every random choice.
	Seed int64
	// MopsPerSend is the largest number of micro-operations in one send;
	// each send carries 1..MopsPerSend of them, to random keys, applied
	// atomically and in order.
	MopsPerSend int
	// SendRate and AssignRate are the fractions of operations that are sends
	// and assigns; the rest are polls. A process with no partitions assigned
	// always assigns first.
	SendRate   float64
	AssignRate float64
	// MaxPollRecords bounds the records one poll returns over all its keys,
	// as Kafka's max.poll.records does.
	MaxPollRecords int
	// NemesisInterval is the mean simulated time between nemesis actions
	// (start-partition, kill, pause, ... and their heals); 0 means no nemesis.
	NemesisInterval time.Duration
	// CommitRate and FetchRate record the consumer group's committed
	// offsets (group Group): after an ok poll that read something, its
	// process commits what it read with probability CommitRate, as a commit
	// op (Kafka's commitSync); FetchRate is the fraction of operations that
	// fetch the group's committed offsets of every key back (committed
	// ops). With both 0 (the default) the history records no commit: each
	// poll commits, unrecorded, as it returns.
	CommitRate float64
	FetchRate  float64
}

// Group is the consumer group of the commits and committed ops the
// simulator records.
const Group = "synth-group"

// WithCommits is c recording the group's commits and fetches at the
// rates a realistic subscribe workload has (see Config.CommitRate), when
// c records none.
func (c Config) WithCommits() Config {
	if c.CommitRate == 0 && c.FetchRate == 0 {
		c.CommitRate, c.FetchRate = 0.5, 0.02
	}
	return c
}

// DefaultConfig is a realistic small test: 10 keys, 20 processes, 1% info,
// 1% fail, 60% sends, 5% assigns, 35% polls, a nemesis action every 2s of
// simulated time, and 100,000 client events.
func DefaultConfig() Config {
	return Config{
		Ops:             100_000,
		Keys:            10,
		Processes:       20,
		InfoRate:        0.01,
		FailRate:        0.01,
		Seed:            1,
		MopsPerSend:     1,
		SendRate:        0.60,
		AssignRate:      0.05,
		MaxPollRecords:  500,
		NemesisInterval: 2 * time.Second,
	}
}

// Limits on a config, so that a typo cannot ask for a history that never
// finishes or exhausts memory.
const (
	maxKeys        = 100_000
	maxProcesses   = 100_000
	maxMopsPerSend = 1_000
)

// ErrConfig is wrapped by every error of [Config.Validate].
var ErrConfig = errors.New("synth: invalid config")

// Validate reports the first field that cannot be simulated.
func (c Config) Validate() error {
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	rate := func(field string, r float64) error {
		if !(r >= 0 && r <= 1) { // also rejects NaN
			return bad(field, "is %v; want a fraction in [0, 1]", r)
		}
		return nil
	}
	switch {
	case c.Ops < 0:
		return bad("Ops", "is %d; want >= 0", c.Ops)
	case c.Keys < 1 || c.Keys > maxKeys:
		return bad("Keys", "is %d; want 1..%d", c.Keys, maxKeys)
	case c.Processes < 1 || c.Processes > maxProcesses:
		return bad("Processes", "is %d; want 1..%d", c.Processes, maxProcesses)
	case c.MopsPerSend < 1 || c.MopsPerSend > maxMopsPerSend:
		return bad("MopsPerSend", "is %d; want 1..%d", c.MopsPerSend, maxMopsPerSend)
	case c.MaxPollRecords < 1:
		return bad("MaxPollRecords", "is %d; want >= 1", c.MaxPollRecords)
	case c.NemesisInterval < 0:
		return bad("NemesisInterval", "is %v; want >= 0", c.NemesisInterval)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"InfoRate", c.InfoRate}, {"FailRate", c.FailRate}, {"SendRate", c.SendRate}, {"AssignRate", c.AssignRate},
		{"CommitRate", c.CommitRate}, {"FetchRate", c.FetchRate}} {
		if err := rate(r.name, r.v); err != nil {
			return err
		}
	}
	if c.InfoRate+c.FailRate > 1 {
		return bad("InfoRate+FailRate", "is %v; want <= 1", c.InfoRate+c.FailRate)
	}
	if c.SendRate+c.AssignRate > 1 {
		return bad("SendRate+AssignRate", "is %v; want <= 1", c.SendRate+c.AssignRate)
	}
	return nil
}
