//go:build galera

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"example.com/opsvc/internal/spectest"
	"example.com/opsvc/store"
)

// The scale-out scenario of issue 12, built only with -tags galera (make
// galera-test), so that make test neither runs nor skips it: a 3-node Galera
// cluster (scripts/galera.sh) with a service instance on node 1 and another
// on node 2, behind a load balancer that sends each request to a ready
// instance. Workers send A1 writes to shared ids with rising times, both
// instances at once; B2 ids are created by both instances at the same moment
// and then updated one write at a time, alternating instances, on a few
// shared connections. Mid-load node 2 is killed (kill -9) and rejoins; then
// nodes 2 and 3 are killed together, the survivor loses quorum, and its
// instance must answer 503 until they return. Afterwards every node must hold
// exactly what was last acknowledged, and the figures are printed.

const (
	galeraWorkers        = 8
	galeraA1IDs          = 24
	galeraConnections    = 4
	galeraDatabaseTimout = 8 * time.Second // rides through the 3-4 s stall of a node's loss
	galeraRecoverBound   = 90 * time.Second
)

func TestGalera(t *testing.T) {
	began := time.Now()
	g := startGalera(t)
	t.Logf("cluster: 3 nodes Synced in %s (ports %d+)", time.Since(began).Round(100*time.Millisecond), g.base)

	env := func(node int) map[string]string {
		return map[string]string{
			"DATABASE_URL":     g.url(node),
			"DATABASE_TIMEOUT": galeraDatabaseTimout.String(),
			"READY_TIMEOUT":    "2s",
			// The store's retries are logged at debug level: counted below.
			"LOG_LEVEL": "debug",
		}
	}
	// Instances starting at once on different nodes migrate the empty
	// database together: the migration's named lock is per node.
	var wg sync.WaitGroup
	openErrs := make([]error, 3)
	for n := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := store.Open(context.Background(), g.url(n+1), store.Options{})
			if err == nil {
				err = st.Ping(context.Background())
				st.Close()
			}
			openErrs[n] = err
		}()
	}
	wg.Wait()
	for n, err := range openErrs {
		if err != nil {
			t.Fatalf("store.Open on node %d, the three at once on an empty database: %v", n+1, err)
		}
	}
	insts := []*instance{{name: "A", node: 1}, {name: "B", node: 2}}
	for _, in := range insts {
		in.svc = mustRunMain(t, env(in.node))
	}
	lb := startBalancer(insts)
	defer lb.stop()
	load := startGaleraLoad(lb)
	checker := startMonotonicReader(load)

	mark := func(name string) time.Time {
		now := time.Now()
		load.marks = append(load.marks, phaseMark{name, now})
		t.Logf("%6.1fs  %s", now.Sub(load.start).Seconds(), name)
		return now
	}
	mark("load starts")
	time.Sleep(8 * time.Second)

	killedAt := mark("kill -9 node 2 (instance B's)")
	g.run(t, "kill", "2")
	time.Sleep(8 * time.Second)
	mark("restart node 2 (--wsrep-recover)")
	g.run(t, "restart", "2")
	rejoinedAt := mark("node 2 Synced")
	waitReady(t, insts[1])
	time.Sleep(8 * time.Second)

	quorumAt := mark("kill -9 nodes 2 and 3: node 1 alone, no quorum")
	g.run(t, "kill", "2", "3")
	// Instance A, on the survivor, must say 503 on /readyz and on writes.
	saw503 := waitFor(t, galeraRecoverBound, func() bool {
		return insts[0].readyz() == http.StatusServiceUnavailable && load.sawFrom("A", http.StatusServiceUnavailable, quorumAt)
	})
	mark(fmt.Sprintf("instance A answers 503 (readyz and writes) after %s", saw503.Sub(quorumAt).Round(100*time.Millisecond)))
	time.Sleep(5 * time.Second)
	mark("restart nodes 2 and 3")
	g.run(t, "restart", "2", "3")
	backAt := mark("nodes 2 and 3 Synced")
	for _, in := range insts {
		waitReady(t, in)
	}
	waitFor(t, galeraRecoverBound, func() bool { return load.ackedSince(backAt) > 0 })
	mark("instances ready, writes acknowledged again")
	time.Sleep(5 * time.Second)
	endAt := mark("load stops")
	load.stop()
	checker.stop()

	// Every node must hold what was acknowledged, and the same thing.
	var problems []string
	problems = append(problems, load.problems()...)
	problems = append(problems, checker.problems()...)
	for node := 1; node <= 3; node++ {
		problems = append(problems, load.checkNode(t, g, node)...)
	}

	// Figures.
	retries, certification, gaveUp := 0, 0, 0
	for _, in := range insts {
		for _, line := range strings.Split(in.svc.logs.String(), "\n") {
			if strings.Contains(line, `"msg":"request failed"`) && strings.Contains(line, "still conflicting after") {
				gaveUp++
			}
			if strings.Contains(line, `"msg":"store: retrying"`) {
				retries++
				if strings.Contains(line, "Error 1213") {
					certification++
				}
			}
		}
	}
	acked := load.ackedSince(time.Time{})
	t.Logf("figures (%d workers, 2 instances on nodes 1 and 2, DATABASE_TIMEOUT %s, short EVS timeouts):", galeraWorkers, galeraDatabaseTimout)
	t.Logf("  answers, all:                  %s", load.stats(time.Time{}, endAt))
	t.Logf("  answers before the kill:       %s", load.stats(load.start, killedAt))
	t.Logf("  answers with node 2 down:      %s", load.stats(killedAt, rejoinedAt))
	t.Logf("  answers after it rejoined:     %s", load.stats(rejoinedAt, quorumAt))
	t.Logf("  answers without quorum:        %s", load.stats(quorumAt, backAt))
	t.Logf("  answers after quorum is back:  %s", load.stats(backAt, endAt))
	t.Logf("  acknowledged writes/s before the kill:      %6.1f", load.rate(load.start, killedAt))
	t.Logf("  acknowledged writes/s with node 2 down:     %6.1f", load.rate(killedAt, rejoinedAt))
	t.Logf("  acknowledged writes/s after it rejoined:    %6.1f", load.rate(rejoinedAt, quorumAt))
	t.Logf("  acknowledged writes/s after quorum back:    %6.1f", load.rate(backAt, endAt))
	t.Logf("  longest stall (no write acknowledged) around the kill of node 2: %s", load.longestStall(load.start, quorumAt).Round(time.Millisecond))
	t.Logf("  outage of quorum loss (no write acknowledged): %s", load.longestStall(quorumAt, endAt).Round(time.Millisecond))
	t.Logf("  store retries: %d, %.1f per 1,000 acknowledged writes (%d of them error 1213: deadlock or certification conflict; the rest duplicate keys)",
		retries, 1000*float64(retries)/float64(max(acked, 1)), certification)
	t.Logf("  writes given up after 30 conflicting attempts (503): %d", gaveUp)
	t.Logf("  B2 concurrent creates: %s", load.createFigures())
	t.Logf("  monotonic reads: %d reads through both instances, %d went backwards", checker.reads.Load(), len(checker.problems()))
	t.Logf("  whole test: %s", time.Since(began).Round(time.Second))
	if len(problems) > 0 {
		// What the instances logged about the first few ids concerned.
		shown := map[string]bool{}
		for _, p := range problems {
			id := galeraIDPattern.FindString(p)
			if id == "" || shown[id] || len(shown) == 5 {
				continue
			}
			shown[id] = true
			for _, in := range insts {
				for _, line := range strings.Split(in.svc.logs.String(), "\n") {
					if strings.Contains(line, "/"+id+`"`) {
						t.Logf("instance %s: %.600s", in.name, line)
					}
				}
			}
		}
		if len(problems) > 30 {
			problems = append(problems[:30], fmt.Sprintf("... and %d more", len(problems)-30))
		}
		t.Errorf("%d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

var galeraIDPattern = regexp.MustCompile(`galera-(a1|b2)-[0-9-]+`)

// galera is a cluster started by scripts/galera.sh, stopped when the test ends.
type galera struct {
	dir  string
	base int
}

func startGalera(t *testing.T) *galera {
	t.Helper()
	dir, err := os.MkdirTemp("", "opsvc-galera-")
	if err != nil {
		t.Fatal(err)
	}
	// Run as root the nodes drop to user mysql, which must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := &galera{dir: dir, base: freePortBase(t)}
	t.Cleanup(func() {
		if t.Failed() {
			for n := 1; n <= 3; n++ {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("n%d", n), "error.log"))
				if len(b) > 3000 {
					b = b[len(b)-3000:]
				}
				t.Logf("--- node %d error.log (end):\n%s", n, b)
			}
		}
		g.run(t, "stop")
		if os.Getenv("OPSVC_GALERA_KEEP") != "" {
			t.Logf("the cluster's directory is kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	g.run(t, "start")
	return g
}

// run runs scripts/galera.sh, whose every wait is bounded; it fails the test
// when the script does.
func (g *galera) run(tb testing.TB, args ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join("..", "..", "scripts", "galera.sh"), args...)
	cmd.Env = append(os.Environ(), "GALERA_DIR="+g.dir, "GALERA_PORT_BASE="+strconv.Itoa(g.base), "GALERA_FAST=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("galera.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (g *galera) url(node int) string {
	return fmt.Sprintf("mysql://root:@127.0.0.1:%d/opsvc", g.base+node)
}

// db opens node's database directly, each read waiting until the node has
// applied everything committed before it (wsrep_sync_wait).
func (g *galera) db(tb testing.TB, node int) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", fmt.Sprintf("127.0.0.1:%d", g.base+node), "opsvc"
	cfg.Params = map[string]string{"wsrep_sync_wait": "1"}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	cfg.Timeout, cfg.ReadTimeout = 10*time.Second, 30*time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// freePortBase finds a base whose twelve ports (see galera.sh) are free now,
// below the kernel's ephemeral range: a port in it can be taken at any time
// by the local end of some outgoing connection (as one was, once, when a
// rejoining node's state transfer daemon could not bind its port).
func freePortBase(tb testing.TB) int {
	top := ephemeralPortLow() - 100
	if top <= 10000 {
		tb.Fatalf("the ephemeral port range starts at %d: no room below it for the cluster", top+100)
	}
	for range 50 {
		base := 10000 + 100*rand.N((top-10000)/100)
		free := true
		for _, off := range []int{1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 32, 33} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return base
		}
	}
	tb.Fatal("no free ports for the cluster")
	return 0
}

// ephemeralPortLow is the first port of the kernel's ephemeral range
// (Linux's default, 32768, when it cannot be read).
func ephemeralPortLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// instance is a service on one node.
type instance struct {
	name  string
	node  int
	svc   *service
	ready atomic.Bool
}

var galeraClient = &http.Client{Timeout: 30 * time.Second}

func (in *instance) readyz() int {
	resp, err := galeraClient.Get(in.svc.URL + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitReady(tb testing.TB, in *instance) {
	tb.Helper()
	waitFor(tb, galeraRecoverBound, func() bool { return in.readyz() == http.StatusOK })
}

// waitFor polls cond every 100 ms until it holds, at most bound, and returns
// when it did.
func waitFor(tb testing.TB, bound time.Duration, cond func() bool) time.Time {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %s", bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Now()
}

// balancer sends each request to a ready instance, in turn, as a load
// balancer probing /readyz every 200 ms does; with none ready, to any.
type balancer struct {
	insts  []*instance
	next   atomic.Uint64
	cancel context.CancelFunc
	done   chan struct{}
}

func startBalancer(insts []*instance) *balancer {
	ctx, cancel := context.WithCancel(context.Background())
	b := &balancer{insts: insts, cancel: cancel, done: make(chan struct{})}
	for _, in := range insts {
		in.ready.Store(true)
	}
	go func() {
		defer close(b.done)
		for ctx.Err() == nil {
			for _, in := range insts {
				in.ready.Store(in.readyz() == http.StatusOK)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return b
}

func (b *balancer) stop() { b.cancel(); <-b.done }

func (b *balancer) pick() *instance {
	n := b.next.Add(1)
	for i := range uint64(len(b.insts)) {
		if in := b.insts[(n+i)%uint64(len(b.insts))]; in.ready.Load() {
			return in
		}
	}
	return b.insts[n%uint64(len(b.insts))]
}

// a1ID is one A1 id written by every worker: its writes overlap, and the
// database decides which of two concurrent ones wins.
type a1ID struct {
	id      string
	next    int          // next sequence number
	acked   map[int]bool // answered 2xx
	maybe   map[int]bool // no answer, or 503 "may or may not"
	refused map[int]bool // 409, or 503 rolled back
}

// b2ID is one B2 id: created by both instances at once, then written one
// write at a time.
type b2ID struct {
	id, conn string
	next     int
	busy     bool
	acked    int // last write answered 2xx, -1 for none
	maybe    []int
	refused  []int
	created  []int // statuses of the two concurrent creates
}

// galeraAnswer is one write's answer.
type galeraAnswer struct {
	family, inst string
	sent         time.Time
	took         time.Duration
	status       int
	unknown      bool
}

type phaseMark struct {
	name string
	at   time.Time
}

type galeraLoad struct {
	lb    *balancer
	start time.Time
	marks []phaseMark

	mu      sync.Mutex
	a1      []*a1ID
	b2      []*b2ID
	answers []galeraAnswer
	bad     []string

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

var galeraBase = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func startGaleraLoad(lb *balancer) *galeraLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &galeraLoad{lb: lb, start: time.Now(), cancel: cancel}
	for k := range galeraA1IDs {
		l.a1 = append(l.a1, &a1ID{id: fmt.Sprintf("galera-a1-%d", k),
			acked: map[int]bool{}, maybe: map[int]bool{}, refused: map[int]bool{}})
	}
	for w := range galeraWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 12))
			for i := 0; ctx.Err() == nil; i++ {
				var ok bool
				switch {
				case i%8 == 0:
					ok = l.createB2(w, i)
				case i%2 == 0:
					ok = l.updateB2(r)
				default:
					ok = l.writeA1(l.a1[r.IntN(len(l.a1))])
				}
				if !ok {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

func (l *galeraLoad) stop() { l.cancel(); l.wg.Wait() }

// send sends one PUT to in and returns its answer; any answer the spec does
// not describe, and any 5xx but 503, is a problem.
func (l *galeraLoad) send(in *instance, family, path string, body any) galeraAnswer {
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, in.svc.URL+path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	if family == "B2" {
		req.Header.Set("X-Auth-Token", adminToken)
	}
	a := galeraAnswer{family: family, inst: in.name, sent: time.Now()}
	resp, err := galeraClient.Do(req)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	a.took = time.Since(a.sent)
	var problem string
	if err == nil {
		a.status = resp.StatusCode
		a.unknown = bytes.Contains(answer, []byte("may or may not have been recorded"))
		if err := spectest.Validate(req, resp, answer); err != nil {
			problem = fmt.Sprintf("%s %s via %s: %v", req.Method, path, in.name, err)
		} else if a.status >= 500 && a.status != http.StatusServiceUnavailable {
			problem = fmt.Sprintf("%s %s via %s: %d %s", req.Method, path, in.name, a.status, answer)
		}
	}
	l.mu.Lock()
	l.answers = append(l.answers, a)
	if problem != "" {
		l.bad = append(l.bad, problem)
	}
	l.mu.Unlock()
	return a
}

func acked(status int) bool { return status >= 200 && status < 300 }

func (l *galeraLoad) writeA1(id *a1ID) bool {
	l.mu.Lock()
	seq := id.next
	id.next++
	l.mu.Unlock()
	body := doc{
		"operation_id":     id.id,
		"occurred_time":    "20261123_100000",
		"last_update_time": galeraBase.Add(time.Duration(seq) * time.Second).Format("20060102_150405"),
		"status":           "executing",
		"request":          doc{"uri": "/v1/slices/l2vpn", "method": "PUT", "body": "seq=" + strconv.Itoa(seq)},
	}
	a := l.send(l.lb.pick(), "A1", "/v1/operations/"+id.id, body)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case acked(a.status):
		id.acked[seq] = true
	case a.status == 0 || a.unknown:
		id.maybe[seq] = true
	default:
		id.refused[seq] = true
	}
	return acked(a.status) || a.status == http.StatusConflict
}

func b2Body(id *b2ID, seq int) doc {
	b := iccOp(id.conn, tenantA, "prepare_connection", "processing",
		galeraBase.Add(time.Duration(seq)*time.Second).Format("2006-01-02 15:04:05"))
	b["request_body"] = doc{"seq": seq}
	return b
}

// createB2 creates a new B2 id through both instances at the same moment.
func (l *galeraLoad) createB2(w, i int) bool {
	id := &b2ID{id: fmt.Sprintf("galera-b2-%d-%d", w, i), conn: fmt.Sprintf("c0ffee00-1111-4222-8333-%012d", i%galeraConnections),
		acked: -1, next: 1, busy: true}
	l.mu.Lock()
	l.b2 = append(l.b2, id)
	l.mu.Unlock()
	var wg sync.WaitGroup
	answers := make([]galeraAnswer, len(l.lb.insts))
	start := make(chan struct{})
	for k, in := range l.lb.insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[k] = l.send(in, "B2", "/v1.0/icc/operations/"+id.id, b2Body(id, 0))
		}()
	}
	close(start)
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	id.busy = false
	any := false
	for _, a := range answers {
		id.created = append(id.created, a.status)
		switch {
		case acked(a.status):
			id.acked, any = 0, true
		case a.status == 0 || a.unknown:
			id.maybe = append(id.maybe, 0)
		}
	}
	return any
}

// updateB2 writes the next version of a B2 id no other worker is writing.
func (l *galeraLoad) updateB2(r *rand.Rand) bool {
	l.mu.Lock()
	var id *b2ID
	for range 5 {
		if len(l.b2) == 0 {
			break
		}
		if c := l.b2[r.IntN(len(l.b2))]; !c.busy {
			id = c
			break
		}
	}
	if id == nil {
		l.mu.Unlock()
		return true
	}
	id.busy = true
	seq := id.next
	id.next++
	l.mu.Unlock()
	a := l.send(l.lb.pick(), "B2", "/v1.0/icc/operations/"+id.id, b2Body(id, seq))
	l.mu.Lock()
	defer l.mu.Unlock()
	id.busy = false
	switch {
	case acked(a.status):
		id.acked, id.maybe, id.refused = seq, nil, nil
	case a.status == 0 || a.unknown:
		id.maybe = append(id.maybe, seq)
	default:
		id.refused = append(id.refused, seq)
	}
	return acked(a.status)
}

func (l *galeraLoad) snapshot() []galeraAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]galeraAnswer(nil), l.answers...)
}

// sawFrom reports whether inst answered a write sent after t with status.
func (l *galeraLoad) sawFrom(inst string, status int, t time.Time) bool {
	for _, a := range l.snapshot() {
		if a.inst == inst && a.status == status && a.sent.After(t) {
			return true
		}
	}
	return false
}

// ackedSince counts the writes sent after t and acknowledged.
func (l *galeraLoad) ackedSince(t time.Time) int {
	n := 0
	for _, a := range l.snapshot() {
		if a.sent.After(t) && acked(a.status) {
			n++
		}
	}
	return n
}

// rate is the writes acknowledged per second whose answers came between
// from and to.
func (l *galeraLoad) rate(from, to time.Time) float64 {
	n := 0
	for _, a := range l.snapshot() {
		if done := a.sent.Add(a.took); acked(a.status) && done.After(from) && done.Before(to) {
			n++
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

// longestStall is the longest time between from and to in which no write
// was acknowledged.
func (l *galeraLoad) longestStall(from, to time.Time) time.Duration {
	var done []time.Time
	for _, a := range l.snapshot() {
		if t := a.sent.Add(a.took); acked(a.status) && t.After(from) && t.Before(to) {
			done = append(done, t)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
	last, longest := from, time.Duration(0)
	for _, t := range done {
		longest = max(longest, t.Sub(last))
		last = t
	}
	return max(longest, to.Sub(last))
}

func (l *galeraLoad) stats(from, to time.Time) string {
	kinds := map[string]int{}
	n := 0
	var longest time.Duration
	for _, a := range l.snapshot() {
		if a.sent.Before(from) || a.sent.After(to) {
			continue
		}
		n++
		longest = max(longest, a.took)
		k := strconv.Itoa(a.status)
		switch {
		case a.status == 0:
			k = "no answer"
		case a.unknown:
			k = "503 unknown"
		case a.status == 503:
			k = "503 rolled back"
		}
		kinds[k]++
	}
	var parts []string
	for k, v := range kinds {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s), longest %s", n, strings.Join(parts, ", "), longest.Round(time.Millisecond))
}

// createFigures sums up the concurrent creates: how many ids, how many got
// exactly one 201.
func (l *galeraLoad) createFigures() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	both, one201 := 0, 0
	for _, id := range l.b2 {
		if len(id.created) == 2 && acked(id.created[0]) && acked(id.created[1]) {
			both++
			if count(id.created, http.StatusCreated) == 1 {
				one201++
			}
		}
	}
	return fmt.Sprintf("%d ids; %d with both creates acknowledged, of which %d had exactly one 201", len(l.b2), both, one201)
}

func count(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// problems are the answers that broke a rule, and the creates that did not
// give exactly one 201.
func (l *galeraLoad) problems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.bad...)
	for _, id := range l.b2 {
		n := count(id.created, http.StatusCreated)
		if n > 1 || n == 0 && len(id.created) == 2 && acked(id.created[0]) && acked(id.created[1]) {
			out = append(out, fmt.Sprintf("B2 %s: concurrent creates answered %v", id.id, id.created))
		}
	}
	return out
}

// checkNode compares what node holds with what was acknowledged: each A1 id
// holds its greatest acknowledged write or a later one whose outcome is
// unknown, each B2 id its last acknowledged write or a later unknown one,
// and each connection's latest marker the operation that is its latest.
func (l *galeraLoad) checkNode(tb testing.TB, g *galera, node int) []string {
	tb.Helper()
	db := g.db(tb, node)
	defer db.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("node %d: ", node)+fmt.Sprintf(format, args...))
	}

	stored := map[string]int{}
	rows, err := db.Query("SELECT id, request_body, last_update_time FROM msf_operations WHERE id LIKE 'galera-a1-%'")
	if err != nil {
		tb.Fatalf("node %d: %v", node, err)
	}
	for rows.Next() {
		var id, body string
		var last time.Time
		if err := rows.Scan(&id, &body, &last); err != nil {
			tb.Fatal(err)
		}
		seq, _ := strconv.Atoi(strings.TrimPrefix(body, "seq="))
		if want := galeraBase.Add(time.Duration(seq) * time.Second); !last.Equal(want) {
			bad("A1 %s: seq %d stored with last_update_time %s", id, seq, last)
		}
		stored[id] = seq
	}
	rows.Close()
	for _, id := range l.a1 {
		top := -1
		for s := range id.acked {
			top = max(top, s)
		}
		seq, found := stored[id.id]
		switch {
		case !found && top >= 0:
			bad("A1 %s: missing, acknowledged up to %d", id.id, top)
		case found && seq < top:
			bad("A1 %s: holds %d, older than the acknowledged %d (lost or moved backwards)", id.id, seq, top)
		case found && seq > top && !id.maybe[seq]:
			bad("A1 %s: holds %d, which was never acknowledged (refused: %v)", id.id, seq, id.refused[seq])
		}
	}

	type iccStored struct {
		seq  int
		conn string
	}
	iccRows := map[string]iccStored{}
	rows, err = db.Query("SELECT operation_id, connection_id, request_body FROM icc_operations WHERE operation_id LIKE 'galera-b2-%'")
	if err != nil {
		tb.Fatalf("node %d: %v", node, err)
	}
	for rows.Next() {
		var id, conn, body string
		if err := rows.Scan(&id, &conn, &body); err != nil {
			tb.Fatal(err)
		}
		var b struct{ Seq int }
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			bad("B2 %s: request_body %q", id, body)
		}
		iccRows[id] = iccStored{b.Seq, conn}
	}
	rows.Close()
	for _, id := range l.b2 {
		s, found := iccRows[id.id]
		switch {
		case !found && id.acked >= 0:
			bad("B2 %s: missing, acknowledged %d", id.id, id.acked)
		case found && s.seq != id.acked && !contains(id.maybe, s.seq):
			bad("B2 %s: holds %d, acknowledged %d, unknown %v, refused %v", id.id, s.seq, id.acked, id.maybe, id.refused)
		}
	}

	// icc_latest against the operations themselves.
	rows, err = db.Query(`SELECT l.connection_id, l.seq, (SELECT o.seq FROM icc_operations o
		WHERE o.tenant_id = l.tenant_id AND o.connection_id = l.connection_id
		ORDER BY o.reception_datetime DESC, o.seq DESC LIMIT 1) FROM icc_latest l`)
	if err != nil {
		tb.Fatalf("node %d: %v", node, err)
	}
	for rows.Next() {
		var conn string
		var marker, latest int64
		if err := rows.Scan(&conn, &marker, &latest); err != nil {
			tb.Fatal(err)
		}
		if marker != latest {
			bad("icc_latest of %s: marks seq %d, the latest is %d", conn, marker, latest)
		}
	}
	rows.Close()
	return out
}

// monotonicReader reads A1 ids through both instances throughout the load
// and checks that no id is ever seen going back to an older write, whatever
// the instance (and node) that answers.
type monotonicReader struct {
	reads  atomic.Int64
	mu     sync.Mutex
	seen   map[string]int
	bad    []string
	cancel context.CancelFunc
	done   chan struct{}
}

func startMonotonicReader(l *galeraLoad) *monotonicReader {
	ctx, cancel := context.WithCancel(context.Background())
	m := &monotonicReader{seen: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for i := 0; ctx.Err() == nil; i++ {
			id := l.a1[i%len(l.a1)].id
			in := l.lb.pick()
			resp, err := galeraClient.Get(in.svc.URL + "/v1/operations/" + id)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			var op struct{ Request struct{ Body string } }
			if json.Unmarshal(b, &op) != nil {
				continue
			}
			seq, _ := strconv.Atoi(strings.TrimPrefix(op.Request.Body, "seq="))
			m.reads.Add(1)
			m.mu.Lock()
			if prev, ok := m.seen[id]; ok && seq < prev {
				m.bad = append(m.bad, fmt.Sprintf("A1 %s read through %s: seq %d after %d was read", id, in.name, seq, prev))
			} else {
				m.seen[id] = seq
			}
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *monotonicReader) stop() { m.cancel(); <-m.done }

func (m *monotonicReader) problems() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.bad...)
}
