package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profiler fetches CPU and heap profiles of the service from the
// net/http/pprof handlers it serves on ADMIN_ADDR (when it does: opsbench
// passes ADMIN_ADDR to every service it starts with -pprof, and says so
// when nothing answers there). Profiles are taken during the first run of a
// measurement only; they slow the service a little.
type profiler struct {
	dir    string
	client *http.Client

	mu      sync.Mutex
	written []string
	missing bool // nothing answered on ADMIN_ADDR
}

func newProfiler(dir string) (*profiler, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("-pprof: %w", err)
	}
	return &profiler{dir: dir, client: newHTTPClient(2)}, nil
}

// cpu starts a CPU profile of svc lasting d, saved as name.cpu.pprof; the
// function it returns waits for it. It does nothing on a nil profiler.
func (pr *profiler) cpu(ctx context.Context, svc *process, name string, d time.Duration) (wait func()) {
	if pr == nil || svc.pprofAddr == "" {
		return func() {}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		pr.fetch(ctx, svc, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name+".cpu.pprof")
	}()
	return func() { <-done }
}

// heap saves svc's heap profile (in use and allocated since start) as
// name.heap.pprof.
func (pr *profiler) heap(ctx context.Context, svc *process, name string) {
	if pr == nil || svc.pprofAddr == "" {
		return
	}
	pr.fetch(ctx, svc, "/debug/pprof/heap", name+".heap.pprof")
}

func (pr *profiler) fetch(ctx context.Context, svc *process, path, file string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+svc.pprofAddr+path, nil)
	if err != nil {
		return
	}
	resp, err := pr.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		if err == nil {
			resp.Body.Close()
		}
		pr.mu.Lock()
		pr.missing = true
		pr.mu.Unlock()
		return
	}
	defer resp.Body.Close()
	out := filepath.Join(pr.dir, file)
	f, err := os.Create(out)
	if err != nil {
		return
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil && cerr == nil {
		pr.mu.Lock()
		pr.written = append(pr.written, out)
		pr.mu.Unlock()
	}
}

// notes says what the profiler wrote, or why it wrote nothing.
func (pr *profiler) notes() []string {
	if pr == nil {
		return nil
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	var out []string
	if pr.missing {
		out = append(out, "pprof: the service did not answer on ADMIN_ADDR (not implemented yet?): some profiles are missing")
	}
	for _, f := range pr.written {
		out = append(out, "pprof: wrote "+f+" (go tool pprof -http=127.0.0.1:0 bin/opsvc "+f+")")
	}
	return out
}
