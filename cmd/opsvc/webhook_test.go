package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// webhookEnv makes the dispatcher quick enough for tests and lets it call
// the receivers on 127.0.0.1.
func webhookEnv(extra ...string) map[string]string {
	env := map[string]string{
		"WEBHOOK_ALLOWED_CIDRS":    "127.0.0.0/8",
		"WEBHOOK_RETRY_MIN":        "20ms",
		"WEBHOOK_RETRY_MAX":        "100ms",
		"WEBHOOK_POLL_INTERVAL":    "50ms",
		"WEBHOOK_ROUND_INTERVAL":   "50ms",
		"WEBHOOK_REFRESH_INTERVAL": "200ms",
		"WEBHOOK_TIMEOUT":          "2s",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// hook is one request a receiver got.
type hook struct {
	id, timestamp, signature string
	header                   http.Header
	body                     []byte
	event                    struct {
		Type string `json:"type"`
		Data struct {
			OperationID    string `json:"operation_id"`
			Status         string `json:"status"`
			LastUpdateTime string `json:"last_update_time"`
		} `json:"data"`
	}
	answered int // the status answered; -1: the connection was dropped
}

// receiver is a webhook receiver: it records every request and answers
// what answer says for the n-th request (0-based); -1 drops the connection
// unanswered, as a receiver that is down.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hooks  []hook
	answer func(n int, h hook) int
}

func newReceiver(t *testing.T, answer func(n int, h hook) int) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	if r.answer == nil {
		r.answer = func(int, hook) int { return http.StatusNoContent }
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var h hook
		h.header = req.Header.Clone()
		h.id, h.timestamp, h.signature = req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
		h.body, _ = io.ReadAll(req.Body)
		_ = json.Unmarshal(h.body, &h.event)
		r.mu.Lock()
		n := len(r.hooks)
		h.answered = r.answer(n, h)
		r.hooks = append(r.hooks, h)
		r.mu.Unlock()
		if h.answered < 0 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.WriteHeader(h.answered)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hooks)
}

// delivered is the requests answered 2xx.
func (r *receiver) delivered() []hook {
	var out []hook
	for _, h := range r.got() {
		if h.answered >= 200 && h.answered < 300 {
			out = append(out, h)
		}
	}
	return out
}

// waitUntil polls cond until it holds, failing after a minute: a bound for
// a stuck test, not a timed assertion.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// subscribe creates a subscription through the API and returns its id and
// secret.
func subscribe(t *testing.T, s *service, url string, events ...string) (id, secret string) {
	t.Helper()
	r := s.do(t, "POST", "/v1/subscriptions", doc{"url": url, "events": events}, "X-Auth-Token", adminToken)
	wantStatus(t, r, http.StatusCreated)
	var sub struct{ ID, Secret string }
	if err := json.Unmarshal(r.body, &sub); err != nil {
		t.Fatal(err)
	}
	return sub.ID, sub.Secret
}

// msfNotification is an A1 body for id in status at second sec.
func msfNotification(id, status string, sec int) doc {
	n := doc{
		"operation_id":     id,
		"occurred_time":    "20261123_101500",
		"last_update_time": fmt.Sprintf("20261123_1016%02d", sec),
		"status":           status,
		"request":          doc{"uri": "/v1/slices/l2vpn", "method": "POST", "body": `{"a":"<&>"}`},
	}
	if status == "completed" || status == "failed" {
		n["response"] = doc{"status_code": 201, "body": "{}"}
	}
	return n
}

func putMSF(t *testing.T, s *service, id, status string, sec int) {
	t.Helper()
	wantStatus(t, s.do(t, "PUT", "/v1/operations/"+id, msfNotification(id, status, sec)), http.StatusOK)
}

// verify checks a hook's Standard Webhooks signature with secret.
func verify(t *testing.T, secret string, h hook) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(h.body, h.header); err != nil {
		t.Fatalf("webhook %s: %v", h.id, err)
	}
}

