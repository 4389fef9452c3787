package dbtest

import "syscall"

// dieWithParent has the kernel kill the server when the test binary dies
// (a panic, a timeout), so that no private server outlives its test. The
// setting survives the script's exec of mariadbd.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
