package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// sdkEngine is the Engine over the Docker SDK's client.
type sdkEngine struct {
	cl *client.Client
}

// NewEngine connects to the Docker engine the environment names
// (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY;
// the local socket by default) and negotiates the API version on the
// first call, so that engines older than the SDK work. It does not
// contact the engine: call Version to learn whether one answers.
func NewEngine() (Engine, error) {
	cl, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: client: %w", err)
	}
	return &sdkEngine{cl: cl}, nil
}

// wrap maps the SDK's errors onto this package's.
func wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%w: %v", ErrNoEngine, err)
	case strings.Contains(strings.ToLower(err.Error()), "overlap"):
		// "Pool overlaps with other one on this address space": the
		// engine says it in words only.
		return fmt.Errorf("%w: %v", ErrOverlap, err)
	}
	return err
}

func labelFilter(labels map[string]string) filters.Args {
	f := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	return f
}

func (e *sdkEngine) Version(ctx context.Context) (EngineVersion, error) {
	v, err := e.cl.ServerVersion(ctx)
	if err != nil {
		return EngineVersion{}, wrap(err)
	}
	return EngineVersion{Version: v.Version, APIVersion: e.cl.ClientVersion(), OS: v.Os, Arch: v.Arch}, nil
}

func (e *sdkEngine) ImageExists(ctx context.Context, tag string) (bool, error) {
	_, err := e.cl.ImageInspect(ctx, tag)
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, wrap(err)
}

func (e *sdkEngine) BuildImage(ctx context.Context, buildContext io.Reader, tag string, labels map[string]string) error {
	resp, err := e.cl.ImageBuild(ctx, buildContext, build.ImageBuildOptions{
		Tags:   []string{tag},
		Labels: labels,
		// The classic builder: it is in every engine, needs no BuildKit
		// session, and FROM scratch pulls nothing.
		Version:     build.BuilderV1,
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
	})
	if err != nil {
		return wrap(err)
	}
	defer resp.Body.Close()
	// The body is a stream of JSON messages; a failed step shows up only
	// as an "error" message in it, not as an HTTP error.
	dec := json.NewDecoder(resp.Body)
	var last string
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the build's output: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("image build failed: %s (last step: %s)", msg.Error, strings.TrimSpace(last))
		}
		if s := strings.TrimSpace(msg.Stream); s != "" {
			last = s
		}
	}
}

func (e *sdkEngine) ListImages(ctx context.Context, labels map[string]string) ([]Resource, error) {
	imgs, err := e.cl.ImageList(ctx, image.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]Resource, 0, len(imgs))
	for _, im := range imgs {
		r := Resource{ID: im.ID, Labels: im.Labels}
		if len(im.RepoTags) > 0 {
			r.Name = im.RepoTags[0]
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *sdkEngine) RemoveImage(ctx context.Context, id string) error {
	_, err := e.cl.ImageRemove(ctx, id, image.RemoveOptions{Force: true, PruneChildren: true})
	return wrap(err)
}

func (e *sdkEngine) CreateNetwork(ctx context.Context, spec NetworkSpec) (string, error) {
	opts := network.CreateOptions{Driver: "bridge", Internal: spec.Internal, Labels: spec.Labels}
	if spec.Subnet.IsValid() {
		cfg := network.IPAMConfig{Subnet: spec.Subnet.String()}
		if spec.Gateway.IsValid() {
			cfg.Gateway = spec.Gateway.String()
		}
		opts.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{cfg}}
	}
	resp, err := e.cl.NetworkCreate(ctx, spec.Name, opts)
	if err != nil {
		return "", wrap(err)
	}
	return resp.ID, nil
}

func (e *sdkEngine) ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error) {
	nets, err := e.cl.NetworkList(ctx, network.ListOptions{Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]Network, 0, len(nets))
	for _, n := range nets {
		nw := Network{Resource: Resource{ID: n.ID, Name: n.Name, Labels: n.Labels}}
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				nw.Subnets = append(nw.Subnets, p)
			}
		}
		out = append(out, nw)
	}
	return out, nil
}

