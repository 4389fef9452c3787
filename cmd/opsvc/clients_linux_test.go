package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"example.com/opsvc/gen"
	"example.com/opsvc/server"
)

// Slow and abusive clients: each test runs the service binary (built
// without the race detector, so that its memory is the service's own),
// abuses it, and checks that the abuse is cut or refused, that another
// client is still served meanwhile, and that the service's memory stays
// bounded: its peak resident memory (VmHWM, reset just before the abuse)
// less its resident memory before. Each logs its figures:
// go test -v -run TestClients_ ./cmd/opsvc

// watched is the service binary with what the tests read of it: memory and
// open descriptors from /proc, goroutines from ADMIN_ADDR.
type watched struct {
	*binary
	pprof string
}

func mustWatch(t *testing.T, env ...string) *watched {
	t.Helper()
	b := mustExecMain(t, "", append(env, "ADMIN_ADDR=127.0.0.1:0")...)
	w := &watched{binary: b}
	// The admin line comes before the listening one.
	for _, line := range strings.Split(b.logs.String(), "\n") {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "admin listening" {
			w.pprof = l.Addr
		}
	}
	if w.pprof == "" {
		t.Fatalf("no admin listening line:\n%s", b.logs)
	}
	return w
}

func (w *watched) pid() int { return w.cmd.Process.Pid }

