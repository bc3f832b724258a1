package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/garantia/garantia/broker/controller"
	"github.com/garantia/garantia/broker/group"
	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/node"
	"github.com/garantia/garantia/broker/replication"
	"github.com/garantia/garantia/broker/server"
	"github.com/garantia/garantia/broker/storage"
	"github.com/garantia/garantia/checker/verdict"
)

func init() {
	register(command{
		name:    "broker",
		summary: "run one Kafka-protocol broker node (the system under test)",
		run:     runBroker,
	})
}

// runBroker parses the broker flags and runs a node until SIGTERM or
// SIGINT, then shuts it down gracefully (listener, connections, storage).
func runBroker(args []string, stdout, stderr io.Writer) int {
	c := newCLI("broker", stdout, stderr)
	fs := c.fs
	fs.SortFlags = false
	var (
		id         = fs.Int32("id", 1, "node id, 0 to 65535 (producer ids are spread over the cluster by node id)")
		listen     = fs.String("listen", "127.0.0.1:9092", "HOST:PORT to serve the Kafka protocol on (port 0 picks a free one; the log line \"broker listening\" says which)")
		advertise  = fs.String("advertise", "", "HOST:PORT that Metadata tells clients to connect to (default: the address listened on)")
		dataDir    = fs.String("data-dir", "", "directory holding the partition logs and producer id state (required)")
		fsync      = storage.FsyncNever
		fsyncEvery = fs.Duration("fsync-interval", storage.DefaultFsyncInterval, "period of background syncs under --fsync interval")
		autoCreate = fs.Bool("auto-create-topics", false, "create unknown topics when a client's Metadata request allows it")
		partitions = fs.Int32("partitions", 1, "partition count of auto-created topics (and of CreateTopics asking for the default)")
		logFile    = fs.String("log-file", "", "append logs to this file instead of stderr")
		logFormat  = fs.String("log-format", "json", "log format: json or text")
		logLevel   = fs.String("log-level", "info", "log level: debug, info, warn or error")
		maxFrame   = fs.Int("max-frame-bytes", 100<<20, "largest request frame accepted; a larger one closes its connection")

		replFactor = fs.Int16("default-replication-factor", 1, "replication factor of auto-created topics and of CreateTopics asking for the default")
		minISR     = fs.Int32("min-insync-replicas", 1, "min.insync.replicas of topics created without one: acks=all writes are refused (NOT_ENOUGH_REPLICAS) while the ISR is smaller")
		unclean    = fs.Bool("unclean-leader-election", false, "unclean.leader.election.enable of topics created without one: let an out-of-sync replica lead when no in-sync one is alive, losing acknowledged writes")
		lagMax     = fs.Duration("replica-lag-time-max", replication.DefaultReplicaLagTimeMax, "a follower that has not caught up with the leader for this long leaves the ISR (Kafka's default is 30s; 10s lets faults in a test show within a typical fault interval)")
		fetchWait  = fs.Duration("replica-fetch-max-wait", replication.DefaultFetchMaxWait, "how long a follower's fetch waits at the leader for new records; must be below --replica-lag-time-max")
		reqTimeout = fs.Duration("request-timeout", server.DefaultRequestTimeout, "longest a request waits on the broker: an acks=all produce waits for the smaller of this and the client's timeout (then REQUEST_TIMED_OUT); a topic creation through the controller likewise")
		hwEvery    = fs.Duration("hw-checkpoint-interval", replication.DefaultCheckpointInterval, "how often each partition's high watermark is checkpointed to the data directory (replication-offset-checkpoint)")
		ctlListen  = fs.String("controller-listen", "", "HOST:PORT of this node's controller port (Raft and controller requests); with --peer, the node joins a cluster whose metadata lives in a Raft log over these ports (KRaft-style). Without it the node is a cluster of one")
		peers      = fs.StringArray("peer", nil, "ID=KAFKA_ADDR,CONTROLLER_ADDR: how this node reaches node ID's Kafka port (follower fetches) and controller port (Raft); repeatable, one per other node. The addresses may be proxies, so a harness can cut each directed link")
		session    = fs.Duration("session-timeout", controller.DefaultSessionTimeout, "a broker that has not heartbeated to the controller for this long is fenced: it leaves every ISR and its partitions get new leaders")
		bugs       = fs.StringArray("bug", nil, "turn on a known replication or durability bug so the checker can be shown to catch it (repeatable): "+bugList())

		offsetsParts   = fs.Int32("offsets-topic-partitions", server.DefaultOffsetsTopicPartitions, "partition count of the offsets topic (__consumer_offsets) when this node creates it, at the cluster's first FindCoordinator (Kafka's default is 50)")
		offsetsRF      = fs.Int16("offsets-topic-replication-factor", 0, "replication factor of the offsets topic; 0 means 3, or the cluster's size (this node and its --peer nodes) when smaller. Its min.insync.replicas is --min-insync-replicas, at most this")
		groupMinSess   = fs.Duration("group-min-session-timeout", group.DefaultMinSessionTimeout, "shortest session timeout a group member may ask for (INVALID_SESSION_TIMEOUT below it)")
		groupMaxSess   = fs.Duration("group-max-session-timeout", group.DefaultMaxSessionTimeout, "longest session timeout a group member may ask for")
		groupDelay     = fs.Duration("group-initial-rebalance-delay", group.DefaultInitialRebalanceDelay, "how long the first rebalance of an empty group waits for more members to join (0: none)")
		offsetsTimeout = fs.Duration("offsets-commit-timeout", group.DefaultCommitTimeout, "how long an offset commit (or any write to the offsets topic) waits for the high watermark before it fails with COORDINATOR_NOT_AVAILABLE")
	)
	fs.Var(&fsync, "fsync", "when appends reach stable storage: always (before acknowledging), interval, or never (Kafka's default)")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: garantia broker --data-dir DIR [flags]")
		fmt.Fprintln(w, "\nRuns one broker node serving the Kafka protocol until SIGTERM or SIGINT. Partitions are")
		fmt.Fprintln(w, "replicated as in Kafka's ISR design (followers fetch from the leader; acks=all waits for")
		fmt.Fprintln(w, "the high watermark). Without a controller the node is a cluster of one. Each --bug puts")
		fmt.Fprintln(w, "back a known replication or durability bug, off by default, so the checker can be shown")
		fmt.Fprintln(w, "to catch it (fsync-after-ack loses only to power cuts: it needs --fsync always).\n\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	bad := c.bad
	if code, done := c.parse(args, func(w io.Writer, _ *pflag.FlagSet) { usage(w) }); done {
		return code
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q (flags only)", fs.Arg(0))
	}
	if *dataDir == "" {
		return bad("--data-dir is required")
	}
	if *id < 0 || *id > node.MaxNodeID {
		return bad("--id %d: must be 0 to %d", *id, node.MaxNodeID)
	}
	if *partitions < 1 {
		return bad("--partitions %d: must be at least 1", *partitions)
	}
	if *fsyncEvery <= 0 {
		return bad("--fsync-interval %v: must be positive", *fsyncEvery)
	}
	if *maxFrame < 1 {
		return bad("--max-frame-bytes %d: must be positive", *maxFrame)
	}
	if *replFactor < 1 {
		return bad("--default-replication-factor %d: must be at least 1", *replFactor)
	}
	if *minISR < 1 {
		return bad("--min-insync-replicas %d: must be at least 1", *minISR)
	}
	if *fetchWait <= 0 {
		return bad("--replica-fetch-max-wait %v: must be positive", *fetchWait)
	}
	if *lagMax <= *fetchWait {
		return bad("--replica-lag-time-max %v: must exceed --replica-fetch-max-wait %v, or caught-up idle followers would leave the ISR", *lagMax, *fetchWait)
	}
	if *reqTimeout <= 0 {
		return bad("--request-timeout %v: must be positive", *reqTimeout)
	}
	if *hwEvery <= 0 {
		return bad("--hw-checkpoint-interval %v: must be positive", *hwEvery)
	}
	if *offsetsParts < 1 {
		return bad("--offsets-topic-partitions %d: must be at least 1", *offsetsParts)
	}
	if *offsetsRF < 0 {
		return bad("--offsets-topic-replication-factor %d: must be 0 (automatic) or more", *offsetsRF)
	}
	if *groupMinSess <= 0 || *groupMaxSess < *groupMinSess {
		return bad("--group-min-session-timeout %v and --group-max-session-timeout %v: want 0 < min <= max", *groupMinSess, *groupMaxSess)
	}
	if *groupDelay < 0 {
		return bad("--group-initial-rebalance-delay %v: must not be negative", *groupDelay)
	}
	if *offsetsTimeout <= 0 {
		return bad("--offsets-commit-timeout %v: must be positive", *offsetsTimeout)
	}
	bugSet, err := replication.ParseBugs(*bugs)
	if err != nil {
		return bad("--bug: %v", err)
	}
	peerKafka, peerController, err := parsePeers(*peers)
	if err != nil {
		return bad("--peer: %v", err)
	}
	if _, self := peerKafka[*id]; self {
		return bad("--peer %d: that is this node's own --id; list only the other nodes", *id)
	}
	clustered := *ctlListen != ""
	if len(peerKafka) > 0 && !clustered {
		return bad("--peer needs --controller-listen: a cluster's metadata lives in the controllers' Raft log")
	}
	if *session <= 0 {
		return bad("--session-timeout %v: must be positive", *session)
	}
	var advertised metadata.Broker
	if clustered {
		if _, _, err := net.SplitHostPort(*ctlListen); err != nil {
			return bad("--controller-listen %q: %v", *ctlListen, err)
		}
		// The controller registers this node's client address before the
		// Kafka port is bound, so it must be known up front.
		addr := *advertise
		if addr == "" {
			addr = *listen
		}
		host, portText, err := net.SplitHostPort(addr)
		port, perr := strconv.ParseUint(portText, 10, 16)
		if err != nil || perr != nil || port == 0 || host == "" || host == "0.0.0.0" || host == "::" {
			return bad("--advertise %q: a cluster member needs a concrete HOST:PORT clients can reach (not port 0 or a wildcard host)", addr)
		}
		advertised = metadata.Broker{ID: *id, Host: host, Port: int32(port)}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return bad("--log-level %q: want debug, info, warn or error", *logLevel)
	}

	var logOut io.Writer = stderr
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return bad("--log-file: %v", err)
		}
		defer f.Close()
		logOut = f
	}
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch strings.ToLower(*logFormat) {
	case "json":
		handler = slog.NewJSONHandler(logOut, opts)
	case "text":
		handler = slog.NewTextHandler(logOut, opts)
	default:
		return bad("--log-format %q: want json or text", *logFormat)
	}
	logger := slog.New(handler)

	cfg := node.Config{
		ID:               *id,
		Listen:           *listen,
		Advertise:        *advertise,
		DataDir:          *dataDir,
		Fsync:            fsync,
		FsyncInterval:    *fsyncEvery,
		AutoCreateTopics: *autoCreate,
		Partitions:       *partitions,
		MaxFrameBytes:    *maxFrame,
		Logger:           logger,

		PeerKafkaAddrs:           peerKafka,
		DefaultReplicationFactor: *replFactor,
		MinInsyncReplicas:        *minISR,
		UncleanLeaderElection:    *unclean,
		ReplicaLagTimeMax:        *lagMax,
		ReplicaFetchMaxWait:      *fetchWait,
		RequestTimeout:           *reqTimeout,
		HWCheckpointInterval:     *hwEvery,
		Bugs:                     bugSet,

		OffsetsTopicPartitions:        *offsetsParts,
		OffsetsTopicReplicationFactor: *offsetsRF,
		GroupMinSessionTimeout:        *groupMinSess,
		GroupMaxSessionTimeout:        *groupMaxSess,
		GroupInitialRebalanceDelay:    groupDelayFlag(*groupDelay),
		OffsetsCommitTimeout:          *offsetsTimeout,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if clustered {
		ctl, err := controller.Start(controller.Config{
			NodeID:         *id,
			Listen:         *ctlListen,
			Peers:          peerController,
			DataDir:        *dataDir,
			Advertised:     advertised,
			SessionTimeout: *session,
			Logger:         logger.With("node", *id, "component", "controller"),
		})
		if err != nil {
			logger.Error("controller failed to start", "err", err)
			fmt.Fprintf(stderr, "garantia broker: %v\n", err)
			if errors.Is(err, controller.ErrConfig) {
				return verdict.ExitBadArguments
			}
			return verdict.ExitInternal
		}
		// The node closes nothing it was given: the controller goes last,
		// after the node has stopped using it.
		defer func() {
			if err := ctl.Close(); err != nil {
				logger.Error("closing the controller", "err", err)
			}
		}()
		// Lead nothing before the controller has this incarnation
		// registered: until then the local metadata may be stale (restored
		// from disk), and acting on it could acknowledge writes at a
		// leader epoch the cluster has moved past.
		logger.Info("waiting for the controller to register this broker", "controller_listen", ctl.Addr().String(), "peers", len(peerController))
		select {
		case <-ctl.Registered():
		case <-ctx.Done():
			logger.Info("broker shutting down before registration", "reason", "signal")
			return 0
		}
		cfg.Controller = ctl
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		logger.Error("broker failed to start", "err", err)
		fmt.Fprintf(stderr, "garantia broker: %v\n", err)
		if errors.Is(err, node.ErrConfig) {
			return verdict.ExitBadArguments
		}
		return verdict.ExitInternal
	}
	select {
	case <-ctx.Done():
		logger.Info("broker shutting down", "reason", "signal")
	case <-n.Done():
		// The node stopped on its own (its listener failed).
	}
	// A second signal during shutdown kills the process the default way.
	stop()
	shutdownStart := time.Now()
	if err := n.Wait(); err != nil {
		fmt.Fprintf(stderr, "garantia broker: %v\n", err)
		return verdict.ExitInternal
	}
	logger.Info("broker shut down", "took", time.Since(shutdownStart).String())
	return 0
}

