// Package atomicfile replaces files and symbolic links so that a reader,
// or the machine after a crash or power cut, sees either the old contents
// or the new ones, never half a file.
//
// Every replacement follows the one order that survives a power cut on
// Linux filesystems: write a temporary file beside the target, fsync it,
// rename it over the target, fsync the folder (a rename is durable only
// once its folder is). Temporary names are unique, so that concurrent
// writers of one file never clobber each other's half-written copies,
// and end in [TempSuffix], so that a recovery pass can remove what a
// crash left behind.
//
// It is a leaf package (standard library only): the broker's storage and
// the harness share it, and neither may depend on the other.
package atomicfile
