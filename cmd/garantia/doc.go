// Command garantia is the one binary of Garantia: the checker harness and the
// broker it tests.
//
// Subcommands (each in its own file, registered in init):
//
//	garantia test     run a test against a cluster and check it
//	garantia check    re-analyse a stored history or run folder
//	garantia matrix   run acks=0, 1 and all under one fault schedule
//	garantia report   rebuild the HTML report of a run
//	garantia serve    browse the store in a web page
//	garantia broker   run one broker node (the system under test)
//
// Exit codes follow Jepsen: 0 valid, 1 invalid, 2 unknown, 254 bad
// arguments, 255 the harness itself failed.
package main
