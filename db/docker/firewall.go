package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Rule is one packet filter rule on a node: drop what arrives from From,
// every packet or, with Probability below 1, each packet with that
// probability.
type Rule struct {
	From netip.Addr
	// Probability is the chance a packet is dropped, in (0, 1]; 1 drops
	// all (a partition), below 1 is packet loss.
	Probability float64
}

// Firewall sets the packet filter of a container's network namespace. The
// real one enters the namespace from the host with nsenter and loads the
// rules with iptables-restore; tests use a fake that records them.
type Firewall interface {
	// Check reports what this host lacks for Apply to work, naming the
	// missing command and how to install it; nil when nothing is missing.
	Check() error
	// Apply replaces the filter rules of the network namespace of process
	// pid (a container's main process, as the engine reports it) with
	// rules, atomically; no rules clears them.
	Apply(ctx context.Context, pid int, rules []Rule) error
	// Delay replaces the delays of what the namespace of process pid
	// sends (netem queueing on its eth0); no delays clears them. A kernel
	// without netem gives an error wrapping ErrUnsupportedPacketFault.
	Delay(ctx context.Context, pid int, delays []Delay) error
}

// Delay is the delay of the packets a node sends to one address.
type Delay struct {
	To     netip.Addr
	Delay  time.Duration
	Jitter time.Duration
}

// ErrFaultTools: this host cannot enter the containers' network
// namespaces (a command is missing, or the harness is not root, or the
// engine runs elsewhere); the error says which and what to do.
var ErrFaultTools = errors.New("docker: network faults unavailable on this host")

// IPTables is the real Firewall: `nsenter -t PID -n iptables-restore`,
// run from the host, because the scratch image holds no iptables. Both
// iptables backends (nft and legacy) work: the rules live in the
// container's namespace, where Docker itself puts only NAT rules for its
// DNS, which iptables-restore of the filter table leaves alone.
type IPTables struct {
	// Nsenter, Restore (iptables-restore) and TC are the commands'
	// paths; "" finds them on PATH and in /usr/sbin and /sbin, where
	// non-root PATHs often miss them.
	Nsenter, Restore, TC string
}

// sbinDirs are searched after PATH: iptables lives in /usr/sbin, which
// a non-root user's PATH often lacks.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

func findCommand(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH or in %s", name, strings.Join(sbinDirs, ", "))
}

// Check finds nsenter and iptables-restore and makes sure the harness may
// use them.
func (f *IPTables) Check() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: partitions and packet loss enter the containers' network namespaces, which needs the Docker engine on this Linux host (this is %s)", ErrFaultTools, runtime.GOOS)
	}
	if f.Nsenter == "" {
		p, err := findCommand("nsenter")
		if err != nil {
			return fmt.Errorf("%w: nsenter is missing (it enters each container's network namespace to set iptables rules): install util-linux (Debian/Ubuntu: apt-get install util-linux; Fedora: dnf install util-linux): %v", ErrFaultTools, err)
		}
		f.Nsenter = p
	}
	if f.TC == "" {
		// Only delays need tc; its absence is reported when one is asked.
		f.TC, _ = findCommand("tc")
	}
	if f.Restore == "" {
		p, err := findCommand("iptables-restore")
		if err != nil {
			return fmt.Errorf("%w: iptables is missing (its rules drop the packets of a partition): install iptables (Debian/Ubuntu: apt-get install iptables; Fedora: dnf install iptables-nft): %v", ErrFaultTools, err)
		}
		f.Restore = p
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: entering a container's network namespace and changing its iptables rules needs root; run garantia as root (sudo garantia test ...)", ErrFaultTools)
	}
	return nil
}

// restoreInput is the iptables-restore input that makes rules the whole
// filter table of a namespace.
func restoreInput(rules []Rule) []byte {
	var b bytes.Buffer
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "-A INPUT -s %s/32", r.From)
		if r.Probability < 1 {
			fmt.Fprintf(&b, " -m statistic --mode random --probability %s", strconv.FormatFloat(r.Probability, 'f', 6, 64))
		}
		b.WriteString(" -j DROP\n")
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

