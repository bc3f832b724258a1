package histories

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/garantia/garantia/internal/atomicfile"
)

// TestInfo is a run's test.json ([TestFile]): what was run, with which
// seed, configuration and versions, on which nodes, and the fault schedule
// the seed drew. `garantia test` writes it when the run starts, again once
// the nodes are up (their addresses) and at the end of an interrupted run;
// `garantia show`, `report` and `serve` read it. Every field is named as
// the flag it records, so that a person can read the file.
type TestInfo struct {
	Name            string       `json:"name"`
	Seed            int64        `json:"seed"`
	Config          TestConfig   `json:"config"`
	GarantiaVersion string       `json:"garantia-version"`
	GoVersion       string       `json:"go-version"`
	StartTime       time.Time    `json:"start-time"`
	Nodes           []NodeInfo   `json:"nodes,omitempty"`
	Args            []string     `json:"args,omitempty"`
	Workload        WorkloadInfo `json:"workload"`
	// Cluster says whether the brokers ran as one replicating cluster or
	// as independent nodes.
	Cluster bool `json:"cluster"`
	// Faults are the resolved --nemesis specs ("kill:one+leader").
	Faults []string `json:"faults"`
	// Schedule is the fault schedule the seed drew: what the run was to
	// do, whether or not each step came before the end.
	Schedule []FaultStep `json:"nemesis-schedule"`
	// Interrupted names the phase of the run that an interrupt (Ctrl-C,
	// SIGTERM) cut short, such as "workload" or "drain"; "" for a run
	// that ended by itself. The history of an interrupted run stops
	// where the interrupt came; its verdict covers only that.
	Interrupted string `json:"interrupted,omitempty"`
}

// NodeInfo is one broker node of a run.
type NodeInfo struct {
	ID         int32  `json:"id"`
	Name       string `json:"name"`
	Addr       string `json:"addr"`
	Controller string `json:"controller,omitempty"`
}

// WorkloadInfo records the workload's fixed parameters.
type WorkloadInfo struct {
	Name  string `json:"name"`
	Topic string `json:"topic"`
}

// FaultStep is one step of a fault schedule as test.json stores it:
// times in whole milliseconds from the start of the workload.
type FaultStep struct {
	AtMs       int64  `json:"at-ms"`
	Kind       string `json:"kind"`
	Target     string `json:"target"`
	Behavior   string `json:"behavior,omitempty"`
	DurationMs int64  `json:"duration-ms"`
	Pick       uint64 `json:"pick"`
}

// TestConfig is a run's configuration: every flag of `garantia test` by
// its name, durations as Go duration strings ("30s").
type TestConfig struct {
	Nodes                 int      `json:"nodes"`
	ReplicationFactor     int      `json:"replication-factor"`
	MinInsyncReplicas     int      `json:"min-insync-replicas"`
	Acks                  string   `json:"acks"`
	TimeLimit             string   `json:"time-limit"`
	Rate                  float64  `json:"rate"`
	Concurrency           int      `json:"concurrency"`
	Nemesis               []string `json:"nemesis"`
	NemesisInterval       string   `json:"nemesis-interval"`
	Seed                  int64    `json:"seed"`
	DB                    string   `json:"db"`
	Store                 string   `json:"store"`
	UncleanLeaderElection bool     `json:"unclean-leader-election"`
	Fsync                 string   `json:"fsync"`
	Bugs                  []string `json:"bug"`
	Partitions            int      `json:"partitions"`
	SessionTimeout        string   `json:"session-timeout,omitempty"`
	ReplicaLagTimeMax     string   `json:"replica-lag-time-max,omitempty"`
	OpTimeout             string   `json:"op-timeout,omitempty"`
	DrainTimeout          string   `json:"drain-timeout,omitempty"`
	ConsumeVia            string   `json:"consume-via,omitempty"`

	// present are the keys the file held, so that Summary leaves out what
	// a file (an older one, or one written by another tool) does not say
	// rather than show a zero it never claimed.
	present map[string]bool
}

// UnmarshalJSON reads the configuration and notes which keys it held.
func (c *TestConfig) UnmarshalJSON(b []byte) error {
	type plain TestConfig
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return err
	}
	*c = TestConfig(p)
	c.present = make(map[string]bool, len(keys))
	for k, v := range keys {
		c.present[k] = !bytes.Equal(bytes.TrimSpace(v), []byte("null"))
	}
	return nil
}

// summaryKeys are the configuration's keys a one-line summary shows, in
// order: what tells runs of one test apart.
var summaryKeys = []string{"nodes", "replication-factor", "min-insync-replicas", "acks", "consume-via", "partitions", "nemesis",
	"nemesis-interval", "time-limit", "rate", "concurrency", "fsync", "unclean-leader-election", "bug", "seed"}

// Summary is the configuration in one line: "nodes=3 acks=all
// nemesis=partition,kill ...". False, empty and absent settings are left
// out; numbers are shown whenever the file holds them.
func (c TestConfig) Summary() string {
	fields := map[string]reflect.Value{}
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if tag != "" && tag != "-" {
			fields[tag] = v.Field(i)
		}
	}
	var parts []string
	for _, k := range summaryKeys {
		if c.present != nil && !c.present[k] {
			continue
		}
		var s string
		switch f := fields[k]; f.Kind() {
		case reflect.Bool:
			if !f.Bool() {
				continue
			}
			s = "true"
		case reflect.String:
			s = f.String()
		case reflect.Slice:
			items := make([]string, f.Len())
			for i := range items {
				items[i] = f.Index(i).String()
			}
			s = strings.Join(items, ",")
		case reflect.Float64:
			s = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%f", f.Float()), "0"), ".")
		default:
			s = fmt.Sprint(f.Interface())
		}
		if s == "" {
			continue
		}
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, " ")
}

// ParseTestInfo decodes a test.json. Its error says what does not parse.
func ParseTestInfo(b []byte) (*TestInfo, error) {
	var t TestInfo
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// LoadTestInfo reads dir's test.json: the decoded file and its bytes as
// stored (for views that show every field, whatever the version that
// wrote it). A folder without one gives nil, nil, nil; a file that does
// not parse gives its bytes and an error naming it.
func LoadTestInfo(dir string) (*TestInfo, []byte, error) {
	path := filepath.Join(dir, TestFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	t, err := ParseTestInfo(b)
	if err != nil {
		return nil, b, fmt.Errorf("%s: %w", path, err)
	}
	return t, b, nil
}

// WriteFile writes t as dir's test.json, indented, replacing the old one
// atomically.
func (t *TestInfo) WriteFile(dir string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", TestFile, err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, TestFile), append(b, '\n'), 0o644)
}
