// Package wire is the Kafka wire format as the broker sees it: reading
// size-prefixed frames off a connection, parsing request headers and bodies
// into kmsg requests, encoding responses with the right response header,
// and reading the fixed header of a magic-v2 RecordBatch.
//
// It holds no state and does no I/O beyond reading one frame, so the fuzz
// test can throw arbitrary bytes at it: a malformed frame is always an
// error, never a panic and never an allocation larger than the frame.
package wire