func deliveries(t *testing.T, s *service, sub string) []struct {
	WebhookID string `json:"webhook_id"`
	State     string
	Attempts  int
} {
	t.Helper()
	r := s.do(t, "GET", "/v1/subscriptions/"+sub+"/deliveries", nil, "X-Auth-Token", adminToken)
	wantStatus(t, r, http.StatusOK)
	var l struct {
		Deliveries []struct {
			WebhookID string `json:"webhook_id"`
			State     string
			Attempts  int
		}
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	return l.Deliveries
}

func TestWebhooks_subscriptions(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil) // no WEBHOOK_ALLOWED_CIDRS: private targets refused
	admin := []string{"X-Auth-Token", adminToken}

	t.Run("admin only, even from MSF_ALLOWED_CIDRS", func(t *testing.T) {
		body := doc{"url": "https://example.com/hook", "events": []string{"operation.terminal"}}
		wantMSFError(t, s.do(t, "POST", "/v1/subscriptions", body), 403, "990003", "Forbidden")
		wantMSFError(t, s.do(t, "GET", "/v1/subscriptions", nil, "X-Auth-Token", tokenA), 403, "990003", "Forbidden")
	})

	t.Run("private, loopback and link-local targets are refused", func(t *testing.T) {
		for _, u := range []string{
			"http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.1.2.3/", "http://192.168.0.1/",
			"http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fe80::1]/", "http://100.64.0.1/",
			"http://0.0.0.0/", "http://[::ffff:127.0.0.1]/",
		} {
			r := s.do(t, "POST", "/v1/subscriptions", doc{"url": u, "events": []string{"operation.terminal"}}, admin...)
			wantMSFError(t, r, 400, "010002", "url")
		}
	})

	t.Run("bad values are refused naming the field", func(t *testing.T) {
		for _, c := range []struct {
			body  doc
			field string
		}{
			{doc{"url": "ftp://192.0.2.1/", "events": []string{"operation.terminal"}}, "url"},
			{doc{"url": "http://93.184.215.14/", "events": []string{"operation.created"}}, "events"},
			{doc{"url": "http://93.184.215.14/", "events": []string{}}, "events"},
			{doc{"url": "http://93.184.215.14/"}, "events"},
			{doc{"url": "http://93.184.215.14/", "events": []string{"operation.terminal"}, "secret": "whsec_c2hvcnQ="}, "secret"},
			{doc{"url": "http://93.184.215.14/", "events": []string{"operation.terminal"}, "filter": doc{"statuses": []string{"done"}}}, "filter.statuses[0]"},
		} {
			wantMSFError(t, s.do(t, "POST", "/v1/subscriptions", c.body, admin...), 400, "010002", c.field)
		}
	})

	t.Run("create, show, list, delete; the secret is shown once", func(t *testing.T) {
		secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
		r := s.do(t, "POST", "/v1/subscriptions", doc{"url": "https://93.184.215.14/hook", "secret": secret,
			"events": []string{"operation.terminal", "icc_operation.updated"}, "filter": doc{"operation_id_prefix": "001"}}, admin...)
		wantStatus(t, r, http.StatusCreated)
		var created struct{ ID, Secret string }
		_ = json.Unmarshal(r.body, &created)
		if created.Secret != secret {
			t.Fatalf("secret = %q, want %q", created.Secret, secret)
		}
		r = s.do(t, "POST", "/v1/subscriptions", doc{"url": "http://93.184.215.14/", "events": []string{"operation.updated"}}, admin...)
		wantStatus(t, r, http.StatusCreated)
		var generated struct{ Secret string }
		_ = json.Unmarshal(r.body, &generated)
		if _, err := standardwebhooks.NewWebhook(generated.Secret); err != nil || !strings.HasPrefix(generated.Secret, "whsec_") {
			t.Fatalf("generated secret %q: %v", generated.Secret, err)
		}
		for _, path := range []string{"/v1/subscriptions/" + created.ID, "/v1/subscriptions"} {
			r := s.do(t, "GET", path, nil, admin...)
			wantStatus(t, r, http.StatusOK)
			if strings.Contains(string(r.body), "secret") || strings.Contains(string(r.body), "whsec_") {
				t.Fatalf("GET %s shows a secret: %s", path, r.body)
			}
			if !strings.Contains(string(r.body), `"operation_id_prefix":"001"`) {
				t.Fatalf("GET %s: no filter: %s", path, r.body)
			}
		}
		wantStatus(t, s.do(t, "DELETE", "/v1/subscriptions/"+created.ID, nil, admin...), http.StatusNoContent)
		wantMSFError(t, s.do(t, "GET", "/v1/subscriptions/"+created.ID, nil, admin...), 404, "030001", "subscription_id")
		wantMSFError(t, s.do(t, "DELETE", "/v1/subscriptions/"+created.ID, nil, admin...), 404, "030001", "subscription_id")
		wantMSFError(t, s.do(t, "GET", "/v1/subscriptions/"+created.ID+"/deliveries", nil, admin...), 404, "030001", "subscription_id")
	})
}

