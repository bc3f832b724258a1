package docker

// Benchmarks of the docker backend against the real engine. Each
// iteration is seconds long; run them with a fixed count:
//
//	go test -run '^$' -bench . -benchtime 3x ./db/docker
//
// They report their own metrics (seconds, ops/s) besides ns/op.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/garantia/garantia/db"
	"github.com/garantia/garantia/db/local"
)

// BenchmarkImageBuild: the node image from a static binary, cold (no
// image on the engine: a build) and warm (the image is there: a hash and a
// look-up).
func BenchmarkImageBuild(b *testing.B) {
	eng := realEngine(b)
	bin := garantiaBinary(b)
	ctx := context.Background()
	sum, err := fileSHA256(bin)
	if err != nil {
		b.Fatal(err)
	}
	tag := ImageTag(sum)
	imagesMu.Lock()
	imagesBuilt[tag] = true
	imagesMu.Unlock()
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if err := eng.RemoveImage(ctx, tag); err != nil && !IsNotFound(err) {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := EnsureImage(ctx, eng, bin, "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		if _, err := EnsureImage(ctx, eng, bin, "", nil); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := EnsureImage(ctx, eng, bin, "", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClusterStart: Setup of 1 and 3 nodes with the image present
// (network, containers, every node answering), and their Teardown.
func BenchmarkClusterStart(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var setup, teardown time.Duration
			for i := 0; i < b.N; i++ {
				d, _ := newDockerCluster(b, nodes, nil)
				start := time.Now()
				if err := d.Setup(context.Background()); err != nil {
					b.Fatal(err)
				}
				setup += time.Since(start)
				start = time.Now()
				if err := d.Teardown(context.Background()); err != nil {
					b.Fatal(err)
				}
				teardown += time.Since(start)
			}
			b.ReportMetric(setup.Seconds()/float64(b.N), "setup-s")
			b.ReportMetric(teardown.Seconds()/float64(b.N), "teardown-s")
		})
	}
}

// BenchmarkOpsPerSecond: the queue workload as fast as one node answers,
// on the local backend and on docker, on the same machine: what the
// container's network stack costs. Reports completed ops/s.
func BenchmarkOpsPerSecond(b *testing.B) {
	const limit = 5 * time.Second
	backends := map[string]func(b *testing.B) db.DB{
		"local": func(b *testing.B) db.DB {
			d, err := local.New(local.Options{Config: db.Config{Binary: garantiaBinary(b), Nodes: 1, Dir: b.TempDir()}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Teardown(context.Background()) })
			return d
		},
		"docker": func(b *testing.B) db.DB {
			d, _ := newDockerCluster(b, 1, nil)
			return d
		},
	}
	for _, name := range []string{"local", "docker"} {
		b.Run(name, func(b *testing.B) {
			var ops int64
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				d := backends[name](b)
				if err := d.Setup(context.Background()); err != nil {
					b.Fatal(err)
				}
				res := runWorkload(b, d, b.TempDir(), workload{limit: limit, rate: 0, concurrency: 10, seed: int64(i + 1)})
				ops += res.counts.OK + res.counts.Info + res.counts.Fail
				elapsed += res.elapsed
				if err := d.Teardown(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ops)/elapsed.Seconds(), "ops/s")
		})
	}
}

// BenchmarkFailover: how long a 3-node cluster takes to elect a new
// partition leader once iptables cut the old one off. Needs the broker's
// cluster mode; skips without it.
func BenchmarkFailover(b *testing.B) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		d := newReplicatedCluster(b)
		_, took := isolateLeader(b, d)
		total += took
		if err := d.Teardown(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "failover-s")
}
