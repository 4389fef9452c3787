package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/opsvc/internal/dbtest"
)

// The additions of issue 9: pages, waiting, retention, conditional reads.

// msfAt is a valid A1 body whose id sorts like its place in A2's order
// (occurred time, then id): "t<occurred>-<n>".
func msfAt(occurred string, n int, status, lastUpdate string) (string, doc) {
	id := fmt.Sprintf("t%s-%04d", strings.ReplaceAll(occurred, "_", ""), n)
	d := minimal(id, status, lastUpdate)
	d["occurred_time"] = occurred
	if status == "completed" || status == "failed" {
		d["response"] = doc{"status_code": 200}
	}
	return id, d
}

// page is one page of a list.
type page struct {
	items []doc
	ids   []string
	next  string
	link  string
}

// getPage asks for one page and checks what a page must hold.
func getPage(tb testing.TB, s *service, path, idKey, token string) page {
	tb.Helper()
	var hdr []string
	if token != "" {
		hdr = []string{"X-Auth-Token", token}
	}
	r := s.do(tb, http.MethodGet, path, nil, hdr...)
	wantStatus(tb, r, 200)
	var body struct {
		OperationIDs  []string `json:"operation_ids"`
		Operations    []doc    `json:"operations"`
		NextPageToken *string  `json:"next_page_token"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		tb.Fatal(err)
	}
	p := page{items: body.Operations, ids: body.OperationIDs, link: r.header.Get("Link")}
	for _, it := range body.Operations {
		p.ids = append(p.ids, it[idKey].(string))
	}
	if body.NextPageToken != nil {
		p.next = *body.NextPageToken
		if p.next == "" {
			tb.Fatalf("%s: an empty next_page_token", path)
		}
		// The same query (defaults may be spelled out) with the token.
		u, _ := url.Parse(path)
		l, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(p.link, "<"), `>; rel="next"`))
		if err != nil || !strings.HasSuffix(p.link, `>; rel="next"`) || l.Path != u.Path || l.Query().Get("page_token") != p.next {
			tb.Fatalf("%s: Link %q", path, p.link)
		}
		for k, v := range u.Query() {
			if k != "page_token" && !slices.Equal(l.Query()[k], v) {
				tb.Fatalf("%s: Link %q has another %s", path, p.link, k)
			}
		}
	} else if p.link != "" {
		tb.Fatalf("%s: a last page with Link %q", path, p.link)
	}
	return p
}

// walk follows next_page_token from path to the last page.
func walk(tb testing.TB, s *service, path, idKey, token string, each func(page)) {
	tb.Helper()
	next := path
	for pages := 0; ; pages++ {
		if pages > 10000 {
			tb.Fatal("more than 10,000 pages")
		}
		p := getPage(tb, s, next, idKey, token)
		each(p)
		if p.next == "" {
			return
		}
		next = strings.TrimSuffix(strings.TrimPrefix(p.link, "<"), `>; rel="next"`)
	}
}

// TestPages walks A2, B1 and B3 page by page while other clients create and
// replace operations, and checks that every operation stored when the walk
// began is listed exactly once, in order.
func TestPages(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			var startMSF, startICC []string
			for i := range 60 {
				// Ten operations share each occurred time: ties are
				// broken by id.
				id, d := msfAt(fmt.Sprintf("20261123_10%02d00", i/10), i, "executing", "20261123_110000")
				wantStatus(t, putOp(t, s, id, d), 200)
				startMSF = append(startMSF, id)
			}
			for i := range 45 {
				id := fmt.Sprintf("icc-start-%03d", i)
				op := iccOp(connA1, tenantA, "prepare_connection", "processing", fmt.Sprintf("2026-11-20 09:%02d:00", i/5))
				wantStatus(t, putICC(t, s, id, op, adminToken), 201)
				startICC = append(startICC, id)
			}

			// Writers: new operations everywhere in the order, and
			// replacements of those listed (status moving on).
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var writes atomic.Int64
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						id, d := msfAt(fmt.Sprintf("20261123_10%02d00", n%7), 1000+w*100000+n, "executing", "20261123_110000")
						putOp(t, s, id, d)
						_, d = msfAt(fmt.Sprintf("20261123_10%02d00", (n%60)/10), n%60, "completed", "20261123_120000")
						putOp(t, s, startMSF[n%60], d)
						putICC(t, s, fmt.Sprintf("icc-new-%d-%d", w, n), iccOp(connA2, tenantA, "prepare_connection", "processing",
							fmt.Sprintf("2026-11-20 09:%02d:00", n%9)), adminToken)
						putICC(t, s, startICC[n%45], iccOp(connA1, tenantA, "prepare_connection", "complete",
							fmt.Sprintf("2026-11-20 09:%02d:00", (n%45)/5)), adminToken)
						writes.Add(4)
					}
				}()
			}
			defer func() { close(stop); wg.Wait() }()
			for writes.Load() < 8 {
				time.Sleep(10 * time.Millisecond)
			}

			exactlyOnce := func(t *testing.T, what string, start, got []string) {
				t.Helper()
				seen := map[string]int{}
				for _, id := range got {
					seen[id]++
					if seen[id] > 1 {
						t.Fatalf("%s: %s listed twice", what, id)
					}
				}
				for _, id := range start {
					if seen[id] != 1 {
						t.Fatalf("%s: %s, stored before the walk, listed %d times", what, id, seen[id])
					}
				}
			}
			for _, format := range []string{"list", "detail-list"} {
				var got []string
				pages := 0
				walk(t, s, "/v1/operations?format="+format+"&limit=7", "operation_id", "", func(p page) {
					pages++
					time.Sleep(20 * time.Millisecond) // writes land between pages
					if p.next != "" && len(p.ids) != 7 {
						t.Fatalf("a page of %d, not the last, with limit=7", len(p.ids))
					}
					got = append(got, p.ids...)
				})
				if !slices.IsSorted(got) {
					t.Fatalf("A2 %s: pages out of order: %v", format, got)
				}
				exactlyOnce(t, "A2 "+format, startMSF, got)
				t.Logf("A2 %s: %d pages, %d ids (%d at the start), %d writes so far", format, pages, len(got), len(startMSF), writes.Load())
			}
			for _, l := range []struct{ path, id string }{
				{"/v1.0/icc/operations?limit=4", "operation_id"},
				{"/v2.0/operations?limit=4", "id"},
			} {
				var got []string
				var last string
				walk(t, s, l.path, l.id, tokenA, func(p page) {
					time.Sleep(20 * time.Millisecond)
					for _, it := range p.items {
						rt := it["reception_datetime"].(string)
						if rt < last {
							t.Fatalf("%s: %s after %s", l.path, rt, last)
						}
						last = rt
					}
					got = append(got, p.ids...)
				})
				exactlyOnce(t, l.path, startICC, got)
				t.Logf("%s: %d ids (%d at the start), %d writes so far", l.path, len(got), len(startICC), writes.Load())
			}
		})
	}
}

// TestPages_tokens: without limit the whole list as before; a token works
// only with the query it came from.
func TestPages_tokens(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	for i := range 5 {
		id, d := msfAt("20261123_100000", i, "executing", "20261123_110000")
		wantStatus(t, putOp(t, s, id, d), 200)
		wantStatus(t, putICC(t, s, fmt.Sprintf("icc-%d", i), iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00"), adminToken), 201)
	}
	full := s.do(t, http.MethodGet, "/v1/operations", nil)
	if strings.Contains(string(full.body), "next_page_token") || full.header.Get("Link") != "" {
		t.Fatalf("without limit: %s %v", full, full.header)
	}
	// limit larger than the list: one page, no token.
	if p := getPage(t, s, "/v1/operations?limit=1000", "operation_id", ""); len(p.ids) != 5 || p.next != "" {
		t.Fatalf("limit=1000: %+v", p)
	}
	first := getPage(t, s, "/v1/operations?limit=2", "operation_id", "")
	// The rest without limit: streamed to the end.
	rest := getPage(t, s, "/v1/operations?page_token="+first.next, "operation_id", "")
	if got := append(first.ids, rest.ids...); len(got) != 5 || !slices.IsSorted(got) {
		t.Fatalf("first page then the rest: %v", got)
	}
	b1 := getPage(t, s, "/v1.0/icc/operations?limit=2", "operation_id", tokenA)
	tampered := []byte(first.next)
	tampered[len(tampered)-2] ^= 1
	for _, tt := range []struct{ path, token string }{
		{"/v1/operations?format=detail-list&limit=2&page_token=" + first.next, ""},              // another list
		{"/v1/operations?limit=2&page_token=" + string(tampered), ""},                           // altered
		{"/v1/operations?limit=2&page_token=" + b1.next, ""},                                    // another family's
		{"/v1.0/icc/operations?limit=2&phase=prepare_connection&page_token=" + b1.next, tokenA}, // other filters
		{"/v1.0/icc/operations?limit=2&page_token=" + b1.next, adminToken},                      // another scope
		{"/v2.0/operations?limit=2&page_token=" + b1.next, tokenA},                              // B3 with B1's
	} {
		var r result
		if tt.token == "" {
			r = s.do(t, http.MethodGet, tt.path, nil)
			wantMSFError(t, r, 400, "010002", "page_token")
		} else {
			r = s.do(t, http.MethodGet, tt.path, nil, "X-Auth-Token", tt.token)
			wantICCError(t, r, 400, "page_token")
		}
	}
	for _, l := range []string{"0", "1001", "x"} {
		r := s.do(t, http.MethodGet, "/v1/operations?limit="+l, nil)
		if r.status != 400 || !strings.Contains(string(r.body), "limit") {
			t.Fatalf("limit=%s: %s", l, r)
		}
		wantICCError(t, s.do(t, http.MethodGet, "/v2.0/operations?limit="+l, nil, "X-Auth-Token", tokenA), 400, "limit")
	}
}

// waitAnswer is a waiting request's answer and when it came.
type waitAnswer struct {
	r  result
	at time.Time
}

func startWait(tb testing.TB, s *service, path string, hdr ...string) <-chan waitAnswer {
	ch := make(chan waitAnswer, 1)
	go func() {
		_, r := s.send(tb, http.MethodGet, path, nil, hdr...)
		ch <- waitAnswer{r, time.Now()}
	}()
	return ch
}

// TestWait: a wait ends when the operation becomes terminal, here through a
// second instance on the same database, or when its time is up.
func TestWait(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dbURL := b.url(t)
			s := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL})
			other := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL})

			id, running := msfAt("20261123_100000", 1, "executing", "20261123_110000")
			wantStatus(t, putOp(t, s, id, running), 200)
			r := s.do(t, http.MethodGet, "/v1/operations/"+id, nil)
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("a running operation's answer without Retry-After: %v", r.header)
			}
			// The time runs out: the record as it is, with Retry-After.
			r = s.do(t, http.MethodGet, "/v1/operations/"+id+"?wait=300ms", nil)
			if r.status != 200 || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"executing"`) {
				t.Fatalf("a wait that ran out: %s %v", r, r.header)
			}
			wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations/"+id+"?wait=61s", nil), 400, "010002", "wait")
			wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations/nope?wait=1s", nil), 404, "030001", "operation_id")

			// Released by a write through the other instance.
			ch := startWait(t, s, "/v1/operations/"+id+"?wait=30s")
			time.Sleep(300 * time.Millisecond)
			_, done := msfAt("20261123_100000", 1, "completed", "20261123_120000")
			wantStatus(t, putOp(t, other, id, done), 200)
			wrote := time.Now()
			a := <-ch
			if a.r.status != 200 || !strings.Contains(string(a.r.body), `"completed"`) || a.r.header.Get("Retry-After") != "" {
				t.Fatalf("released wait: %s %v", a.r, a.r.header)
			}
			t.Logf("A3 wait released by the other instance %s after its write was acknowledged", a.at.Sub(wrote).Round(time.Millisecond))
			// Terminal: at once.
			r = s.do(t, http.MethodGet, "/v1/operations/"+id+"?wait=60s", nil)
			wantStatus(t, r, 200)

			// B3 show, released by a write through the other instance.
			op := iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-20 09:00:00")
			wantStatus(t, putICC(t, s, "icc-wait", op, adminToken), 201)
			ch = startWait(t, s, "/v2.0/operations/icc-wait?wait=30s", "X-Auth-Token", tokenA)
			time.Sleep(300 * time.Millisecond)
			wantStatus(t, putICC(t, other, "icc-wait", iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00"), adminToken), 200)
			wrote = time.Now()
			a = <-ch
			if a.r.status != 200 || !strings.Contains(string(a.r.body), `"complete"`) {
				t.Fatalf("released B3 wait: %s", a.r)
			}
			t.Logf("B3 wait released by the other instance %s after its write was acknowledged", a.at.Sub(wrote).Round(time.Millisecond))
			wantICCError(t, s.do(t, http.MethodGet, "/v2.0/operations/icc-wait?wait=2m", nil, "X-Auth-Token", tokenA), 400, "wait")

			// A delete ends a wait: 404.
			id2, running2 := msfAt("20261123_100000", 2, "executing", "20261123_110000")
			wantStatus(t, putOp(t, s, id2, running2), 200)
			ch = startWait(t, s, "/v1/operations/"+id2+"?wait=30s")
			time.Sleep(300 * time.Millisecond)
			wantStatus(t, other.do(t, http.MethodDelete, "/v1/operations/"+id2, nil), 204)
			if a := <-ch; a.r.status != 404 {
				t.Fatalf("a wait for an operation deleted meanwhile: %s", a.r)
			}

			// SIGTERM: waiting requests are answered, the service stops
			// without waiting for them (stop fails past 30 s).
			wantStatus(t, putOp(t, s, id2, running2), 200)
			ch = startWait(t, s, "/v1/operations/"+id2+"?wait=60s")
			time.Sleep(300 * time.Millisecond)
			begin := time.Now()
			if err := s.stop(); err != nil {
				t.Fatal(err)
			}
			a = <-ch
			if a.r.status != 200 || a.r.header.Get("Retry-After") == "" {
				t.Fatalf("a wait cut by SIGTERM: %s", a.r)
			}
			t.Logf("SIGTERM with a 60 s wait in flight: stopped in %s", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// TestWait_many: 200 requests wait at once; the database is asked about them
// once per poll, not once per waiter. On MariaDB the service talks through a
// proxy that counts the statements it sends.
func TestWait_many(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dbURL := b.url(t)
			var proxy *dbtest.Proxy
			if b.name == "mysql" {
				u, err := url.Parse(dbURL)
				if err != nil {
					t.Fatal(err)
				}
				proxy = dbtest.NewProxy(t, u.Host)
				u.Host = proxy.Addr()
				dbURL = u.String()
			}
			s := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL})
			const waiters = 200
			ids := make([]string, waiters)
			for i := range ids {
				var d doc
				ids[i], d = msfAt("20261123_100000", i, "executing", "20261123_110000")
				wantStatus(t, putOp(t, s, ids[i], d), 200)
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: waiters}}
			answers := make(chan waitAnswer, waiters)
			var before int64
			if proxy != nil {
				before = proxy.Statements()
			}
			started := time.Now()
			const wait = 8 * time.Second
			for _, id := range ids {
				go func() {
					req := s.newRequest(t, http.MethodGet, "/v1/operations/"+id+"?wait=8s", nil)
					resp, err := client.Do(req)
					if err != nil {
						answers <- waitAnswer{result{status: 0, body: []byte(err.Error())}, time.Now()}
						return
					}
					defer resp.Body.Close()
					var body doc
					_ = json.NewDecoder(resp.Body).Decode(&body)
					answers <- waitAnswer{result{status: resp.StatusCode, body: []byte(fmt.Sprint(body["status"]))}, time.Now()}
				}()
			}
			// Half are released by writes, half run out. (A write that
			// comes before its waiter's first read is answered at once:
			// released all the same.)
			time.Sleep(time.Second)
			var writers sync.WaitGroup
			for w := range 8 {
				writers.Add(1)
				go func() {
					defer writers.Done()
					for i := 2 * w; i < waiters; i += 16 {
						_, d := msfAt("20261123_100000", i, "completed", "20261123_120000")
						if r := putOp(t, s, ids[i], d); r.status != 200 {
							t.Errorf("release %s: %s", ids[i], r)
						}
					}
				}()
			}
			writers.Wait()
			released, ranOut := 0, 0
			for range waiters {
				a := <-answers
				switch {
				case a.r.status == 200 && string(a.r.body) == "completed":
					released++
				case a.r.status == 200 && string(a.r.body) == "executing":
					ranOut++
				default:
					t.Fatalf("a waiter got %s", a.r)
				}
			}
			elapsed := time.Since(started)
			if released != waiters/2 || ranOut != waiters/2 {
				t.Fatalf("%d released, %d ran out; want %d each", released, ranOut, waiters/2)
			}
			if proxy == nil {
				t.Logf("%d waiters for %s: %d released, %d ran out", waiters, wait, released, ranOut)
				return
			}
			n := proxy.Statements() - before
			// Each waiter reads its record when it starts and when it ends
			// (2 x 200), the 100 writes are 100 statements, new pool
			// connections one each (at most 20), and the poller one per
			// 300 ms: about 550. One query per waiter per second would add
			// 1,600.
			t.Logf("%d waiters for %s: %d released, %d ran out, %d statements sent to MariaDB in %s (%.0f/s)",
				waiters, wait, released, ranOut, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
			if limit := int64(2*waiters + waiters/2 + 50 + 4*int(elapsed.Seconds()+1)); n > limit {
				t.Fatalf("%d statements; at most %d without polling per waiter", n, limit)
			}
		})
	}
}