// TestWebhooks_terminal: one delivery per terminal operation, signed.
func TestWebhooks_terminal(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, webhookEnv("DATABASE_URL", b.url(t), "ADMIN_ADDR", "127.0.0.1:0"))
			rcv := newReceiver(t, nil)
			sub, secret := subscribe(t, s, rcv.srv.URL+"/hook", "operation.terminal")

			putMSF(t, s, "op-1", "executing", 1)
			putMSF(t, s, "op-1", "completed", 2)
			putMSF(t, s, "op-1", "completed", 2) // a repeat: no second event
			putMSF(t, s, "op-1", "completed", 3) // new content, same terminal status: none either
			putMSF(t, s, "op-2", "failed", 1)
			// Refused: never an event.
			wantMSFError(t, s.do(t, "PUT", "/v1/operations/op-2", msfNotification("op-2", "executing", 5)), 409, "030007", "status")
			putMSF(t, s, "op-3", "canceled", 1) // the last: the others were recorded before it

			waitUntil(t, "3 deliveries", func() bool { return len(rcv.delivered()) >= 3 })
			// Everything after op-3's event was recorded before it: give the
			// dispatcher one more round to show a duplicate, if any.
			var last any
			t.Cleanup(func() {
				if t.Failed() {
					var got []string
					for _, h := range rcv.got() {
						got = append(got, h.id+" "+h.event.Type+" "+h.event.Data.OperationID+" "+h.event.Data.Status)
					}
					t.Logf("deliveries: %+v; received %d: %v\nlogs:\n%s", last, len(got), got, s.logs)
				}
			})
			waitUntil(t, "the deliveries recorded", func() bool {
				ds := deliveries(t, s, sub)
				last = ds
				return len(ds) == 3 && !slices.ContainsFunc(ds, func(d struct {
					WebhookID string `json:"webhook_id"`
					State     string
					Attempts  int
				}) bool {
					return d.State != "delivered"
				})
			})
			got := rcv.got()
			if len(got) != 3 {
				t.Fatalf("receiver got %d requests, want 3", len(got))
			}
			seen := map[string]string{}
			for _, h := range got {
				verify(t, secret, h)
				if h.event.Type != "operation.terminal" {
					t.Errorf("type %q", h.event.Type)
				}
				seen[h.event.Data.OperationID] = h.event.Data.Status
				if !strings.Contains(string(h.body), `<&>`) {
					t.Errorf("body escaped or lost: %s", h.body)
				}
			}
			want := map[string]string{"op-1": "completed", "op-2": "failed", "op-3": "canceled"}
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Fatalf("got %v, want %v", seen, want)
			}
			// The event's data is the operation as A3 answers it (op-1 was
			// re-sent with new content: its event may carry either).
			for _, h := range got {
				id := h.event.Data.OperationID
				if id == "op-1" {
					continue
				}
				var ev struct{ Data json.RawMessage }
				if err := json.Unmarshal(h.body, &ev); err != nil {
					t.Fatal(err)
				}
				a3 := s.do(t, "GET", "/v1/operations/"+id, nil)
				if !bytes.Equal(bytes.TrimSpace(a3.body), ev.Data) {
					t.Errorf("%s: the event's data is not A3's answer:\n%s\n%s", id, ev.Data, a3.body)
				}
			}
			// The metrics say the same.
			mfs := scrape(t, s.AdminURL)
			if got := counterValue(t, mfs, "opsvc_webhook_deliveries_total", map[string]string{"result": "delivered"}); got != 3 {
				t.Errorf("opsvc_webhook_deliveries_total{result=delivered} = %v, want 3", got)
			}
			if ms := series(mfs, "opsvc_webhook_deliveries_pending", nil); len(ms) != 1 || ms[0].GetGauge().GetValue() != 0 {
				t.Errorf("opsvc_webhook_deliveries_pending = %v, want one gauge at 0", ms)
			}
		})
	}
}

