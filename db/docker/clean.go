package docker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// CleanOptions choose what Clean removes. By default it is everything
// garantia made (LabelManaged) except the things of harnesses that are
// still running.
type CleanOptions struct {
	// Run limits the clean to one run's containers and network ("" is
	// every run).
	Run string
	// Images removes garantia's node images too.
	Images bool
	// Force removes also what belongs to a harness still running on this
	// host, or to one on another host (whose liveness cannot be seen).
	Force bool
	// DeadOnly removes only what belongs to harnesses known dead (on this
	// host, gone): what Setup does before a run. It wins over Force.
	DeadOnly bool
	// DryRun lists what would be removed and removes nothing.
	DryRun bool
}

// Removed is one thing Clean removed (or, in Kept, left).
type Removed struct {
	Kind string // "container", "network" or "image"
	Name string
	ID   string
	Run  string // LabelRun, "" for images
	Dir  string // LabelDir: the run's store folder
	// Why says, for a kept thing, why Clean left it.
	Why string
}

func (r Removed) String() string {
	s := r.Kind + " " + r.Name
	if r.Run != "" {
		s += " (run " + r.Run
		if r.Dir != "" {
			s += ", " + r.Dir
		}
		s += ")"
	}
	return s
}

// CleanResult is what Clean did.
type CleanResult struct {
	Removed []Removed
	Kept    []Removed
}

// Names lists the removed things in one line.
func (r CleanResult) Names() string {
	var s []string
	for _, x := range r.Removed {
		s = append(s, x.Kind+" "+x.Name)
	}
	return strings.Join(s, ", ")
}

// Clean removes the containers, networks and (with Images) images that
// garantia runs left on the engine: containers first (a network in use
// cannot go), then networks, then images. It goes on past a failed
// removal and returns every failure joined.
func Clean(ctx context.Context, eng Engine, opts CleanOptions) (CleanResult, error) {
	var res CleanResult
	filter := map[string]string{LabelManaged: "true"}
	if opts.Run != "" {
		filter[LabelRun] = opts.Run
	}
	// keep decides from a thing's labels whether to leave it, and why.
	keep := func(labels map[string]string) string {
		state, why := harnessStatus(labels[LabelHarness])
		switch {
		case state == harnessDead:
			return ""
		case opts.DeadOnly:
			return why
		case opts.Force:
			return ""
		case state == harnessAlive:
			return why + "; --force removes it"
		}
		return why + "; --force removes it"
	}
	var errs []error

	cs, err := eng.ListContainers(ctx, filter)
	if err != nil {
		return res, fmt.Errorf("list garantia's containers: %w", err)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	for _, c := range cs {
		r := Removed{Kind: "container", Name: c.Name, ID: c.ID, Run: c.Labels[LabelRun], Dir: c.Labels[LabelDir]}
		if why := keep(c.Labels); why != "" {
			r.Why = why
			res.Kept = append(res.Kept, r)
			continue
		}
		if !opts.DryRun {
			if err := eng.RemoveContainer(ctx, c.ID); err != nil && !IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove container %s: %w", c.Name, err))
				continue
			}
		}
		res.Removed = append(res.Removed, r)
	}

	nets, err := eng.ListNetworks(ctx, filter)
	if err != nil {
		errs = append(errs, fmt.Errorf("list garantia's networks: %w", err))
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
	for _, n := range nets {
		r := Removed{Kind: "network", Name: n.Name, ID: n.ID, Run: n.Labels[LabelRun], Dir: n.Labels[LabelDir]}
		if why := keep(n.Labels); why != "" {
			r.Why = why
			res.Kept = append(res.Kept, r)
			continue
		}
		if !opts.DryRun {
			if err := eng.RemoveNetwork(ctx, n.ID); err != nil && !IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
				continue
			}
		}
		res.Removed = append(res.Removed, r)
	}

	if opts.Images && !opts.DeadOnly && opts.Run == "" {
		imgs, err := eng.ListImages(ctx, map[string]string{LabelManaged: "true"})
		if err != nil {
			errs = append(errs, fmt.Errorf("list garantia's images: %w", err))
		}
		sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
		for _, im := range imgs {
			r := Removed{Kind: "image", Name: im.Name, ID: im.ID}
			if r.Name == "" {
				r.Name = shortID(strings.TrimPrefix(im.ID, "sha256:"))
			}
			if !opts.DryRun {
				if err := eng.RemoveImage(ctx, im.ID); err != nil && !IsNotFound(err) {
					// An image a kept container uses cannot go; say so.
					r.Why = err.Error()
					res.Kept = append(res.Kept, r)
					continue
				}
			}
			res.Removed = append(res.Removed, r)
		}
	}
	return res, errors.Join(errs...)
}
