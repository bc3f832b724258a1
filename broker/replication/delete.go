package replication

import (
	"errors"
	"sort"

	"github.com/garantia/garantia/broker/metadata"
	"github.com/garantia/garantia/broker/storage"
)

// deleteGone deletes the local logs of deleted topics before Reconcile
// applies snap (reconcileMu is held), so that a topic created again under
// the same name starts from empty logs. Each partition is stopped first:
// its fetcher's appends are refused from then on, and the fetcher drops
// it when Reconcile reassigns the fetchers.
//
//   - a topic of the previous reconciliation that is missing from snap,
//     or is there with another topic id (deleted and created again
//     between two reconciliations), loses its logs;
//   - at the first reconciliation, every log in the store whose topic or
//     partition number the metadata does not have: a deletion this node
//     applied but crashed before carrying out. The node reconciles first
//     only once its controller has registered this incarnation, after
//     every earlier metadata change, so such a log is surely deleted.
//
// A store that cannot delete (no storage.Deleter) keeps the logs stopped.
func (m *Manager) deleteGone(snap *metadata.Snapshot) {
	del, ok := m.cfg.Store.(storage.Deleter)
	prev := m.topicIDs
	m.topicIDs = make(map[string][16]byte, len(snap.Topics))
	for name, t := range snap.Topics {
		m.topicIDs[name] = t.ID
	}
	if !ok {
		return
	}
	var gone []tp
	if prev == nil {
		for name, n := range m.cfg.Store.Topics() {
			for i := range n {
				if _, exists := snap.Partition(name, i); !exists {
					gone = append(gone, tp{name, i})
				}
			}
		}
	}
	m.mu.Lock()
	for k := range m.parts {
		id, had := prev[k.topic]
		t := snap.Topics[k.topic]
		if (had && (t == nil || t.ID != id)) || (t != nil && int(k.index) >= len(t.Partitions)) {
			gone = append(gone, k)
		}
	}
	m.mu.Unlock()
	sort.Slice(gone, func(i, j int) bool { return gone[i].String() < gone[j].String() })
	for _, k := range gone {
		m.mu.Lock()
		part := m.parts[k]
		delete(m.parts, k)
		delete(m.ckpt, k)
		delete(m.alterFailing, k)
		m.mu.Unlock()
		if part != nil {
			part.Stop()
		}
		err := del.Delete(k.topic, k.index)
		switch {
		case errors.Is(err, storage.ErrUnknownPartition):
		case err != nil:
			m.log.Error("deleting the log of a deleted topic failed", "partition", k.String(), "err", err)
		default:
			m.log.Info("deleted the log of a deleted topic", "partition", k.String())
		}
	}
}