// TestWebhooks_retries: 500s, then a receiver that drops connections (down),
// then 2xx: one event, the same webhook-id each time.
func TestWebhooks_retries(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, webhookEnv())
	rcv := newReceiver(t, func(n int, _ hook) int {
		switch {
		case n < 2:
			return http.StatusInternalServerError
		case n < 4:
			return -1
		case n < 5:
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	sub, secret := subscribe(t, s, rcv.srv.URL, "operation.terminal")
	putMSF(t, s, "op-retried", "completed", 1)
	waitUntil(t, "the delivery", func() bool { return len(rcv.delivered()) == 1 })
	got := rcv.got()
	if len(got) != 6 {
		t.Fatalf("receiver got %d requests, want 6", len(got))
	}
	for _, h := range got {
		if h.id != got[0].id {
			t.Fatalf("webhook-id changed from %s to %s", got[0].id, h.id)
		}
		verify(t, secret, h)
	}
	waitUntil(t, "the delivery recorded", func() bool {
		ds := deliveries(t, s, sub)
		return len(ds) == 1 && ds[0].State == "delivered" && ds[0].Attempts == 6 && ds[0].WebhookID == got[0].id
	})
}

// TestWebhooks_order: the events of one operation arrive in order, even
// when the first one fails a few times.
func TestWebhooks_order(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, webhookEnv())
	release := make(chan struct{})
	rcv := newReceiver(t, func(n int, h hook) int {
		if h.event.Data.Status == "unexecuted" {
			select {
			case <-release:
			default:
				return http.StatusServiceUnavailable
			}
		}
		return http.StatusOK
	})
	subscribe(t, s, rcv.srv.URL, "operation.updated")
	putMSF(t, s, "op-ordered", "unexecuted", 1)
	putMSF(t, s, "op-ordered", "executing", 2)
	putMSF(t, s, "op-ordered", "executing", 3)
	putMSF(t, s, "op-ordered", "completed", 4)
	putMSF(t, s, "op-other", "completed", 1) // another operation is not held up
	waitUntil(t, "the other operation's event", func() bool {
		return slices.ContainsFunc(rcv.delivered(), func(h hook) bool { return h.event.Data.OperationID == "op-other" })
	})
	waitUntil(t, "a few refusals of the first event", func() bool { return len(rcv.got()) >= 4 })
	close(release)
	waitUntil(t, "5 deliveries", func() bool { return len(rcv.delivered()) == 5 })
	var order []string
	for _, h := range rcv.got() {
		if h.event.Data.OperationID != "op-ordered" {
			continue
		}
		if len(order) > 0 && h.answered != http.StatusOK {
			t.Fatalf("a later event was sent before the first was delivered: %s", h.event.Data.LastUpdateTime)
		}
		if h.answered == http.StatusOK {
			order = append(order, h.event.Data.Status+"@"+h.event.Data.LastUpdateTime[13:])
		}
	}
	want := []string{"unexecuted@01", "executing@02", "executing@03", "completed@04"}
	if !slices.Equal(order, want) {
		t.Fatalf("delivered %v, want %v", order, want)
	}
}

// TestWebhooks_gone: 410 disables the subscription; nothing more is sent to it.
func TestWebhooks_gone(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, webhookEnv())
	gone := newReceiver(t, func(int, hook) int { return http.StatusGone })
	control := newReceiver(t, nil)
	sub, _ := subscribe(t, s, gone.srv.URL, "operation.terminal")
	putMSF(t, s, "op-gone-1", "completed", 1)
	waitUntil(t, "the subscription disabled", func() bool {
		r := s.do(t, "GET", "/v1/subscriptions/"+sub, nil, "X-Auth-Token", adminToken)
		return strings.Contains(string(r.body), `"active":false`)
	})
	subscribe(t, s, control.srv.URL, "operation.terminal")
	putMSF(t, s, "op-gone-2", "completed", 1)
	waitUntil(t, "the control receiver's delivery", func() bool { return len(control.delivered()) == 1 })
	if n := len(gone.got()); n != 1 {
		t.Fatalf("the receiver that answered 410 got %d requests, want 1", n)
	}
	// The answer that says it is disabled may come before this instance's
	// cache of subscriptions knows: an event recorded meanwhile is
	// canceled (pending until the dispatcher sees it), never sent.
	ds := deliveries(t, s, sub) // newest first
	for i, d := range ds {
		first := i == len(ds)-1
		if first && d.State != "failed" || !first && d.State != "canceled" && d.State != "pending" {
			t.Fatalf("deliveries %+v, want the first failed, any later canceled", ds)
		}
	}
}

