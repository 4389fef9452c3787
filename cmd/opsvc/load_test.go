package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeLoad sends A1 and B2 writes to a service from a few workers, each
// writing its own ids one write at a time, and keeps every answer, so that
// a test can check afterwards that each id holds exactly what was last
// acknowledged. Each write carries a sequence number (A1 request.body "seq=N",
// B2 request_body {"seq":N}); A1 times grow with it, so every write moves
// forward.
type writeLoad struct {
	url    string
	client *http.Client

	// paused, when set, stops the workers from sending new writes, as a load
	// balancer does once /readyz says 503.
	paused atomic.Bool

	mu      sync.Mutex
	ids     []*loadID
	answers []loadAnswer
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

// loadID is one id's history.
type loadID struct {
	family string // "A1" or "B2"
	id     string
	conn   string // B2's connection id, unique per id
	next   int    // next sequence number
	// acked is the last write answered 2xx, -1 for none; maybe holds the later
	// writes whose outcome is unknown (503 "unknown", no answer), refused the
	// later ones answered 503 "rolled back". The stored record must be acked
	// or one of maybe, never one of refused.
	acked   int
	maybe   []int
	refused []int
}

// loadAnswer is one write's answer: status 0 when none came.
type loadAnswer struct {
	family  string
	sent    time.Time
	took    time.Duration
	status  int
	unknown bool // 503 saying the write may have happened
	err     string
}

const loadIDsPerWorker = 4

// startWriteLoad starts workers sending writes to the service at url, to ids
// named prefix-WORKER-K.
func startWriteLoad(url, prefix string, workers int) *writeLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &writeLoad{url: url, client: &http.Client{Timeout: 30 * time.Second}, cancel: cancel}
	for w := range workers {
		var mine []*loadID
		for k := range loadIDsPerWorker {
			family := "A1"
			if k%2 == 1 {
				family = "B2"
			}
			id := &loadID{family: family, id: fmt.Sprintf("%s-%d-%d", prefix, w, k), acked: -1,
				conn: fmt.Sprintf("%08x-0000-4000-8000-%012x", crc32.ChecksumIEEE([]byte(prefix)), w<<16|k)}
			mine = append(mine, id)
		}
		l.mu.Lock()
		l.ids = append(l.ids, mine...)
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if l.paused.Load() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if !l.write(mine[i%len(mine)]) {
					// A client backs off a little when refused.
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	return l
}

// stop stops the workers and waits for their last answers.
func (l *writeLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// write sends id's next write and records the answer; it reports whether it
// was acknowledged.
func (l *writeLoad) write(id *loadID) bool {
	seq := id.next
	id.next++
	var path, token string
	var body any
	if id.family == "A1" {
		path = "/v1/operations/" + id.id
		last := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
		body = doc{
			"operation_id":     id.id,
			"occurred_time":    "20261123_100000",
			"last_update_time": last.Format("20060102_150405"),
			"status":           "executing",
			"request":          doc{"uri": "/v1/slices/l2vpn", "method": "PUT", "body": "seq=" + strconv.Itoa(seq)},
		}
	} else {
		path, token = "/v1.0/icc/operations/"+id.id, adminToken
		b := iccOp(id.conn, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")
		b["request_body"] = doc{"seq": seq}
		body = b
	}
	j, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPut, l.url+path, bytes.NewReader(j))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	a := loadAnswer{family: id.family, sent: time.Now()}
	resp, err := l.client.Do(req)
	var answer []byte
	if err == nil {
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	a.took = time.Since(a.sent)
	if err != nil {
		a.err = err.Error()
	} else {
		a.status = resp.StatusCode
		a.unknown = bytes.Contains(answer, []byte("may or may not have been recorded"))
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers = append(l.answers, a)
	switch {
	case a.status >= 200 && a.status < 300:
		id.acked, id.maybe, id.refused = seq, nil, nil
		return true
	case a.status == 0 || a.unknown:
		id.maybe = append(id.maybe, seq)
	default:
		id.refused = append(id.refused, seq)
	}
	return false
}

// snapshot returns a copy of the answers so far.
func (l *writeLoad) snapshot() []loadAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loadAnswer(nil), l.answers...)
}

// firstAckAfter returns when the first write sent after t was acknowledged
// (its answer came), or false.
func (l *writeLoad) firstAckAfter(t time.Time) (time.Time, bool) {
	var first time.Time
	for _, a := range l.snapshot() {
		if a.sent.After(t) && a.status >= 200 && a.status < 300 {
			if done := a.sent.Add(a.took); first.IsZero() || done.Before(first) {
				first = done
			}
		}
	}
	return first, !first.IsZero()
}

// waitAckAfter waits up to bound for a write sent after t to be
// acknowledged, and returns when its answer came.
func (l *writeLoad) waitAckAfter(tb testing.TB, t time.Time, bound time.Duration) time.Time {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for {
		if at, ok := l.firstAckAfter(t); ok {
			return at
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no write acknowledged within %s", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loadCheck is what reading every id back found.
type loadCheck struct {
	ids, acked, lost, refusedStored int
	problems                        []string
}

// check reads every id back through the API of the service at url and
// compares it with what was acknowledged.
func (l *writeLoad) check(tb testing.TB, url string) loadCheck {
	tb.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var c loadCheck
	for _, id := range l.ids {
		c.ids++
		stored, found := readSeq(tb, url, id)
		if id.acked >= 0 {
			c.acked++
		}
		ok := found && (stored == id.acked || contains(id.maybe, stored)) || !found && id.acked < 0
		if !ok && id.acked >= 0 {
			c.lost++
		}
		if found && contains(id.refused, stored) {
			c.refusedStored++
			ok = false
		}
		if !ok {
			c.problems = append(c.problems, fmt.Sprintf("%s %s: stored seq %d (found %v), acknowledged %d, unknown %v, refused %v",
				id.family, id.id, stored, found, id.acked, id.maybe, id.refused))
		}
	}
	return c
}

// readSeq reads id's stored sequence number through the API.
func readSeq(tb testing.TB, url string, id *loadID) (int, bool) {
	tb.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	var req *http.Request
	if id.family == "A1" {
		req, _ = http.NewRequest(http.MethodGet, url+"/v1/operations/"+id.id, nil)
	} else {
		req, _ = http.NewRequest(http.MethodGet, url+"/v1.0/icc/operations?connection_id="+id.conn, nil)
		req.Header.Set("X-Auth-Token", adminToken)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("reading %s back: %v", id.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if id.family == "A1" {
		if resp.StatusCode == http.StatusNotFound {
			return -1, false
		}
		var op struct{ Request struct{ Body string } }
		if resp.StatusCode != 200 || json.Unmarshal(b, &op) != nil {
			tb.Fatalf("reading %s back: %d %s", id.id, resp.StatusCode, b)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(op.Request.Body, "seq="))
		if err != nil {
			tb.Fatalf("reading %s back: body %q", id.id, op.Request.Body)
		}
		return n, true
	}
	var list struct {
		Operations []struct {
			OperationID string            `json:"operation_id"`
			RequestBody struct{ Seq int } `json:"request_body"`
		}
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &list) != nil {
		tb.Fatalf("reading %s back: %d %s", id.id, resp.StatusCode, b)
	}
	for _, op := range list.Operations {
		if op.OperationID == id.id {
			return op.RequestBody.Seq, true
		}
	}
	return -1, false
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// answerStats sums up answers: how many of each kind, and the longest.
type answerStats struct {
	n       int
	byKind  map[string]int
	longest time.Duration
}

func statsOf(answers []loadAnswer, keep func(loadAnswer) bool) answerStats {
	s := answerStats{byKind: map[string]int{}}
	for _, a := range answers {
		if !keep(a) {
			continue
		}
		s.n++
		s.longest = max(s.longest, a.took)
		s.byKind[a.kind()]++
	}
	return s
}

func (a loadAnswer) kind() string {
	switch {
	case a.status == 0:
		return "no answer"
	case a.status == 503 && a.unknown:
		return "503 unknown"
	case a.status == 503:
		return "503 rolled back"
	}
	return strconv.Itoa(a.status)
}

func (s answerStats) String() string {
	kinds := make([]string, 0, len(s.byKind))
	for k, n := range s.byKind {
		kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d answers (%s), longest %s", s.n, strings.Join(kinds, ", "), s.longest.Round(time.Millisecond))
}

// readyProbe asks /readyz every 100 ms, as an orchestrator does, and keeps
// each answer.
type readyProbe struct {
	mu      sync.Mutex
	answers []loadAnswer
	cancel  context.CancelFunc
	done    chan struct{}
}

func startReadyProbe(url string) *readyProbe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &readyProbe{cancel: cancel, done: make(chan struct{})}
	c := &http.Client{Timeout: 30 * time.Second}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			a := loadAnswer{family: "readyz", sent: time.Now()}
			resp, err := c.Get(url + "/readyz")
			a.took = time.Since(a.sent)
			if err != nil {
				a.err = err.Error()
			} else {
				a.status = resp.StatusCode
				resp.Body.Close()
			}
			p.mu.Lock()
			p.answers = append(p.answers, a)
			p.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return p
}

func (p *readyProbe) stop() []loadAnswer {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answers
}
