// Package stats counts a history's operations: per function and completion
// type, per node, and per process kind. It never fails a history on its own;
// it reports Unknown only when there is nothing to judge (no client operation
// completed ok), because a test in which nothing succeeded proves nothing.
package stats
