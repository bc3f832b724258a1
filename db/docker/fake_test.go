package docker

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// fakeEngine is an in-memory Engine for the backend's logic: containers
// are records whose state the calls change; nothing runs. Set the fail*
// fields to make calls fail.
type fakeEngine struct {
	mu         sync.Mutex
	nextID     int
	nextPid    int
	images     map[string]Resource // by tag
	networks   map[string]*Network // by id
	containers map[string]*fakeContainer
	calls      []string
	builds     int

	// overlaps makes that many CreateNetwork calls fail with ErrOverlap.
	overlaps int
	// failCreate makes CreateContainer fail for a container whose name
	// ends with this suffix, after creating it (as a half-done create
	// would leave it).
	failCreate string
	// exitOnStart makes a started container exit at once with this
	// output, as a broker rejecting its flags does.
	exitOnStart string
	// down makes every call fail with ErrNoEngine.
	down bool
}

type fakeContainer struct {
	Resource
	spec      ContainerSpec
	running   bool
	paused    bool
	pid       int
	exitCode  int
	startedAt time.Time
	starts    int
	logs      []string // one entry per line, in order
	logTimes  []time.Time
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		nextPid:    1000,
		images:     map[string]Resource{},
		networks:   map[string]*Network{},
		containers: map[string]*fakeContainer{},
	}
}

func (f *fakeEngine) call(format string, args ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	if f.down {
		return fmt.Errorf("%w: fake engine is down", ErrNoEngine)
	}
	return nil
}

func (f *fakeEngine) id() string {
	f.nextID++
	return fmt.Sprintf("%064x", f.nextID)
}