func (e *sdkEngine) RemoveNetwork(ctx context.Context, id string) error {
	return wrap(e.cl.NetworkRemove(ctx, id))
}

func (e *sdkEngine) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	cfg := &container.Config{
		Hostname: spec.Hostname,
		Image:    spec.Image,
		Cmd:      spec.Cmd,
		Labels:   spec.Labels,
		User:     spec.User,
	}
	host := &container.HostConfig{
		Binds:       spec.Binds,
		NetworkMode: container.NetworkMode(spec.Network),
		// json-file keeps the output across restarts of the container,
		// which Logs reads; bounded so a chatty node cannot fill a disk.
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "100m", "max-file": "2"}},
	}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		ep := &network.EndpointSettings{}
		if spec.IP.IsValid() {
			ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: spec.IP.String()}
		}
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{spec.Network: ep}}
	}
	resp, err := e.cl.ContainerCreate(ctx, cfg, host, netCfg, nil, spec.Name)
	if err != nil {
		return "", wrap(err)
	}
	return resp.ID, nil
}

func (e *sdkEngine) StartContainer(ctx context.Context, id string) error {
	return wrap(e.cl.ContainerStart(ctx, id, container.StartOptions{}))
}

func (e *sdkEngine) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return wrap(e.cl.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}))
}

func (e *sdkEngine) KillContainer(ctx context.Context, id, signal string) error {
	return wrap(e.cl.ContainerKill(ctx, id, signal))
}

func (e *sdkEngine) WaitStopped(ctx context.Context, id string) error {
	okc, errc := e.cl.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-okc:
		return nil
	case err := <-errc:
		return wrap(err)
	}
}

func (e *sdkEngine) PauseContainer(ctx context.Context, id string) error {
	return wrap(e.cl.ContainerPause(ctx, id))
}

func (e *sdkEngine) UnpauseContainer(ctx context.Context, id string) error {
	return wrap(e.cl.ContainerUnpause(ctx, id))
}

func (e *sdkEngine) InspectContainer(ctx context.Context, id string) (ContainerState, error) {
	c, err := e.cl.ContainerInspect(ctx, id)
	if err != nil {
		return ContainerState{}, wrap(err)
	}
	st := ContainerState{ID: c.ID}
	if c.Config != nil {
		st.Labels = c.Config.Labels
	}
	if s := c.State; s != nil {
		st.Status = string(s.Status)
		st.Running = s.Running
		st.Paused = s.Paused
		st.Pid = s.Pid
		st.ExitCode = s.ExitCode
		st.StartedAt, _ = time.Parse(time.RFC3339Nano, s.StartedAt)
	}
	return st, nil
}

func (e *sdkEngine) Logs(ctx context.Context, id string, since time.Time, follow bool, w io.Writer) error {
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow}
	if !since.IsZero() {
		// Unix seconds with nanoseconds: the engine's own clock, as
		// StartedAt reported it, so no clock skew enters.
		opts.Since = strconv.FormatInt(since.Unix(), 10) + "." + fmt.Sprintf("%09d", since.Nanosecond())
	}
	rc, err := e.cl.ContainerLogs(ctx, id, opts)
	if err != nil {
		return wrap(err)
	}
	defer rc.Close()
	// Without a TTY the engine multiplexes stdout and stderr into one
	// stream with 8-byte frame headers; StdCopy takes them apart.
	_, err = stdcopy.StdCopy(w, w, rc)
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil
	}
	return err
}

func (e *sdkEngine) ListContainers(ctx context.Context, labels map[string]string) ([]Resource, error) {
	cs, err := e.cl.ContainerList(ctx, container.ListOptions{All: true, Filters: labelFilter(labels)})
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]Resource, 0, len(cs))
	for _, c := range cs {
		r := Resource{ID: c.ID, Labels: c.Labels, State: string(c.State)}
		if len(c.Names) > 0 {
			r.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *sdkEngine) RemoveContainer(ctx context.Context, id string) error {
	return wrap(e.cl.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}))
}

func (e *sdkEngine) Close() error { return e.cl.Close() }