// Apply loads rules into pid's network namespace in one iptables-restore
// (atomic: no moment with half the rules).
func (f *IPTables) Apply(ctx context.Context, pid int, rules []Rule) error {
	if err := f.Check(); err != nil {
		return err
	}
	if pid <= 0 {
		return fmt.Errorf("apply iptables rules: no process (pid %d)", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
		return fmt.Errorf("%w: the container's process %d is not visible on this host, so the Docker engine runs in a VM or on another machine (Docker Desktop?) and its network namespaces cannot be entered: %v", ErrFaultTools, pid, err)
	}
	cmd := exec.CommandContext(ctx, f.Nsenter, "-t", strconv.Itoa(pid), "-n", f.Restore, "-w")
	cmd.Stdin = bytes.NewReader(restoreInput(rules))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nsenter -t %d -n iptables-restore: %w: %s", pid, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// netemDevice is the container's interface on the run's network.
const netemDevice = "eth0"

// maxDelayBands bounds the distinct delays one node can send with: the
// bands of a prio qdisc (16) less the one for undelayed traffic.
const maxDelayBands = 15

// tcBatch is the `tc -batch` input that gives each address in delays its
// delay (on a device without a root qdisc of ours): a prio root qdisc
// whose first band takes all traffic, one more band with a netem child
// per distinct delay, and a u32 filter per address steering its packets
// into its band.
func tcBatch(delays []Delay) ([]byte, error) {
	var b bytes.Buffer
	type key struct{ d, j time.Duration }
	band := map[key]int{}
	var order []key
	for _, d := range delays {
		k := key{d.Delay, d.Jitter}
		if _, ok := band[k]; !ok {
			band[k] = len(order) + 2 // band 1 (class 1:1) is undelayed
			order = append(order, k)
		}
	}
	if len(order) > maxDelayBands {
		return nil, fmt.Errorf("%w: %d distinct delays from one node; at most %d", ErrUnsupportedPacketFault, len(order), maxDelayBands)
	}
	bands := len(order) + 1
	if bands < 2 {
		bands = 2
	}
	// Every priority goes to band 0, class 1:1: undelayed.
	fmt.Fprintf(&b, "qdisc add dev %s root handle 1: prio bands %d priomap%s\n", netemDevice, bands, strings.Repeat(" 0", 16))
	for _, k := range order {
		n := band[k]
		fmt.Fprintf(&b, "qdisc add dev %s parent 1:%d handle %d0: netem delay %dus", netemDevice, n, n, k.d.Microseconds())
		if k.j > 0 {
			fmt.Fprintf(&b, " %dus", k.j.Microseconds())
		}
		b.WriteString("\n")
	}
	for _, d := range delays {
		fmt.Fprintf(&b, "filter add dev %s parent 1:0 protocol ip prio 1 u32 match ip dst %s/32 flowid 1:%d\n",
			netemDevice, d.To, band[key{d.Delay, d.Jitter}])
	}
	return b.Bytes(), nil
}

// Delay loads the delays into pid's namespace with one `tc -batch`.
func (f *IPTables) Delay(ctx context.Context, pid int, delays []Delay) error {
	if err := f.Check(); err != nil {
		return err
	}
	if f.TC == "" {
		if len(delays) == 0 {
			return nil // nothing can have been set without tc
		}
		return fmt.Errorf("%w: delays need tc: install iproute2 (Debian/Ubuntu: apt-get install iproute2)", ErrUnsupportedPacketFault)
	}
	batch, err := tcBatch(delays)
	if err != nil {
		return err
	}
	// Start from the device's default queueing: delete our root qdisc.
	// It fails when there is none, which is fine.
	del := exec.CommandContext(ctx, f.Nsenter, "-t", strconv.Itoa(pid), "-n", f.TC, "qdisc", "del", "dev", netemDevice, "root")
	_ = del.Run()
	if len(delays) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, f.Nsenter, "-t", strconv.Itoa(pid), "-n", f.TC, "-batch", "-")
	cmd.Stdin = bytes.NewReader(batch)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		// Leave no half-built tree behind.
		_ = exec.CommandContext(ctx, f.Nsenter, "-t", strconv.Itoa(pid), "-n", f.TC, "qdisc", "del", "dev", netemDevice, "root").Run()
		if strings.Contains(msg, "qdisc kind is unknown") {
			return fmt.Errorf("%w: delays need the kernel's queueing disciplines prio and netem, which this kernel lacks (modprobe sch_prio sch_netem; Debian/Ubuntu ship them in linux-modules-extra): %s", ErrUnsupportedPacketFault, msg)
		}
		return fmt.Errorf("nsenter -t %d -n tc -batch: %w: %s", pid, err, msg)
	}
	return nil
}