// TestWebhooks_killed: a notification acknowledged just before the service
// is killed (SIGKILL), before its event could be delivered, is delivered
// after a restart.
func TestWebhooks_killed(t *testing.T) {
	t.Parallel()
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			var up sync.Map
			rcv := newReceiver(t, func(int, hook) int {
				if _, ok := up.Load("up"); ok {
					return http.StatusOK
				}
				return http.StatusServiceUnavailable
			})
			env := []string{"DATABASE_URL=" + be.url(t), "AUTH_TOKENS_FILE=" + filepath.Join("..", "..", "testdata", "tokens.json")}
			for k, v := range webhookEnv("WEBHOOK_TIMEOUT", "500ms") {
				env = append(env, k+"="+v)
			}
			b := mustExecMain(t, "", env...)
			s := &service{URL: "http://" + b.addr}
			subscribe(t, s, rcv.srv.URL, "operation.terminal")
			// The first is tried (and refused) before the kill, so its
			// delivery is claimed, its lease running; on MySQL the last
			// are perhaps only marked (event_due) when the service dies.
			// Each must arrive after the restart.
			ids := []string{"op-killed-1", "op-killed-2", "op-killed-3", "op-killed-4", "op-killed-5"}
			putMSF(t, s, ids[0], "completed", 1)
			waitUntil(t, "an attempt before the kill", func() bool { return len(rcv.got()) > 0 })
			for _, id := range ids[1:] {
				putMSF(t, s, id, "completed", 1)
			}
			if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-b.done
			if n := len(rcv.delivered()); n != 0 {
				t.Fatalf("delivered before the kill: %d", n)
			}
			up.Store("up", true)
			b2 := mustExecMain(t, "", env...)
			defer func() { _ = b2.exit(t, 30*time.Second) }()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("received %d\nbefore the kill:\n%s\nafter the restart:\n%s", len(rcv.got()), b.logs, b2.logs)
				}
			})
			waitUntil(t, "the deliveries after the restart", func() bool { return len(rcv.delivered()) >= len(ids) })
			var got []string
			for _, h := range rcv.delivered() {
				got = append(got, h.event.Data.OperationID)
			}
			slices.Sort(got)
			if !slices.Equal(got, ids) {
				t.Fatalf("delivered %v, want each of %v once", got, ids)
			}
		})
	}
}

