// Command opsbench measures the Operations Service on MariaDB/MySQL against
// the best the same database allows, and prints one table: for each row the
// service's figure, the ideal one, their ratio, the target, and pass or FAIL.
//
// It starts the service binary (bin/opsvc) as a process of its own, on
// 127.0.0.1, against databases of its own on the server BENCH_DATABASE_URL
// names (default mysql://root:@127.0.0.1:3306/opsvc_bench): NAME holds the
// ICC and MSF data sets, bulk-loaded once and reused; NAME_a1 and NAME_floor
// are recreated by every run for the A1 writes of the service and of the
// plain database/sql floor. Every load it generates goes to 127.0.0.1 only,
// and every loop is bounded in count and in time.
//
// `make bench` runs it; `opsbench -h` lists the flags (-quick for a smoke
// run). `opsbench serve-bare` is the bare net/http /healthz server that the
// health row compares the service with; opsbench starts it itself.
//
// `opsbench soak` (make soak) runs the service for 10 minutes under a mixed
// load of writes and reads and checks that it answers without errors and
// that its memory, goroutines, open files and database connections stay
// flat; `opsbench soak -h` lists its flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "serve-bare":
		err = serveBare(ctx, os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "soak":
		err = runSoak(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "opsbench:", err)
		os.Exit(1)
	}
}