var etagRE = regexp.MustCompile(`^"[A-Za-z0-9_-]+"$`)

// TestConditionalReads: A3 and B3 show carry an ETag; If-None-Match holding
// it is 304, until the record changes.
func TestConditionalReads(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			id, running := msfAt("20261123_100000", 1, "executing", "20261123_110000")
			wantStatus(t, putOp(t, s, id, running), 200)
			r := s.do(t, http.MethodGet, "/v1/operations/"+id, nil)
			etag := r.header.Get("ETag")
			if !etagRE.MatchString(etag) {
				t.Fatalf("ETag %q", etag)
			}
			for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
				r = s.do(t, http.MethodGet, "/v1/operations/"+id, nil, "If-None-Match", inm)
				if r.status != 304 || len(r.body) != 0 || r.header.Get("ETag") != etag {
					t.Fatalf("If-None-Match %s: %s %v", inm, r, r.header)
				}
			}
			_, done := msfAt("20261123_100000", 1, "completed", "20261123_120000")
			wantStatus(t, putOp(t, s, id, done), 200)
			r = s.do(t, http.MethodGet, "/v1/operations/"+id, nil, "If-None-Match", etag)
			if r.status != 200 || r.header.Get("ETag") == etag || r.header.Get("Retry-After") != "" {
				t.Fatalf("changed since: %s %v", r, r.header)
			}

			wantStatus(t, putICC(t, s, "icc-etag", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-20 09:00:00"), adminToken), 201)
			r = showV2(t, s, "icc-etag", tokenA)
			etag = r.header.Get("ETag")
			if !etagRE.MatchString(etag) || r.header.Get("Retry-After") == "" {
				t.Fatalf("B3 show: %v", r.header)
			}
			r = s.do(t, http.MethodGet, "/v2.0/operations/icc-etag", nil, "X-Auth-Token", tokenA, "If-None-Match", etag)
			if r.status != 304 {
				t.Fatalf("B3 If-None-Match: %s", r)
			}
			// Another tenant learns nothing: 404, not 304.
			r = s.do(t, http.MethodGet, "/v2.0/operations/icc-etag", nil, "X-Auth-Token", tokenB, "If-None-Match", "*")
			wantICCError(t, r, 404, "operation_id")
		})
	}
}

