// Command opsvc runs the Operations Service: the MSF operation management and
// ICC connection operation history APIs of openapi.yaml. It is configured by
// environment variables (see config.go and the README).
//
// `opsvc healthcheck` asks a running service's /readyz and exits 0 when it is
// ready: the container image has no shell or curl for a health check.
// `opsvc version` prints the version, `opsvc --help` the usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if handled, status := command(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); handled {
		os.Exit(status)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "opsvc:", err)
		os.Exit(1)
	}
}
