// Command opsctl reads and records operations of the Operations Service from
// the command line, over the Go client (package client). `opsctl --help`
// lists its commands; each takes --help.
//
// Exit codes, for scripts:
//
//	0  done
//	1  usage: a bad command, flag or argument, or an unreadable input file
//	2  not found (404): no such operation, or another tenant's
//	3  refused (any other 4xx): invalid input, no or a bad token, a notification that would go backwards
//	4  the service failed (5xx), could not be reached, or answered something unreadable
//	5  watch: the operation ended, but not well (MSF failed or canceled, ICC error)
//	6  watch: --timeout passed before the operation ended
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}
