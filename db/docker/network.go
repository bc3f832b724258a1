package docker

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
)

// subnetPools are where run networks get their /24: ranges that Docker's
// own default pools (172.17–31/16 handed out from the bottom, 192.168/16)
// reach last, and that home and office networks rarely use.
var subnetPools = []netip.Prefix{
	netip.MustParsePrefix("172.28.0.0/14"), // 172.28.0.0 – 172.31.255.255
	netip.MustParsePrefix("10.213.0.0/16"),
}

// subnetAttempts bounds how many subnets Setup tries when the engine says
// the chosen one overlaps (another run took it between our listing and
// our create).
const subnetAttempts = 16

// maxNodes bounds the nodes of a run: the addresses .11 to .250 of its
// /24.
const maxNodes = 240

// nodeHost is the last byte of node id's address: n1 is .11.
func nodeHost(id int32) byte { return byte(10 + id) }

// nodeIP is node id's address in subnet (a /24).
func nodeIP(subnet netip.Prefix, id int32) netip.Addr {
	a := subnet.Masked().Addr().As4()
	a[3] = nodeHost(id)
	return netip.AddrFrom4(a)
}

// gatewayIP is the bridge's own address in subnet: .1, where the harness
// reaches the nodes from.
func gatewayIP(subnet netip.Prefix) netip.Addr {
	a := subnet.Masked().Addr().As4()
	a[3] = 1
	return netip.AddrFrom4(a)
}

// candidateSubnets lists the /24s of the pools that overlap nothing in
// taken, starting at a place that depends on runID, so that runs started
// at the same moment try different subnets first.
func candidateSubnets(taken []netip.Prefix, runID string) []netip.Prefix {
	var all []netip.Prefix
	for _, pool := range subnetPools {
		base := pool.Masked().Addr().As4()
		count := 1 << (24 - pool.Bits())
		for i := 0; i < count; i++ {
			a := base
			// Add i to the third byte, carrying into the second.
			v := uint32(a[1])<<8 | uint32(a[2])
			v += uint32(i)
			a[1], a[2] = byte(v>>8), byte(v)
			all = append(all, netip.PrefixFrom(netip.AddrFrom4(a), 24))
		}
	}
	h := fnv.New32a()
	h.Write([]byte(runID))
	start := int(h.Sum32() % uint32(len(all)))
	out := make([]netip.Prefix, 0, len(all))
	for i := range all {
		p := all[(start+i)%len(all)]
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			out = append(out, p)
		}
	}
	return out
}

// takenSubnets lists the subnets of the engine's networks and of this
// host's interfaces: a run network must overlap neither, or the host would
// route the harness's packets to the wrong place.
func takenSubnets(ctx context.Context, eng Engine) ([]netip.Prefix, error) {
	nets, err := eng.ListNetworks(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list the engine's networks: %w", err)
	}
	var taken []netip.Prefix
	for _, n := range nets {
		taken = append(taken, n.Subnets...)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(ipn.String()); err == nil && p.Addr().Is4() {
					taken = append(taken, p.Masked())
				}
			}
		}
	}
	return taken, nil
}

// createNetwork creates the run's network on a free /24 and returns its id
// and subnet, retrying on the next subnet when the engine reports an
// overlap.
func createNetwork(ctx context.Context, eng Engine, name, runID string, labels map[string]string) (string, netip.Prefix, error) {
	taken, err := takenSubnets(ctx, eng)
	if err != nil {
		return "", netip.Prefix{}, err
	}
	cands := candidateSubnets(taken, runID)
	if len(cands) == 0 {
		return "", netip.Prefix{}, fmt.Errorf("create network %s: every /24 of %v is taken", name, subnetPools)
	}
	var last error
	for i, subnet := range cands {
		if i == subnetAttempts {
			break
		}
		id, err := eng.CreateNetwork(ctx, NetworkSpec{
			Name:     name,
			Subnet:   subnet,
			Gateway:  gatewayIP(subnet),
			Labels:   labels,
			Internal: true,
		})
		if err == nil {
			return id, subnet, nil
		}
		if !IsOverlap(err) {
			return "", netip.Prefix{}, fmt.Errorf("create network %s on %s: %w", name, subnet, err)
		}
		last = err
	}
	return "", netip.Prefix{}, fmt.Errorf("create network %s: %d subnets in a row overlapped: %w", name, subnetAttempts, last)
}
