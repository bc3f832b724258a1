// Package report turns results into what a person looks at. For now: the
// terminal summary that `garantia check` (and later `garantia test` and
// `garantia show`) prints. The HTML report, plots and JUnit XML come here
// too.
package report