// TestDelete: DELETE /v1/operations/{id} (allow-listed or admin) and
// DELETE /v2.0/operations/{id} (admin).
func TestDelete(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dbURL := b.url(t)
			s := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL})
			id, d := msfAt("20261123_100000", 1, "executing", "20261123_110000")
			wantStatus(t, putOp(t, s, id, d), 200)
			wantStatus(t, s.do(t, http.MethodDelete, "/v1/operations/"+id, nil), 204)
			wantMSFError(t, s.do(t, http.MethodDelete, "/v1/operations/"+id, nil), 404, "030001", "operation_id")
			if ids := getPage(t, s, "/v1/operations", "operation_id", "").ids; len(ids) != 0 {
				t.Fatalf("after delete: %v", ids)
			}
			// Outside the allow-list: an admin token, else 403.
			closed := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL, "MSF_ALLOWED_CIDRS": "192.0.2.0/24"})
			wantStatus(t, putOp(t, s, id, d), 200)
			wantMSFError(t, closed.do(t, http.MethodDelete, "/v1/operations/"+id, nil, "X-Auth-Token", tokenA), 403, "990003", "")
			wantStatus(t, closed.do(t, http.MethodDelete, "/v1/operations/"+id, nil, "X-Auth-Token", adminToken), 204)

			wantStatus(t, putICC(t, s, "icc-1", iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00"), adminToken), 201)
			wantStatus(t, putICC(t, s, "icc-2", iccOp(connA1, tenantA, "approve_connection", "complete", "2026-11-20 10:00:00"), adminToken), 201)
			wantICCError(t, s.do(t, http.MethodDelete, "/v2.0/operations/icc-2", nil, "X-Auth-Token", tokenA), 403, "Forbidden")
			wantICCError(t, s.do(t, http.MethodDelete, "/v2.0/operations/icc-2", nil), 401, "Unauthorized")
			wantStatus(t, s.do(t, http.MethodDelete, "/v2.0/operations/icc-2", nil, "X-Auth-Token", adminToken), 204)
			wantICCError(t, s.do(t, http.MethodDelete, "/v2.0/operations/icc-2", nil, "X-Auth-Token", adminToken), 404, "operation_id")
			// The connection's latest is the one left.
			if got := listV2(t, s, "?latest=true", tokenA); !slices.Equal(got, []string{"icc-1"}) {
				t.Fatalf("latest after delete: %v", got)
			}
		})
	}
}

