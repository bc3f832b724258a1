package docker

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"time"
)

// Labels on everything a run creates. LabelManaged marks what garantia
// made at all (and `garantia clean` removes); LabelRun names the run, so a
// run's Teardown removes its own things only.
const (
	// LabelManaged is "true" on every container, network and image.
	LabelManaged = "garantia.managed"
	// LabelRun is the run id on every container and network.
	LabelRun = "garantia.run"
	// LabelNode is the node's name ("n1") on every container.
	LabelNode = "garantia.node"
	// LabelHarness says which harness process owns a run:
	// "<hostname>/<pid>/<process start time in clock ticks>". `garantia
	// clean` leaves the things of a harness that is still alive.
	LabelHarness = "garantia.harness"
	// LabelDir is the run's store folder, so that clean can say which run
	// a leftover belonged to.
	LabelDir = "garantia.dir"
	// LabelBinary is the sha256 of the garantia binary inside an image.
	LabelBinary = "garantia.binary-sha256"
)

// Engine is the part of the Docker engine API this backend uses: the one
// seam between the backend's logic and the Docker SDK. NewEngine returns
// the real one; tests use an in-memory fake.
//
// Every method takes a context that bounds the call; ids are the engine's
// ids or names. A missing object is reported with an error for which
// IsNotFound is true.
type Engine interface {
	// Version returns the engine's version, its API version and its
	// operating system and architecture (GOOS/GOARCH names: "linux",
	// "amd64"). It also tells whether the engine is reachable at all.
	Version(ctx context.Context) (EngineVersion, error)

	// ImageExists reports whether an image with this tag is present.
	ImageExists(ctx context.Context, tag string) (bool, error)
	// BuildImage builds an image from a tar build context (holding a
	// Dockerfile), tags it and labels it; it returns once the build is
	// done, with the builder's error message if it failed.
	BuildImage(ctx context.Context, buildContext io.Reader, tag string, labels map[string]string) error
	// ListImages lists the images carrying every label of labels (a value
	// of "" matches any value).
	ListImages(ctx context.Context, labels map[string]string) ([]Resource, error)
	// RemoveImage removes an image by id or tag.
	RemoveImage(ctx context.Context, id string) error

	// CreateNetwork creates a bridge network and returns its id. An
	// overlapping subnet is reported with an error for which IsOverlap is
	// true.
	CreateNetwork(ctx context.Context, spec NetworkSpec) (string, error)
	// ListNetworks lists the networks carrying every label of labels; a
	// nil map lists all networks.
	ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error)
	// RemoveNetwork removes a network by id or name.
	RemoveNetwork(ctx context.Context, id string) error

	// CreateContainer creates (but does not start) a container and returns
	// its id.
	CreateContainer(ctx context.Context, spec ContainerSpec) (string, error)
	// StartContainer starts a created or stopped container.
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends SIGTERM and, after grace, SIGKILL; it returns
	// once the container has stopped.
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	// KillContainer sends signal ("SIGKILL") to the container's main
	// process. It does not wait.
	KillContainer(ctx context.Context, id, signal string) error
	// WaitStopped returns once the container is not running.
	WaitStopped(ctx context.Context, id string) error
	// PauseContainer freezes every process of the container (cgroup
	// freezer) and returns once they are frozen.
	PauseContainer(ctx context.Context, id string) error
	// UnpauseContainer thaws a paused container.
	UnpauseContainer(ctx context.Context, id string) error
	// InspectContainer returns the container's state.
	InspectContainer(ctx context.Context, id string) (ContainerState, error)
	// Logs copies the container's stdout and stderr (demultiplexed) to w,
	// starting at since (the engine's clock; zero for everything). With
	// follow it keeps copying until the container stops or ctx ends.
	Logs(ctx context.Context, id string, since time.Time, follow bool, w io.Writer) error
	// ListContainers lists the containers, running or not, carrying every
	// label of labels.
	ListContainers(ctx context.Context, labels map[string]string) ([]Resource, error)
	// RemoveContainer removes a container, killing it first if it runs.
	RemoveContainer(ctx context.Context, id string) error

	// Close releases the client's connections.
	Close() error
}

// EngineVersion describes the engine.
type EngineVersion struct {
	Version    string // "20.10.24"
	APIVersion string // the API version both sides speak after negotiation
	OS         string // GOOS of the engine: "linux"
	Arch       string // GOARCH of the engine: "amd64", "arm64"
}

// Resource is a container, network or image as a listing shows it.
type Resource struct {
	ID     string
	Name   string // container or network name, or the image's first tag
	Labels map[string]string
	State  string // containers: "running", "exited", "paused", "created"
}

// Network is a network as a listing shows it, with its subnets.
type Network struct {
	Resource
	Subnets []netip.Prefix
}

// NetworkSpec is what CreateNetwork makes: a bridge network.
type NetworkSpec struct {
	Name string
	// Subnet and Gateway fix the network's addresses; invalid (zero)
	// values let the engine choose.
	Subnet  netip.Prefix
	Gateway netip.Addr
	Labels  map[string]string
	// Internal cuts the network off from the outside world (no NAT, no
	// route out); the host still reaches it through the bridge.
	Internal bool
}

// ContainerSpec is what CreateContainer makes.
type ContainerSpec struct {
	Name     string
	Hostname string
	Image    string
	Cmd      []string // arguments after the image's entrypoint
	Labels   map[string]string
	// User is "uid:gid" to run as; "" is the image's default (root).
	User string
	// Network is the network's name ("" the engine's default); IP the
	// container's fixed address in it (invalid: the engine chooses).
	Network string
	IP      netip.Addr
	// Binds are "host-path:container-path" bind mounts.
	Binds []string
}

// ContainerState is what InspectContainer reports.
type ContainerState struct {
	ID       string
	Status   string // "created", "running", "paused", "exited", ...
	Running  bool   // true also when paused
	Paused   bool
	Pid      int // the main process on the engine's host; 0 when stopped
	ExitCode int
	// StartedAt is when the engine last started it, on the engine's clock.
	StartedAt time.Time
	Labels    map[string]string
}

// Engine errors the backend tells apart; an Engine wraps them.
var (
	// ErrNotFound: no such container, network or image.
	ErrNotFound = errors.New("docker: not found")
	// ErrOverlap: a new network's subnet overlaps an existing one.
	ErrOverlap = errors.New("docker: subnet overlaps an existing network")
	// ErrNoEngine: no Docker engine answers.
	ErrNoEngine = errors.New("docker: no engine reachable")
)

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsOverlap reports whether err says a subnet is taken.
func IsOverlap(err error) bool { return errors.Is(err, ErrOverlap) }