// memory is the service's resident memory now and at its peak, in bytes.
func (w *watched) memory(tb testing.TB) (rss, peak int64) {
	tb.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(w.pid()) + "/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}

// startAbuse sets the peak back to the resident memory now (Linux 4.0+),
// and returns it.
func (w *watched) startAbuse(tb testing.TB) int64 {
	tb.Helper()
	if err := os.WriteFile("/proc/"+strconv.Itoa(w.pid())+"/clear_refs", []byte("5"), 0); err != nil {
		tb.Fatalf("reset the peak resident memory: %v", err)
	}
	rss, _ := w.memory(tb)
	return rss
}

// growth is how far the peak rose above before.
func (w *watched) growth(tb testing.TB, before int64) int64 {
	tb.Helper()
	_, peak := w.memory(tb)
	return max(0, peak-before)
}

// fds is how many files the service has open.
func (w *watched) fds(tb testing.TB) int {
	tb.Helper()
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(w.pid()) + "/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(entries)
}

// goroutines is the service's goroutine count, the first line of
// /debug/pprof/goroutine?debug=1 ("goroutine profile: total N").
func (w *watched) goroutines(tb testing.TB) int {
	tb.Helper()
	resp, err := timedClient.Get("http://" + w.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	if err != nil {
		tb.Fatalf("goroutine profile: %q", line)
	}
	return n
}

// settle waits up to 10 s for the goroutine count to come back to at most
// want, and returns the last count.
func (w *watched) settle(tb testing.TB, want int) int {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := w.goroutines(tb)
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probe is another client: on a connection of its own, it records an MSF
// notification and reads it back. It returns how long that took.
func (w *watched) probe(id string) (time.Duration, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	body, _ := json.Marshal(minimal(id, "executing", "20261123_100000"))
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPut, "http://"+w.addr+"/v1/operations/"+id, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("probe PUT: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("probe PUT: HTTP %d", resp.StatusCode)
	}
	resp, err = c.Get("http://" + w.addr + "/v1/operations/" + id)
	if err != nil {
		return 0, fmt.Errorf("probe GET: %w", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(got, []byte(id)) {
		return 0, fmt.Errorf("probe GET: HTTP %d %.200s", resp.StatusCode, got)
	}
	return time.Since(start), nil
}

func (w *watched) mustProbe(tb testing.TB, id string) time.Duration {
	tb.Helper()
	took, err := w.probe(id)
	if err != nil {
		tb.Fatalf("another client is not served: %v\nlogs:\n%.3000s", err, w.logs)
	}
	return took
}

func mustDial(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// trickle writes s to c one byte every interval, in the background, until
// it is all written or a write fails (the service cut the connection).
func trickle(c net.Conn, s string, every time.Duration) {
	go func() {
		for i := range len(s) {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			time.Sleep(every)
		}
	}()
}

// readUntilCut reads c until the service closes it, for up to bound, and
// returns what it read and when it was cut; a zero time if it was not.
func readUntilCut(c net.Conn, bound time.Duration) ([]byte, time.Time) {
	_ = c.SetReadDeadline(time.Now().Add(bound))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			return got, time.Time{}
		default: // EOF, or reset
			return got, time.Now()
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// TestClients_slowHeaders: a client that sends its headers slowly is cut
// READ_HEADER_TIMEOUT after it connected, with no answer (or net/http's
// plain 400 when the time ran out in the middle of a header's name); others
// are served meanwhile.
func TestClients_slowHeaders(t *testing.T) {
	t.Parallel()
	const headerTimeout = time.Second
	w := mustWatch(t, "READ_HEADER_TIMEOUT="+headerTimeout.String())
	// Before dialing: the server's clock starts once it has accepted, and
	// this goroutine may run late after the dial (as it did in CI, by
	// 200 ms on a busy machine), which made the cut look early.
	start := time.Now()
	c := mustDial(t, w.addr)
	trickle(c, "GET /v1/operations HTTP/1.1\r\nHost: x\r\nX-Slow: "+strings.Repeat("a", 1000), 20*time.Millisecond)
	took := w.mustProbe(t, "slow-headers")
	got, cut := readUntilCut(c, headerTimeout+10*time.Second)
	if cut.IsZero() {
		t.Fatalf("not cut %s after connecting", headerTimeout+10*time.Second)
	}
	after := cut.Sub(start)
	first, _, _ := strings.Cut(string(got), "\r\n")
	t.Logf("READ_HEADER_TIMEOUT %s: a client sending a header byte every 20 ms was cut after %s (answer: %q); another client was served in %s meanwhile",
		headerTimeout, after.Round(time.Millisecond), first, took.Round(time.Millisecond))
	if len(got) != 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 400 Bad Request\r\n")) {
		t.Errorf("the slow client got an answer: %q", got)
	}
	if after < headerTimeout-100*time.Millisecond || after > headerTimeout+3*time.Second {
		t.Errorf("cut after %s, want about READ_HEADER_TIMEOUT (%s)", after, headerTimeout)
	}
}

// TestClients_slowBody: a client that trickles its body is answered 400
// 010001 ("body: could not be read") READ_TIMEOUT after it connected, and
// its connection is closed; nothing is stored, and others are served
// meanwhile.
func TestClients_slowBody(t *testing.T) {
	t.Parallel()
	const readTimeout = 2 * time.Second
	w := mustWatch(t, "READ_HEADER_TIMEOUT=1s", "READ_TIMEOUT="+readTimeout.String())
	body := mustJSON(t, minimal("slow-body", "executing", "20261123_100000"))
	start := time.Now() // before dialing, as in TestClients_slowHeaders
	c := mustDial(t, w.addr)
	fmt.Fprintf(c, "PUT /v1/operations/slow-body HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	trickle(c, body, 50*time.Millisecond) // 150 bytes: 7.5 s
	took := w.mustProbe(t, "slow-body-other")

	_ = c.SetReadDeadline(time.Now().Add(readTimeout + 10*time.Second))
	req, _ := http.NewRequest(http.MethodPut, "http://"+w.addr+"/v1/operations/slow-body", nil)
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	answered := time.Since(start)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, cut := readUntilCut(c, 5*time.Second)
	t.Logf("READ_TIMEOUT %s: a client sending its body a byte every 50 ms was answered %d after %s (%s); connection closed: %v; another client was served in %s meanwhile",
		readTimeout, resp.StatusCode, answered.Round(time.Millisecond), bytes.TrimSpace(answer), !cut.IsZero(), took.Round(time.Millisecond))
	wantMSFError(t, result{resp.StatusCode, resp.Header, answer}, 400, "010001", "body")
	if answered < readTimeout-100*time.Millisecond || answered > readTimeout+3*time.Second {
		t.Errorf("answered after %s, want about READ_TIMEOUT (%s)", answered, readTimeout)
	}
	if cut.IsZero() {
		t.Error("the connection stayed open after the answer")
	}
	s := &service{URL: "http://" + w.addr}
	r, _ := getOp(t, s, "slow-body")
	wantStatus(t, r, 404)
}

// loris is a slow-loris attack: connections that each send a request's
// headers one byte at a time, every connection a byte every interval, until
// the service cuts them.
type loris struct {
	opened  time.Time
	conns   []net.Conn
	mu      sync.Mutex
	cut     []time.Duration // after opened, one per connection cut
	plain   int             // connections answered net/http's plain 400 as they were cut
	answers int             // connections that got any other answer
	wg      sync.WaitGroup
	stop    chan struct{}
}

func startLoris(tb testing.TB, addr string, n int, every time.Duration) *loris {
	tb.Helper()
	l := &loris{opened: time.Now(), stop: make(chan struct{})}
	const head = "GET /v1/operations HTTP/1.1\r\nHost: x\r\n"
	for range n {
		c := mustDial(tb, addr)
		if _, err := io.WriteString(c, head); err != nil {
			tb.Fatal(err)
		}
		l.conns = append(l.conns, c)
	}
	for _, c := range l.conns {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			got, cut := readUntilCut(c, time.Minute)
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case bytes.HasPrefix(got, []byte("HTTP/1.1 400 Bad Request\r\n")):
				l.plain++
			case len(got) > 0:
				l.answers++
			}
			if !cut.IsZero() {
				l.cut = append(l.cut, cut.Sub(l.opened))
			}
		}()
	}
	// One writer for all: a byte to each connection every interval.
	go func() {
		tail := "X-Loris: " + strings.Repeat("a", 100000)
		for i := 0; i < len(tail); i++ {
			select {
			case <-l.stop:
				return
			case <-time.After(every):
			}
			for _, c := range l.conns {
				_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_, _ = c.Write([]byte{tail[i]})
			}
		}
	}()
	tb.Cleanup(func() { close(l.stop) })
	return l
}

// wait waits for every connection to be cut, for up to bound, and returns
// the times they were cut after, in order.
func (l *loris) wait(tb testing.TB, bound time.Duration) []time.Duration {
	tb.Helper()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(bound):
		tb.Fatalf("the slow clients were not all cut within %s", bound)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cut) != len(l.conns) {
		tb.Fatalf("%d of %d slow clients cut", len(l.cut), len(l.conns))
	}
	out := append([]time.Duration(nil), l.cut...)
	sortDurations(out)
	return out
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// TestClients_slowLoris: many connections sending their headers byte by
// byte. Below MAX_CONNECTIONS, other clients are served at once and the slow
// ones are cut after READ_HEADER_TIMEOUT; memory and goroutines come back.
// When they fill MAX_CONNECTIONS, a new client waits in the listen queue
// until READ_HEADER_TIMEOUT frees slots: it is served, later.
func TestClients_slowLoris(t *testing.T) {
	t.Parallel()
	t.Run("below MAX_CONNECTIONS", func(t *testing.T) {
		t.Parallel()
		const slow, headerTimeout = 1000, 4 * time.Second
		w := mustWatch(t, "READ_HEADER_TIMEOUT="+headerTimeout.String())
		g0, fd0 := w.goroutines(t), w.fds(t)
		before := w.startAbuse(t)
		l := startLoris(t, w.addr, slow, 250*time.Millisecond)
		opened := time.Since(l.opened)
		time.Sleep(500 * time.Millisecond)
		gDuring, fdDuring := w.goroutines(t), w.fds(t)
		var probes []time.Duration
		for i := range 5 {
			probes = append(probes, w.mustProbe(t, fmt.Sprintf("loris-%d", i)).Round(100*time.Microsecond))
		}
		probesDone := time.Since(l.opened)
		cut := l.wait(t, headerTimeout+30*time.Second)
		growth := w.growth(t, before)
		g1 := w.settle(t, g0+5)
		fd1 := w.fds(t)
		t.Logf("%d connections sending a header byte each every 250 ms (opened in %s), READ_HEADER_TIMEOUT %s:", slow, opened.Round(time.Millisecond), headerTimeout)
		t.Logf("  5 other clients served in %s, all done %s after the slow ones connected", probes, probesDone.Round(time.Millisecond))
		t.Logf("  slow clients cut after %s to %s (%d with net/http's plain 400, %d with another answer)",
			cut[0].Round(time.Millisecond), cut[len(cut)-1].Round(time.Millisecond), l.plain, l.answers)
		t.Logf("  service: goroutines %d before, %d during, %d after; open files %d, %d, %d; peak RSS %s above %s",
			g0, gDuring, g1, fd0, fdDuring, fd1, mib(growth), mib(before))
		if probesDone >= cut[0] {
			t.Errorf("the other clients were served only after the slow ones were cut (%s)", cut[0])
		}
		if cut[0] < headerTimeout-100*time.Millisecond || cut[len(cut)-1] > headerTimeout+5*time.Second {
			t.Errorf("cut after %s to %s, want about READ_HEADER_TIMEOUT (%s)", cut[0], cut[len(cut)-1], headerTimeout)
		}
		if l.answers != 0 {
			t.Errorf("%d slow clients got an answer", l.answers)
		}
		if g1 > g0+5 {
			t.Errorf("goroutines: %d before, still %d after the slow clients were cut", g0, g1)
		}
		// 1,000 connections with a few hundred bytes of headers each: a
		// goroutine and its buffers, some 20 KiB apiece.
		if growth > 64<<20 {
			t.Errorf("peak RSS %s above where it was, want at most 64 MiB", mib(growth))
		}
	})
	t.Run("filling MAX_CONNECTIONS", func(t *testing.T) {
		t.Parallel()
		const slow, maxConns, headerTimeout = 150, 100, 2 * time.Second
		w := mustWatch(t, "READ_HEADER_TIMEOUT="+headerTimeout.String(), "MAX_CONNECTIONS="+strconv.Itoa(maxConns))
		l := startLoris(t, w.addr, slow, 250*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		took := w.mustProbe(t, "loris-full")
		cut := l.wait(t, 2*headerTimeout+30*time.Second)
		t.Logf("%d slow connections against MAX_CONNECTIONS %d, READ_HEADER_TIMEOUT %s: a new client was served after %s; the slow ones were cut after %s to %s",
			slow, maxConns, headerTimeout, took.Round(time.Millisecond), cut[0].Round(time.Millisecond), cut[len(cut)-1].Round(time.Millisecond))
		// The first MAX_CONNECTIONS slow clients hold every slot until
		// they are cut; the client waits behind the other 50, which fit in
		// the slots freed then.
		if took > headerTimeout+5*time.Second {
			t.Errorf("a new client was served after %s, want within READ_HEADER_TIMEOUT (%s) and some", took, headerTimeout)
		}
	})
}

// raiseOpenFiles raises this process's open-file limit to need, if the hard
// limit allows it.
func raiseOpenFiles(t *testing.T, need uint64) {
	t.Helper()
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if r.Cur >= need {
		return
	}
	if r.Max < need {
		if os.Getenv("CI") != "" {
			t.Fatalf("the open-file hard limit is %d; this test needs %d", r.Max, need)
		}
		t.Skipf("the open-file hard limit is %d; this test needs %d (ulimit -Hn)", r.Max, need)
	}
	r.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("raised the open-file limit to %d", need)
}

// TestClients_idleConnections: 10,000 clients each send a request and keep
// their connection open, against MAX_CONNECTIONS 2,000. The service keeps at
// most 2,000 of them, closing the idle ones to make room, and a new client is
// served at once; its memory and files stay bounded, and its goroutines come
// back when the clients go.
func TestClients_idleConnections(t *testing.T) {
	t.Parallel()
	const clients, maxConns, workers = 10000, 2000, 32
	raiseOpenFiles(t, clients+2000)
	w := mustWatch(t, "MAX_CONNECTIONS="+strconv.Itoa(maxConns))
	g0, fd0 := w.goroutines(t), w.fds(t)
	before := w.startAbuse(t)

	conns := make([]net.Conn, clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= clients {
					return
				}
				if err := idleClient(w.addr, &conns[i]); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d clients were not served; the first: %v", n, clients, firstErr.Load())
	}
	gFull, fdFull := w.goroutines(t), w.fds(t)
	took := w.mustProbe(t, "idle-new")
	growth := w.growth(t, before)
	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
	g1 := w.settle(t, g0+5)
	t.Logf("%d clients each sent a request and kept the connection (served in %s), MAX_CONNECTIONS %d:", clients, opened.Round(time.Millisecond), maxConns)
	t.Logf("  a new client was then served in %s", took.Round(time.Millisecond))
	t.Logf("  service: open files %d before, %d with the clients; goroutines %d before, %d with the clients, %d once they left; peak RSS %s above %s",
		fd0, fdFull, g0, gFull, g1, mib(growth), mib(before))
	if fdFull > maxConns+fd0 {
		t.Errorf("the service held %d files, more than MAX_CONNECTIONS (%d) and the %d it had before", fdFull, maxConns, fd0)
	}
	if g1 > g0+5 {
		t.Errorf("goroutines: %d before, still %d after the clients left", g0, g1)
	}
	// 2,000 open connections at some 20 KiB apiece, and the garbage of
	// 10,000 requests.
	if growth > 128<<20 {
		t.Errorf("peak RSS %s above where it was, want at most 128 MiB", mib(growth))
	}
}

// idleClient connects, sends a request, reads the answer, and leaves the
// connection open in *c.
func idleClient(addr string, c *net.Conn) error {
	conn, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return err
	}
	*c = conn
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// rawRequest writes head (a request line and headers, without the blank
// line) and body on a connection of its own while it reads the answer, and
// returns its status.
func rawRequest(addr, head string, body []byte) (int, []byte, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		// Writes fail once the service has answered and closed: the
		// answer is what counts.
		if _, err := io.WriteString(c, head+"\r\n"); err == nil {
			_, _ = c.Write(body)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, answer, nil
}

// TestClients_hugeHeaders: a request with 1 MB of headers is refused (431)
// after MAX_HEADER_BYTES, before any handler; headers well above a Keystone
// token's size are still read; memory stays bounded and other clients are
// served.
func TestClients_hugeHeaders(t *testing.T) {
	t.Parallel()
	w := mustWatch(t)
	big := []struct {
		name, head string
	}{
		{"one header of 1,000,000 bytes", "GET /v1/operations HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1000000) + "\r\n"},
		{"1,000 headers of 1,000 bytes", "GET /v1/operations HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Many: "+strings.Repeat("a", 990)+"\r\n", 1000)},
		{"an X-Auth-Token of 1,000,000 bytes", "GET /v1.0/icc/operations HTTP/1.1\r\nHost: x\r\nX-Auth-Token: " + strings.Repeat("a", 1000000) + "\r\n"},
	}
	for _, b := range big {
		t.Run(b.name, func(t *testing.T) {
			status, answer, err := rawRequest(w.addr, b.head, nil)
			if err != nil || status != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("got %d %q %v, want 431", status, answer, err)
			}
		})
	}
	t.Run("a 16 KiB token is read", func(t *testing.T) {
		status, answer, err := rawRequest(w.addr, "GET /v1.0/icc/operations HTTP/1.1\r\nHost: x\r\nX-Auth-Token: "+strings.Repeat("a", 16<<10)+"\r\n", nil)
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("got %d %q %v, want 401 (read, and refused as unknown)", status, answer, err)
		}
	})

	// 32 clients at once, 4 times each.
	before := w.startAbuse(t)
	var wg sync.WaitGroup
	var refused, other atomic.Int64
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if status, _, err := rawRequest(w.addr, big[0].head, nil); err == nil && status == 431 {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	growth := w.growth(t, before)
	probe := w.mustProbe(t, "huge-headers")
	t.Logf("MAX_HEADER_BYTES %d (default): 1 MB of headers is 431; 128 such requests from 32 clients at once took %s, %d refused 431, %d otherwise; peak RSS %s above %s; then another client was served in %s",
		64<<10, took.Round(time.Millisecond), refused.Load(), other.Load(), mib(growth), mib(before), probe.Round(time.Millisecond))
	if other.Load() != 0 {
		t.Errorf("%d requests with 1 MB of headers were not answered 431", other.Load())
	}
	if growth > 32<<20 {
		t.Errorf("peak RSS %s above where it was, want at most 32 MiB", mib(growth))
	}
}

// TestClients_deepJSON: bodies nested far deeper than the 32 levels allowed
// (4 MiB of brackets) are refused 400 naming the body, without being
// decoded: memory stays bounded, and other clients are served.
func TestClients_deepJSON(t *testing.T) {
	t.Parallel()
	w := mustWatch(t, "AUTH_TOKENS_FILE=../../testdata/tokens.json")
	brackets := strings.Repeat("[", server.MaxBodyBytes)
	objects := strings.Repeat(`{"a":`, server.MaxBodyBytes/5)
	icc := strings.Replace(mustJSON(t, iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")),
		`"request_body":{`, `"request_body":{"deep":`+strings.Repeat(`{"a":`, 500000)+`1`+strings.Repeat("}", 500000)+`,`, 1)
	put := func(path, body string, hdr ...string) result {
		req, _ := http.NewRequest(http.MethodPut, "http://"+w.addr+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := timedClient.Do(req)
		if err != nil {
			return result{body: []byte(err.Error())}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{resp.StatusCode, resp.Header, b}
	}
	t.Run("A1, 4 MiB of [", func(t *testing.T) {
		wantMSFError(t, put("/v1/operations/deep", brackets), 400, "010002", "nested deeper than 32")
	})
	t.Run("A1, 4 MiB of {\"a\":", func(t *testing.T) {
		wantMSFError(t, put("/v1/operations/deep", objects), 400, "010002", "nested deeper than 32")
	})
	t.Run("B2, request_body nested 500,000 deep", func(t *testing.T) {
		r := put("/v1.0/icc/operations/deep", icc, "X-Auth-Token", adminToken)
		wantICCError(t, r, 400, "nested deeper than 32")
		var e gen.ICCError
		_ = json.Unmarshal(r.body, &e)
		t.Logf("B2 answer: %d %s", r.status, e.Cause)
	})

	// 8 clients at once, 4 times each.
	before := w.startAbuse(t)
	var wg sync.WaitGroup
	var refused, other atomic.Int64
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if r := put("/v1/operations/deep", brackets); r.status == 400 {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	growth := w.growth(t, before)
	probe := w.mustProbe(t, "deep-json")
	t.Logf("32 bodies of 4 MiB of [ from 8 clients at once took %s: %d refused 400, %d otherwise; peak RSS %s above %s; then another client was served in %s",
		took.Round(time.Millisecond), refused.Load(), other.Load(), mib(growth), mib(before), probe.Round(time.Millisecond))
	if other.Load() != 0 {
		t.Errorf("%d deep bodies were not answered 400", other.Load())
	}
	// Each body is read whole (4 MiB, in a buffer grown to 8) and scanned,
	// never decoded.
	if growth > 128<<20 {
		t.Errorf("peak RSS %s above where it was, want at most 128 MiB", mib(growth))
	}
}