func matches(labels, want map[string]string) bool {
	for k, v := range want {
		got, ok := labels[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

func (f *fakeEngine) Version(ctx context.Context) (EngineVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("version"); err != nil {
		return EngineVersion{}, err
	}
	return EngineVersion{Version: "fake", APIVersion: "1.41", OS: "linux", Arch: "amd64"}, nil
}

func (f *fakeEngine) ImageExists(ctx context.Context, tag string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("image-exists %s", tag); err != nil {
		return false, err
	}
	_, ok := f.images[tag]
	return ok, nil
}

func (f *fakeEngine) BuildImage(ctx context.Context, bc io.Reader, tag string, labels map[string]string) error {
	b, err := io.ReadAll(bc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("build %s", tag); err != nil {
		return err
	}
	if len(b) == 0 {
		return fmt.Errorf("empty build context")
	}
	f.builds++
	f.images[tag] = Resource{ID: "sha256:" + f.id(), Name: tag, Labels: labels}
	return nil
}

func (f *fakeEngine) ListImages(ctx context.Context, labels map[string]string) ([]Resource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("list-images"); err != nil {
		return nil, err
	}
	var out []Resource
	for _, im := range f.images {
		if matches(im.Labels, labels) {
			out = append(out, im)
		}
	}
	return out, nil
}

func (f *fakeEngine) RemoveImage(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("remove-image %s", id); err != nil {
		return err
	}
	for tag, im := range f.images {
		if im.ID == id || tag == id {
			delete(f.images, tag)
			return nil
		}
	}
	return fmt.Errorf("%w: image %s", ErrNotFound, id)
}

func (f *fakeEngine) CreateNetwork(ctx context.Context, spec NetworkSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("create-network %s %s", spec.Name, spec.Subnet); err != nil {
		return "", err
	}
	if f.overlaps > 0 {
		f.overlaps--
		return "", fmt.Errorf("%w: fake pool overlaps", ErrOverlap)
	}
	for _, n := range f.networks {
		if n.Name == spec.Name {
			return "", fmt.Errorf("network %s exists", spec.Name)
		}
		for _, s := range n.Subnets {
			if s.Overlaps(spec.Subnet) {
				return "", fmt.Errorf("%w: %s", ErrOverlap, s)
			}
		}
	}
	if !spec.Internal {
		return "", fmt.Errorf("fake: the backend must create internal networks")
	}
	id := f.id()
	f.networks[id] = &Network{Resource: Resource{ID: id, Name: spec.Name, Labels: spec.Labels}, Subnets: []netip.Prefix{spec.Subnet}}
	return id, nil
}

func (f *fakeEngine) ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("list-networks"); err != nil {
		return nil, err
	}
	var out []Network
	for _, n := range f.networks {
		if matches(n.Labels, labels) {
			out = append(out, *n)
		}
	}
	return out, nil
}

func (f *fakeEngine) RemoveNetwork(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("remove-network %s", id); err != nil {
		return err
	}
	n, ok := f.networks[id]
	if !ok {
		return fmt.Errorf("%w: network %s", ErrNotFound, id)
	}
	for _, c := range f.containers {
		if c.spec.Network == n.Name {
			return fmt.Errorf("network %s has active endpoints", n.Name)
		}
	}
	delete(f.networks, id)
	return nil
}

func (f *fakeEngine) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("create %s", spec.Name); err != nil {
		return "", err
	}
	if _, ok := f.images[spec.Image]; !ok {
		return "", fmt.Errorf("%w: image %s", ErrNotFound, spec.Image)
	}
	netOK := false
	for _, n := range f.networks {
		if n.Name == spec.Network && n.Subnets[0].Contains(spec.IP) {
			netOK = true
		}
	}
	if !netOK {
		return "", fmt.Errorf("fake: %s is not an address of network %s", spec.IP, spec.Network)
	}
	id := f.id()
	f.containers[id] = &fakeContainer{Resource: Resource{ID: id, Name: spec.Name, Labels: spec.Labels, State: "created"}, spec: spec}
	if f.failCreate != "" && strings.HasSuffix(spec.Name, f.failCreate) {
		return "", fmt.Errorf("fake: create %s failed half way", spec.Name)
	}
	return id, nil
}

func (f *fakeEngine) get(id string) (*fakeContainer, error) {
	c, ok := f.containers[id]
	if !ok {
		return nil, fmt.Errorf("%w: container %s", ErrNotFound, id)
	}
	return c, nil
}

func (c *fakeContainer) log(line string) {
	c.logs = append(c.logs, line)
	c.logTimes = append(c.logTimes, time.Now())
}

func (c *fakeContainer) stop(code int) {
	c.running, c.paused, c.pid, c.exitCode, c.State = false, false, 0, code, "exited"
}

func (f *fakeEngine) StartContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("start %s", shortID(id)); err != nil {
		return err
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	f.nextPid++
	c.running, c.paused, c.pid, c.State = true, false, f.nextPid, "running"
	c.startedAt = time.Now()
	c.starts++
	c.log(fmt.Sprintf("fake broker %s start %d", c.spec.Hostname, c.starts))
	if f.exitOnStart != "" {
		c.log(f.exitOnStart)
		c.stop(2)
	}
	return nil
}

func (f *fakeEngine) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("stop %s", shortID(id)); err != nil {
		return err
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	if c.paused {
		return fmt.Errorf("fake: cannot stop paused container %s", c.Name)
	}
	if c.running {
		c.log("fake broker shut down")
		c.stop(0)
	}
	return nil
}

func (f *fakeEngine) KillContainer(ctx context.Context, id, signal string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("kill %s %s", shortID(id), signal); err != nil {
		return err
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	if !c.running {
		return fmt.Errorf("fake: container %s is not running", c.Name)
	}
	c.stop(137)
	return nil
}

func (f *fakeEngine) WaitStopped(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("wait %s", shortID(id)); err != nil {
		return err
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	if c.running {
		return fmt.Errorf("fake: wait on a running container would block")
	}
	return nil
}

func (f *fakeEngine) PauseContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("pause %s", shortID(id)); err != nil {
		return err
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	if !c.running || c.paused {
		return fmt.Errorf("fake: cannot pause %s", c.Name)
	}
	c.paused, c.State = true, "paused"
	return nil
}

func (f *fakeEngine) UnpauseContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("unpause %s", shortID(id)); err != nil {
		return err
	}
	c, err := f.get(id)
	if err != nil {
		return err
	}
	if !c.paused {
		return fmt.Errorf("fake: container %s is not paused", c.Name)
	}
	c.paused, c.State = false, "running"
	return nil
}

func (f *fakeEngine) InspectContainer(ctx context.Context, id string) (ContainerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("inspect %s", shortID(id)); err != nil {
		return ContainerState{}, err
	}
	c, err := f.get(id)
	if err != nil {
		return ContainerState{}, err
	}
	return ContainerState{ID: id, Status: c.State, Running: c.running, Paused: c.paused, Pid: c.pid,
		ExitCode: c.exitCode, StartedAt: c.startedAt, Labels: c.Labels}, nil
}

func (f *fakeEngine) Logs(ctx context.Context, id string, since time.Time, follow bool, w io.Writer) error {
	next := 0
	for {
		f.mu.Lock()
		c, err := f.get(id)
		var lines []string
		running := false
		if err == nil {
			for ; next < len(c.logs); next++ {
				if !c.logTimes[next].Before(since) {
					lines = append(lines, c.logs[next])
				}
			}
			running = c.running
		}
		f.mu.Unlock()
		if err != nil {
			if next > 0 && IsNotFound(err) {
				return nil // removed while followed
			}
			return err
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
		if !follow || !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Millisecond):
		}
	}
}

func (f *fakeEngine) ListContainers(ctx context.Context, labels map[string]string) ([]Resource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("list-containers"); err != nil {
		return nil, err
	}
	var out []Resource
	for _, c := range f.containers {
		if matches(c.Labels, labels) {
			out = append(out, c.Resource)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeEngine) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("remove %s", shortID(id)); err != nil {
		return err
	}
	if _, err := f.get(id); err != nil {
		return err
	}
	delete(f.containers, id)
	return nil
}

func (f *fakeEngine) Close() error { return nil }

// byName returns the container named name.
func (f *fakeEngine) byName(name string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// counts returns how many containers and networks labelled as garantia's
// the engine holds.
func (f *fakeEngine) counts() (containers, networks int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Labels[LabelManaged] == "true" {
			containers++
		}
	}
	for _, n := range f.networks {
		if n.Labels[LabelManaged] == "true" {
			networks++
		}
	}
	return containers, networks
}

// fakeFirewall records the rules and delays each pid was given.
type fakeFirewall struct {
	mu      sync.Mutex
	missing error
	noNetem bool // Delay fails as on a kernel without sch_netem
	rules   map[int][]Rule
	delays  map[int][]Delay
	applies int
}

func newFakeFirewall() *fakeFirewall {
	return &fakeFirewall{rules: map[int][]Rule{}, delays: map[int][]Delay{}}
}

func (f *fakeFirewall) Delay(ctx context.Context, pid int, delays []Delay) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing != nil {
		return f.missing
	}
	if f.noNetem && len(delays) > 0 {
		return fmt.Errorf("%w: fake kernel without netem", ErrUnsupportedPacketFault)
	}
	f.delays[pid] = append([]Delay(nil), delays...)
	return nil
}

func (f *fakeFirewall) delaysOf(pid int) []Delay {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delays[pid]
}

func (f *fakeFirewall) Check() error { return f.missing }

func (f *fakeFirewall) Apply(ctx context.Context, pid int, rules []Rule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing != nil {
		return f.missing
	}
	f.applies++
	f.rules[pid] = append([]Rule(nil), rules...)
	return nil
}

func (f *fakeFirewall) of(pid int) []Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rules[pid]
}