// TestWebhooks_twoInstances: two instances on one MariaDB deliver each
// event once.
func TestWebhooks_twoInstances(t *testing.T) {
	t.Parallel()
	if os.Getenv("TEST_MYSQL_DSN") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TEST_MYSQL_DSN is not set; CI must test on MariaDB/MySQL")
		}
		t.Skip("TEST_MYSQL_DSN is not set")
	}
	db := mustMySQLDatabase(t)
	var mu sync.Mutex
	count := map[string]int{}
	rcv := newReceiver(t, func(_ int, h hook) int {
		mu.Lock()
		count[h.id]++
		mu.Unlock()
		return http.StatusOK
	})
	a := mustRunMain(t, webhookEnv("DATABASE_URL", db))
	subscribe(t, a, rcv.srv.URL, "operation.terminal")
	// Started after the subscription exists, b knows it from its start.
	b := mustRunMain(t, webhookEnv("DATABASE_URL", db))
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			putMSF(t, s, fmt.Sprintf("op-shared-%d", i), "completed", 1)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		if t.Failed() {
			var marked, pending, rows, subjects, ops int
			_ = queryMySQL(t, db, "SELECT COUNT(*), COUNT(DISTINCT subject) FROM webhook_deliveries", &rows, &subjects)
			_ = queryMySQL(t, db, "SELECT COUNT(*) FROM msf_operations", &ops)
			t.Logf("%d delivery rows, %d operations with one; %d operations", rows, subjects, ops)
			_ = queryMySQL(t, db, "SELECT COUNT(*) FROM msf_operations WHERE event_due <> 0", &marked)
			_ = queryMySQL(t, db, "SELECT COUNT(*) FROM webhook_deliveries WHERE state <> 'delivered'", &pending)
			t.Logf("%d operations marked, %d deliveries not delivered; received %d\nlogs of a:\n%s\nlogs of b:\n%s", marked, pending, len(count), a.logs, b.logs)
		}
	})
	waitUntil(t, "every event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) == n
	})
	// Each event is recorded delivered only once it was answered: when all
	// are, no claim is left that could send one again.
	waitUntil(t, "every delivery recorded", func() bool {
		var pending int
		err := queryMySQL(t, db, "SELECT COUNT(*) FROM webhook_deliveries WHERE state <> 'delivered'", &pending)
		return err == nil && pending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for id, c := range count {
		if c != 1 {
			t.Errorf("webhook %s delivered %d times", id, c)
		}
	}
	if !strings.Contains(a.logs.String(), "listening") || !strings.Contains(b.logs.String(), "listening") {
		t.Fatal("an instance did not start")
	}
}

// queryMySQL scans the one row of query on the database of a mysql:// URL.
func queryMySQL(t *testing.T, dbURL, query string, dst ...any) error {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	return db.QueryRow(query).Scan(dst...)
}

// TestWebhooks_givesUp: a receiver that never answers 2xx gets the event
// until WEBHOOK_RETRY_PERIOD, then the delivery has failed and one line
// says so.
func TestWebhooks_givesUp(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, webhookEnv("WEBHOOK_RETRY_PERIOD", "300ms"))
	rcv := newReceiver(t, func(int, hook) int { return http.StatusInternalServerError })
	sub, _ := subscribe(t, s, rcv.srv.URL, "operation.terminal")
	putMSF(t, s, "op-given-up", "failed", 1)
	waitUntil(t, "the delivery failed", func() bool {
		ds := deliveries(t, s, sub)
		return len(ds) == 1 && ds[0].State == "failed"
	})
	if n := len(rcv.got()); n < 2 {
		t.Fatalf("the receiver got %d attempts, want retries", n)
	}
	var lines []map[string]any
	waitUntil(t, "the log line", func() bool {
		lines = nil
		for _, text := range strings.Split(s.logs.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(text), &l) == nil && l["msg"] == "webhook delivery failed for good" {
				lines = append(lines, l)
			}
		}
		return len(lines) > 0
	})
	if len(lines) != 1 || lines[0]["operation_id"] != "op-given-up" || lines[0]["subscription_id"] != sub {
		t.Fatalf("log lines %v", lines)
	}
}

// TestWebhooks_icc: an accepted ICC write is an icc_operation.updated event
// for the subscriptions whose filter takes its tenant.
func TestWebhooks_icc(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, webhookEnv())
	rcv := newReceiver(t, nil)
	other := newReceiver(t, nil)
	r := s.do(t, "POST", "/v1/subscriptions", doc{"url": rcv.srv.URL, "events": []string{"icc_operation.updated"},
		"filter": doc{"tenant_id": tenantA}}, "X-Auth-Token", adminToken)
	wantStatus(t, r, http.StatusCreated)
	r = s.do(t, "POST", "/v1/subscriptions", doc{"url": other.srv.URL, "events": []string{"icc_operation.updated"},
		"filter": doc{"tenant_id": tenantB}}, "X-Auth-Token", adminToken)
	wantStatus(t, r, http.StatusCreated)
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "icc-operation.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, s.do(t, "PUT", "/v1.0/icc/operations/op-icc-hook", body, "X-Auth-Token", adminToken), http.StatusCreated)
	waitUntil(t, "the ICC event", func() bool { return len(rcv.delivered()) == 1 })
	var ev struct {
		Type string
		Data struct {
			OperationID string `json:"operation_id"`
			TenantID    string `json:"tenant_id"`
		}
	}
	if err := json.Unmarshal(rcv.delivered()[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "icc_operation.updated" || ev.Data.OperationID != "op-icc-hook" || ev.Data.TenantID != tenantA {
		t.Fatalf("event %s", rcv.delivered()[0].body)
	}
	if n := len(other.got()); n != 0 {
		t.Fatalf("the other tenant's subscriber got %d", n)
	}
}
