//go:build unix

package main

import "syscall"

// openFileLimit returns the process's open-file limit (the soft limit, which
// Go raises to the hard one at start), and whether it is known.
func openFileLimit() (int, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<30 {
		return 0, false
	}
	return int(r.Cur), true
}
