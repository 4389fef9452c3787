package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a server opsbench started: the service, or the bare /healthz
// server. It listens on 127.0.0.1.
type process struct {
	name string
	cmd  *exec.Cmd
	addr string // 127.0.0.1:PORT
	// pprofAddr is the ADMIN_ADDR it was given, "" for none.
	pprofAddr string
	exited    chan struct{}
	waitErr   error
}

// startTimeout bounds a start, schema migration included: a migration that
// adds an index to the 1,000,000-row ICC table takes a while.
const startTimeout = 5 * time.Minute

// startProcess runs path with args and env, writes its stdout and stderr to
// logTo, and waits until it logs {"msg":"listening","addr":...} (the
// service's start line; serve-bare writes the same) and answers /readyz.
func startProcess(ctx context.Context, name, path string, args, env []string, logTo io.Writer) (*process, error) {
	last := &lastLine{w: logTo}
	logTo = last
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stderr = logTo
	// A pipe of our own rather than StdoutPipe: Wait then returns when the
	// process exits, even if a child of it still holds its stdout.
	stdout, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	addrc := make(chan string, 1)
	go func() {
		defer stdout.Close()
		// Copy every line to the log, and pick the address from the start line.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var l struct{ Msg, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" && l.Addr != "" {
				select {
				case addrc <- l.Addr:
				default:
				}
			}
			_, _ = logTo.Write(append(line, '\n'))
		}
		_, _ = io.Copy(logTo, stdout)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case p.addr = <-addrc:
	case <-p.exited:
		return nil, fmt.Errorf("%s exited at start (%v): %s", name, p.waitErr, last)
	case <-timer.C:
		p.stop()
		return nil, fmt.Errorf("%s did not start within %s; see its log", name, startTimeout)
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
	if host, _, _ := net.SplitHostPort(p.addr); host != "127.0.0.1" {
		p.stop()
		return nil, fmt.Errorf("%s listens on %s, not on 127.0.0.1", name, p.addr)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: loopbackDial}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for range 100 {
		resp, err := client.Get(p.url("/readyz"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s is not ready at %s", name, p.url("/readyz"))
}

func (p *process) url(path string) string { return "http://" + p.addr + path }

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process (this one, by its pid, and nothing
// else), and kills it if it has not exited after 40 s.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// lastLine passes writes on to w and remembers the last line written, which
// says why a process that failed at start failed.
type lastLine struct {
	w    io.Writer
	mu   sync.Mutex
	line []byte
}

func (l *lastLine) Write(b []byte) (int, error) {
	l.mu.Lock()
	if t := bytes.TrimSpace(b); len(t) > 0 {
		if i := bytes.LastIndexByte(t, '\n'); i >= 0 {
			t = t[i+1:]
		}
		l.line = append(l.line[:0], t...)
	}
	l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.line)
}

// serviceEnv is the whole environment of the service: nothing is inherited
// but PATH, HOME and the Go runtime's own variables, so that a KEYSTONE_URL
// or LOG_LEVEL of the caller's shell does not change what is measured.
func serviceEnv(listen, databaseURL, tokens, pprofAddr string, extra []string) []string {
	env := append(baseEnv(),
		"LISTEN_ADDR="+listen,
		"DATABASE_URL="+databaseURL,
		"AUTH_TOKENS_FILE="+tokens,
	)
	if pprofAddr != "" {
		env = append(env, "ADMIN_ADDR="+pprofAddr)
	}
	return append(env, extra...)
}

// baseEnv is what every process opsbench starts inherits: PATH, HOME,
// TMPDIR and the Go runtime's variables (GOGC, GOMEMLIMIT, GOMAXPROCS,
// GODEBUG), so that runtime settings can be tried from the shell.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// freeLoopbackAddr returns a 127.0.0.1 address nothing listens on now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// memory reads VmRSS and VmHWM (the peak since start or since the last
// resetPeak) of a process, in bytes.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/PID/status")
	}
	return rss, hwm, nil
}

// resetPeak sets VmHWM back to the current RSS (Linux 4.0+).
func resetPeak(pid int) error {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// healthBody is what the service's /healthz answers.
const healthBody = "{\"status\":\"ok\"}\n"

// serveBare is `opsbench serve-bare`: a bare net/http server that answers
// /healthz (and /readyz) with the service's body, the ideal of the health
// row. It listens on 127.0.0.1 and stops on SIGTERM.
func serveBare(ctx context.Context, stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ok := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, healthBody)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	slog.New(slog.NewJSONHandler(stdout, nil)).Info("listening", "addr", ln.Addr().String())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
