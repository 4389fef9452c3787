//go:build !linux

package dbtest

import "syscall"

// dieWithParent: only Linux can tie the server's life to the test binary's.
func dieWithParent() *syscall.SysProcAttr { return nil }