// TestRetention: with RETENTION_PERIOD, terminal operations are purged once
// that old, in small batches, while writers go on; running ones stay. The
// longest write meanwhile is reported.
func TestRetention(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dbURL := b.url(t)
			s := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL, "RETENTION_PERIOD": "2s", "RETENTION_INTERVAL": "250ms", "ADMIN_ADDR": "127.0.0.1:0"})
			if b.name == "mysql" {
				// A second purger on the same database: harmless. (Two
				// processes writing one SQLite file is no deployment.)
				mustRunMain(t, map[string]string{"DATABASE_URL": dbURL, "RETENTION_PERIOD": "2s", "RETENTION_INTERVAL": "250ms"})
			}
			keep, _ := msfAt("20261123_100000", 0, "executing", "20261123_110000")
			_, d := msfAt("20261123_100000", 0, "executing", "20261123_110000")
			wantStatus(t, putOp(t, s, keep, d), 200)
			wantStatus(t, putICC(t, s, "icc-keep", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-20 09:00:00"), adminToken), 201)

			// Writers for 5 s: terminal operations, which the purge then
			// removes as they age, each write timed.
			var mu sync.Mutex
			var latencies []time.Duration
			var terminal []string
			var wg sync.WaitGroup
			end := time.Now().Add(5 * time.Second)
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := 0; time.Now().Before(end); n++ {
						id, d := msfAt("20261123_100000", 10000*(w+1)+n, "completed", "20261123_110000")
						start := time.Now()
						r := putOp(t, s, id, d)
						l1 := time.Since(start)
						iccID := fmt.Sprintf("icc-%d-%d", w, n)
						start = time.Now()
						r2 := putICC(t, s, iccID, iccOp(connA2, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00"), adminToken)
						l2 := time.Since(start)
						if r.status != 200 || r2.status != 201 {
							t.Errorf("write under purge: %s / %s", r, r2)
							return
						}
						mu.Lock()
						latencies = append(latencies, l1, l2)
						terminal = append(terminal, id)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			// Everything written is terminal and 2 s old after 2 s more,
			// a second of clock rounding, and a purge interval: 3.5 s on
			// an idle machine, but purges on a busy one take longer.
			// The ICC operations of a writer's last round may be a second
			// younger than its MSF one: wait for both families.
			var ids, iccIDs []string
			for range 120 {
				time.Sleep(250 * time.Millisecond)
				ids = getPage(t, s, "/v1/operations", "operation_id", "").ids
				if iccIDs = listV2(t, s, "", adminToken); len(ids) == 1 && len(iccIDs) == 1 {
					break
				}
			}
			if !slices.Equal(ids, []string{keep}) {
				t.Fatalf("after retention, A2 holds %d ids, want only %s", len(ids), keep)
			}
			if !slices.Equal(iccIDs, []string{"icc-keep"}) {
				t.Fatalf("after retention, B3 holds %v", iccIDs)
			}
			if got := listV2(t, s, "?latest=true", tokenA); !slices.Equal(got, []string{"icc-keep"}) {
				t.Fatalf("after retention, B3 latest holds %v", got)
			}
			sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
			purged, longestBatch := 0, 0.0
			for _, line := range strings.Split(s.logs.String(), "\n") {
				var l struct {
					Msg      string
					MSF, ICC int
					Batch    float64 `json:"longest_batch_ms"`
				}
				if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "retention: purged" {
					purged += l.MSF + l.ICC
					longestBatch = max(longestBatch, l.Batch)
				}
			}
			mfs := scrape(t, s.AdminURL)
			counted := counterValue(t, mfs, "opsvc_retention_purged_total", map[string]string{"family": "msf"}) +
				counterValue(t, mfs, "opsvc_retention_purged_total", map[string]string{"family": "icc"})
			if int(counted) < purged {
				// The counter may be ahead of the logs read above: a purge
				// may have run between the two.
				t.Errorf("opsvc_retention_purged_total says %v, the logs %d", counted, purged)
			}
			t.Logf("%d writes (A1 and B2) during the purges: p50 %s, p99 %s, longest %s; %d of %d purged by this instance, its longest batch write %.1f ms",
				len(latencies), latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)*99/100].Round(time.Microsecond),
				latencies[len(latencies)-1].Round(time.Microsecond), purged, 2*len(terminal), longestBatch)
		})
	}
}
