package db

import "context"

// PowerCutter cuts the power of nodes whose data folders live on a
// filesystem that forgets, at a power cut, what was not made durable
// (package db/powerfs). It is not a backend's: the harness mounts the
// filesystems under the nodes' data folders before the backend starts
// them (both backends keep a node's data in the same place, see LayOut),
// and hands the nemesis the cutter beside the backend.
//
// A power fault is a kill, a cut and, later, a start: the node must be
// dead (killed, its process exited, its files closed) when its power is
// cut, and it is started again on the folder as the cut left it, as a
// machine reboots on its disk.
type PowerCutter interface {
	// CutPower puts node's data folder back to what was durable and
	// reports what it undid. The node must not be running.
	CutPower(ctx context.Context, node Node) (PowerLoss, error)
}

// PowerLoss is what one power cut undid in a node's data folder.
type PowerLoss struct {
	// FilesReverted counts files whose contents went back to their last
	// fsync; BytesLost estimates the unsynced bytes that are gone.
	FilesReverted int   `json:"files-reverted"`
	BytesLost     int64 `json:"bytes-lost"`
	// EntriesUndone counts folder entries (creates, renames, removes)
	// that were not yet durable and are undone.
	EntriesUndone int `json:"entries-undone"`
	// TornWrites counts files whose last unsynced write survived in part,
	// TornSectors its 512-byte sectors that survived.
	TornWrites  int `json:"torn-writes,omitempty"`
	TornSectors int `json:"torn-sectors,omitempty"`
}
