// Package proxytest gives tests the harness's own link proxies (package
// db/proxy), closed when the test ends: the broker's partition tests cut
// their links with them, so that they exercise the very fault `garantia
// test` injects (a cut holds the bytes in flight and new connections, as
// a packet drop does to TCP, and delivers them when it heals).
package proxytest

import (
	"testing"

	"github.com/garantia/garantia/db/proxy"
)

// New starts a proxy on a free loopback port forwarding to upstream ("":
// set it later with SetUpstream), closed when t ends.
func New(t testing.TB, name, upstream string) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(proxy.Options{Name: name, Listen: "127.0.0.1:0", Upstream: upstream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing link %s: %v", name, err)
		}
	})
	return p
}

// Cut cuts (true) or heals (false) both directions of p.
func Cut(p *proxy.Proxy, cut bool) {
	p.Cut(proxy.Up, cut)
	p.Cut(proxy.Down, cut)
}
