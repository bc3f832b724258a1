// Package verdict is the three-valued outcome of a check: valid, invalid or
// unknown, how outcomes compose, and the exit code each maps to.
//
// It is a leaf package so that every checker (queue, linearizability, stats)
// and the composer above them share one type.
package verdict
