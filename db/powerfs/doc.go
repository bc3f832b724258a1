// Package powerfs is a FUSE filesystem (github.com/hanwen/go-fuse/v2)
// for node data folders that forgets, at a power cut, everything that was
// not made durable, as Jepsen's LazyFS does. It passes every operation
// through to a backing folder, so reads before a cut see everything
// written (as a page cache does), and keeps in memory what a cut would
// undo.
//
// # What a power cut keeps
//
//   - File data: what the file held at its last fsync or fdatasync. Data
//     written since, truncations and fallocations since, are undone.
//   - Names: in the Strict mode (the default, the POSIX reading that LazyFS
//     and crash-consistency studies use) creating, renaming, removing and
//     linking a file, mkdir and rmdir, become durable only with an fsync of
//     the folder that holds the name; a rename between folders is durable
//     in each folder on that folder's fsync. The Ordered mode is ext4 with
//     data=ordered: one journal, committed as a whole by fsyncs (see
//     Ordered for exactly when). A file whose name is durable but whose
//     data never was comes back empty; a file whose data was synced but
//     whose name was not comes back not at all.
//   - With Options.Torn, each file's last unsynced write survives in part:
//     each of its 512-byte sectors whole or not at all, drawn from the
//     seed.
//   - Not modelled, kept as they are at a cut: permission bits of files,
//     owners, times. Refused: RENAME_EXCHANGE, mknod, extended attributes,
//     fallocate modes other than 0 and KEEP_SIZE (EOPNOTSUPP; callers fall
//     back to writing).
//
// # How
//
// The backing folder always holds the current tree. For each file the
// model keeps its durable size and the durable bytes that writes and
// truncations have overwritten since (read from the backing file before
// the write goes through); appends cost nothing to keep. For each folder
// it keeps its current and durable entries. A file that loses its last
// current name while a durable entry still names it moves to a hidden
// folder in the backing root (".garantia-powerfs", never shown through the
// mount), so a cut can bring it back. PowerCut unmounts, rebuilds the
// backing folder from the durable tree (reverting each file's data,
// re-linking each durable name, dropping the rest) and mounts again: the
// kernel's caches start empty, as after a reboot.
//
// The kernel's writeback cache is on (Options.NoWritebackCache turns it
// off): written pages stay in the kernel and reach this process in bigger
// writes, by the next fsync, fdatasync or close at the latest, so the
// model sees every byte a sync covers before the sync itself, and a cut,
// which comes after the node's process is dead, undoes the rest as ever.
// Passthrough (FUSE_PASSTHROUGH, where the kernel writes the backing file
// itself) is never offered: the model would not see the writes.
//
// # Use from a harness
//
//	if err := powerfs.Probe(); err != nil { ... }      // before any node starts: ErrNoFUSE, ErrMountDenied
//	fs, err := powerfs.Mount(backing, mountpoint, powerfs.Options{Mode: powerfs.Strict, Label: runID + "/n1"})
//	defer fs.Unmount()                                  // on every path; safe to repeat
//	// start the node with --data-dir mountpoint (or a folder under it)
//	// ... power fault: kill the node (SIGKILL) and wait for it to exit, then
//	rep, err := fs.PowerCut()                           // ErrBusy if files are still open
//	// restart the node on the same folder
//
// A test's nodes: MountDisks mounts one filesystem at each node's data
// folder (db.LayOut's nK/data), backed by nK/data.backing, and Disks
// implements db.PowerCutter for the nemesis (CutPower waits out a mount
// still busy for a moment after its node's process exited). Disks.Unmount
// puts each node's files back in nK/data, so a run folder looks the same
// with or without the filesystem. A container sees the mount through a
// bind mount of the data folder; the engine binds it anew at every start,
// so a node started again after a cut sees the new mount.
//
// Mounts as root use mount(2) directly (no fusermount needed) and allow
// other users (containers); otherwise fusermount3 or fusermount mounts.
// Each mount's source in /proc/self/mountinfo is
// "garantia-powerfs:pid=P:start=T:LABEL" with type fuse.garantia-powerfs;
// Mounts lists them and RemoveStale detaches those whose serving process
// is gone (what a killed harness leaves; `garantia clean` calls it).
//
// The process that serves a mount must not mmap files of its own mount:
// a page fault served by the faulting process deadlocks it when a garbage
// collection waits for the faulting thread. Node processes (bbolt maps
// raft.db) are separate processes, as they should be.
package powerfs
