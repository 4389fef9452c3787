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
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Getenv))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "opsvc:", err)
		os.Exit(1)
	}
}
