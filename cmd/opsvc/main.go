// Command opsvc runs the Operations Service: the MSF operation management and
// ICC connection operation history APIs of openapi.yaml. It is configured by
// environment variables (see config.go and the README).
//
// `opsvc healthcheck` asks a running service's /readyz and exits 0 when it is
// ready: the container image has no shell or curl for a health check.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Getenv))
	}
	setGCDefaults(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "opsvc:", err)
		os.Exit(1)
	}
}

// Garbage collection defaults, when GOGC and GOMEMLIMIT are not set: the live
// heap is small (tens of MiB) and every request allocates its decoded body, so
// Go's default (collect when the heap doubles) spent a fifth of A1's CPU in the
// collector. A larger growth target with a soft memory limit collects less
// often and still collects hard before memory runs short.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 1 << 30 // 1 GiB
)

func setGCDefaults(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