// groupDelayFlag maps --group-initial-rebalance-delay to node.Config's
// field, where 0 means the default and a negative value none.
func groupDelayFlag(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// bugList describes every bug switch for --help.
func bugList() string {
	var b strings.Builder
	for i, bug := range replication.AllBugs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s (%s)", bug.Name, bug.Description)
	}
	return b.String()
}

// parsePeers parses --peer ID=KAFKA_ADDR,CONTROLLER_ADDR values into the
// Kafka and controller addresses by which this node reaches each peer.
func parsePeers(values []string) (kafka, controller map[int32]string, err error) {
	kafka, controller = map[int32]string{}, map[int32]string{}
	for _, v := range values {
		id, addrs, ok := strings.Cut(v, "=")
		n, perr := strconv.ParseInt(id, 10, 32)
		k, c, both := strings.Cut(addrs, ",")
		if !ok || perr != nil || n < 0 || n > node.MaxNodeID || !both {
			return nil, nil, fmt.Errorf("%q: want ID=KAFKA_HOST:PORT,CONTROLLER_HOST:PORT with a node id of 0 to %d", v, node.MaxNodeID)
		}
		for _, addr := range []string{k, c} {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, nil, fmt.Errorf("%q: %v", v, err)
			}
		}
		if _, dup := kafka[int32(n)]; dup {
			return nil, nil, fmt.Errorf("%q: node %d given twice", v, n)
		}
		kafka[int32(n)], controller[int32(n)] = k, c
	}
	return kafka, controller, nil
}
