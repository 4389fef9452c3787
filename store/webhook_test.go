package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustSubscribe(t *testing.T, s *Store, f SubscriptionFilter, events ...string) Subscription {
	t.Helper()
	sub, err := s.CreateSubscription(context.Background(), Subscription{
		URL: "https://receiver.example/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=",
		Events: events, Filter: f,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// outboxRows counts the deliveries of a subscription of each event type.
func outboxRows(t *testing.T, s *Store, sub string) map[string]int {
	t.Helper()
	var rows []deliveryRow
	if err := s.db.Where("subscription_id = ?", sub).Order("seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, r := range rows {
		n[r.EventType+" "+r.Subject]++
	}
	return n
}

// finishOne records one attempt (FinishDeliveries) and reports whether it
// was recorded.
func finishOne(ctx context.Context, s *Store, d Delivery, a Attempt) (bool, error) {
	n, err := s.FinishDeliveries(ctx, []Finished{{d, a}})
	return n == 1, err
}

func msfOp(id, status string, sec int) Operation {
	op := Operation{ID: id, OccurredTime: at(0), LastUpdateTime: at(sec), Status: status,
		Request: Request{URI: "/v1/x", Method: "POST"}}
	if statusRank[status] == terminalRank {
		op.Response = &Response{StatusCode: ptr(200)}
	}
	return op
}

func TestStore_webhookOutbox(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()

		mustPutOperation(t, s, msfOp("before", "completed", 1))
		terminal := mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
		updated := mustSubscribe(t, s, SubscriptionFilter{OperationIDPrefix: "keep-"}, EventOperationUpdated)
		icc := mustSubscribe(t, s, SubscriptionFilter{TenantID: "tenant-a"}, EventICCOperationUpdated)

		mustPutOperation(t, s, msfOp("keep-1", "executing", 1))
		mustPutOperation(t, s, msfOp("keep-1", "completed", 2))
		mustPutOperation(t, s, msfOp("keep-1", "completed", 2)) // a repeat
		mustPutOperation(t, s, msfOp("keep-1", "completed", 3)) // new content, same status
		_, err := s.PutOperation(ctx, msfOp("keep-1", "executing", 4))
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("backwards: got %v, want ErrConflict", err)
		}
		mustPutOperation(t, s, msfOp("drop-1", "failed", 1))
		mustPutOperation(t, s, msfOp("before", "completed", 1)) // terminal before the subscription

		want := map[string]int{"operation.terminal msf/keep-1": 1, "operation.terminal msf/drop-1": 1}
		if got := outboxRows(t, s, terminal.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("terminal subscriber: %v, want %v", got, want)
		}
		// Every accepted notification, the refused one excepted; the repeat
		// of the stored one may or may not send one (MySQL: not within the
		// same second, when the row is left as it was).
		if n := outboxRows(t, s, updated.ID)["operation.updated msf/keep-1"]; n != 3 && n != 4 {
			t.Errorf("updated subscriber: %d events of keep-1, want 3 or 4", n)
		}

		for _, tenant := range []string{"tenant-a", "tenant-b"} {
			op := ICCOperation{ID: "icc-" + tenant, ConnectionID: "a80c1728-cc0c-11e6-8080-525400060300", TenantID: tenant,
				OrderType: "Create", Phase: "prepare_connection", OperationStatus: "processing",
				ReceptionDatetime: at(0), RequestBody: []byte(`{}`)}
			if _, _, err := s.PutICCOperation(ctx, op); err != nil {
				t.Fatal(err)
			}
		}
		want = map[string]int{"icc_operation.updated icc/icc-tenant-a": 1}
		if got := outboxRows(t, s, icc.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("icc subscriber: %v, want %v", got, want)
		}

		t.Run("concurrent first writes of one id make one terminal event", func(t *testing.T) {
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.PutOperation(ctx, msfOp("raced", "completed", 1)); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if n := outboxRows(t, s, terminal.ID)["operation.terminal msf/raced"]; n != 1 {
				t.Fatalf("%d terminal events, want 1", n)
			}
		})

		t.Run("a deleted subscription gets no more events", func(t *testing.T) {
			if err := s.DeleteSubscription(ctx, terminal.ID); err != nil {
				t.Fatal(err)
			}
			mustPutOperation(t, s, msfOp("after-delete", "completed", 1))
			if got := outboxRows(t, s, terminal.ID); len(got) != 0 {
				t.Fatalf("rows of a deleted subscription: %v", got)
			}
			if _, err := s.GetSubscription(ctx, terminal.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get a deleted subscription: %v", err)
			}
		})
	})
}

func TestStore_ClaimDeliveries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		sub := mustSubscribe(t, s, SubscriptionFilter{}, EventOperationUpdated)
		mustPutOperation(t, s, msfOp("x", "unexecuted", 1))
		mustPutOperation(t, s, msfOp("x", "executing", 2))
		mustPutOperation(t, s, msfOp("x", "completed", 3))
		mustPutOperation(t, s, msfOp("y", "completed", 1))
		now := time.Now().Add(time.Second)
		claim := func(now time.Time) map[string]Delivery {
			t.Helper()
			ds, err := s.ClaimDeliveries(ctx, now, time.Minute, 10)
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]Delivery{}
			for _, d := range ds {
				m[d.OperationID] = d
			}
			return m
		}

		got := claim(now)
		if len(got) != 2 || got["x"].Claim == "" || got["y"].Claim == "" {
			t.Fatalf("claimed %v, want the first event of x and y's", got)
		}
		if len(claim(now)) != 0 {
			t.Fatal("claimed deliveries are claimed again within their lease")
		}
		x1 := got["x"]
		if ok, err := finishOne(ctx, s, Delivery{Seq: x1.Seq, Claim: "clm_other"}, Attempt{State: DeliveryDelivered}); ok || err != nil {
			t.Fatalf("finish with another claim: %v %v", ok, err)
		}
		retryAt := now.Add(time.Hour)
		if ok, err := finishOne(ctx, s, x1, Attempt{At: now, State: DeliveryPending, NextAt: retryAt, Status: 500, Error: "answered 500", Counted: true}); !ok || err != nil {
			t.Fatalf("finish: %v %v", ok, err)
		}
		if ok, err := finishOne(ctx, s, got["y"], Attempt{At: now, State: DeliveryDelivered, NextAt: now, Status: 204, Counted: true}); !ok || err != nil {
			t.Fatalf("finish: %v %v", ok, err)
		}
		// x's first event waits for its retry: the later ones wait for it.
		if got := claim(now.Add(time.Minute)); len(got) != 0 {
			t.Fatalf("claimed %v while x's first event is pending", got)
		}
		got = claim(retryAt)
		if got["x"].Seq != x1.Seq || got["x"].Attempts != 1 {
			t.Fatalf("claimed %+v, want x's first event again", got["x"])
		}
		if ok, err := finishOne(ctx, s, got["x"], Attempt{At: retryAt, State: DeliveryDelivered, NextAt: retryAt, Status: 200, Counted: true}); !ok || err != nil {
			t.Fatalf("finish: %v %v", ok, err)
		}
		got = claim(retryAt)
		if got["x"].Seq <= x1.Seq || len(got) != 1 {
			t.Fatalf("claimed %v, want x's second event", got)
		}

		ds, err := s.ListDeliveries(ctx, sub.ID, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 4 || ds[len(ds)-1].State != DeliveryDelivered || ds[len(ds)-1].Attempts != 2 || ds[len(ds)-1].LastError != "" {
			t.Fatalf("deliveries: %+v", ds)
		}
		if n, err := s.PendingDeliveries(ctx); err != nil || n != 2 {
			t.Fatalf("pending: %d %v, want 2", n, err)
		}
	})
}

// TestStore_FinishDeliveries: one statement records a round's attempts,
// each as its own: delivered, to retry, handed back without an attempt, and
// one whose claim was lost, which stays as it is.
func TestStore_FinishDeliveries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		sub := mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
		for _, id := range []string{"delivered", "retry", "handed-back", "lost"} {
			mustPutOperation(t, s, msfOp(id, "completed", 1))
		}
		if _, _, err := s.ConvertTerminalEvents(ctx, 10, 0); err != nil {
			t.Fatal(err)
		}
		now := time.Now().Add(time.Second).Truncate(time.Millisecond)
		ds, err := s.ClaimDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(ds) != 4 {
			t.Fatalf("claimed %d deliveries (%v), want 4", len(ds), err)
		}
		byOp := map[string]Delivery{}
		for _, d := range ds {
			byOp[d.OperationID] = d
		}
		retryAt := now.Add(time.Hour)
		long := strings.Repeat("é", 300) // 600 bytes: cut at 500, between characters
		lost := byOp["lost"]
		lost.Claim = "clm_another"
		n, err := s.FinishDeliveries(ctx, []Finished{
			{byOp["delivered"], Attempt{At: now, State: DeliveryDelivered, NextAt: now, Status: 204, Counted: true}},
			{byOp["retry"], Attempt{At: now, State: DeliveryPending, NextAt: retryAt, Status: 503, Error: long, Counted: true}},
			{byOp["handed-back"], Attempt{State: DeliveryPending, NextAt: now}},
			{lost, Attempt{At: now, State: DeliveryDelivered, NextAt: now, Status: 200, Counted: true}},
		})
		if err != nil || n != 3 {
			t.Fatalf("FinishDeliveries = %d, %v; want 3 recorded (one claim lost)", n, err)
		}
		got, err := s.ListDeliveries(ctx, sub.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		rows := map[string]Delivery{}
		for _, d := range got {
			rows[d.OperationID] = d
		}
		check := func(id, state string, attempts, status int, lastError string, next *time.Time) {
			t.Helper()
			d := rows[id]
			gotStatus := 0
			if d.LastStatus != nil {
				gotStatus = *d.LastStatus
			}
			if d.State != state || d.Attempts != attempts || gotStatus != status || d.LastError != lastError {
				t.Errorf("%s: state %s, %d attempts, last status %d, last error %q; want %s, %d, %d, %q",
					id, d.State, d.Attempts, gotStatus, d.LastError, state, attempts, status, lastError)
			}
			if next != nil && (d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(*next)) {
				t.Errorf("%s: next attempt %v, want %v", id, d.NextAttemptAt, *next)
			}
		}
		check("delivered", DeliveryDelivered, 1, 204, "", nil)
		check("retry", DeliveryPending, 1, 503, strings.Repeat("é", 250), &retryAt)
		check("handed-back", DeliveryPending, 0, 0, "", &now)
		if d := rows["handed-back"]; d.LastAttemptAt != nil {
			t.Errorf("handed-back: last attempt %v, want none", d.LastAttemptAt)
		}
		check("lost", DeliveryPending, 0, 0, "", nil)
		// Unclaimed: the handed-back delivery is due again at once; the
		// lost one stays leased by the claim it has.
		again, err := s.ClaimDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(again) != 1 || again[0].OperationID != "handed-back" {
			t.Fatalf("claimed %+v (%v), want the handed-back delivery alone", again, err)
		}
	})
}

// TestStore_convertClaimed: with a lease, ConvertTerminalEvents hands the
// deliveries to subscriptions of operation.terminal alone over claimed,
// payload made, and the others pending as without it. (SQLite writes the
// events with the notification: nothing to convert.)
func TestStore_convertClaimed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		encode := func(ev Event) ([]byte, error) {
			return []byte(ev.Type + " " + ev.Operation.ID + " " + ev.Operation.Status), nil
		}
		s := mustOpen(t, b, Options{EncodeEvent: encode})
		ctx := context.Background()
		alone := mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
		mustPutOperation(t, s, msfOp("a", "completed", 1))
		mustPutOperation(t, s, msfOp("b", "failed", 1))
		// Created behind the store's back: its cache still says terminal
		// only, so the notifications above are marked, not written.
		both := subscriptionRow{ID: "sub_both", URL: "https://receiver.example/both", Secret: alone.Secret,
			Events: EventOperationTerminal + "," + EventOperationUpdated, CreatedAt: utcSecond(time.Now())}
		if err := s.db.Create(&both).Error; err != nil {
			t.Fatal(err)
		}

		n, claimed, err := s.ConvertTerminalEvents(ctx, 10, time.Minute)
		if b.name == "sqlite" {
			if n != 0 || claimed != nil || err != nil {
				t.Fatalf("SQLite converted %d (%v, %v), want nothing", n, claimed, err)
			}
			return
		}
		if err != nil || n != 2 || len(claimed) != 2 {
			t.Fatalf("converted %d, claimed %d (%v), want 2 and 2", n, len(claimed), err)
		}
		var payloads []string
		for _, d := range claimed {
			if d.SubscriptionID != alone.ID || d.Seq == 0 || d.Claim == "" || d.WebhookID == "" {
				t.Errorf("claimed %+v", d)
			}
			payloads = append(payloads, string(d.Payload))
		}
		slices.Sort(payloads)
		if want := []string{"operation.terminal a completed", "operation.terminal b failed"}; !slices.Equal(payloads, want) {
			t.Errorf("payloads %q, want %q", payloads, want)
		}
		// Leased: a claim now takes only the other subscription's.
		now := time.Now().Add(time.Second)
		ds, err := s.ClaimDeliveries(ctx, now, time.Minute, 10)
		if err != nil || len(ds) != 2 || ds[0].SubscriptionID != both.ID || ds[1].SubscriptionID != both.ID {
			t.Fatalf("claimed %+v (%v), want the 2 deliveries of %s", ds, err, both.ID)
		}
		fs := []Finished{}
		for _, d := range append(claimed, ds...) {
			fs = append(fs, Finished{d, Attempt{At: now, State: DeliveryDelivered, NextAt: now, Status: 204, Counted: true}})
		}
		if n, err := s.FinishDeliveries(ctx, fs); err != nil || n != 4 {
			t.Fatalf("FinishDeliveries = %d, %v; want 4", n, err)
		}
		if p, err := s.PendingDeliveries(ctx); err != nil || p != 0 {
			t.Fatalf("pending %d (%v), want 0", p, err)
		}
	})
}

// TestStore_ClaimDeliveriesConcurrently: claimers at once never take one
// delivery twice.
func TestStore_ClaimDeliveriesConcurrently(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
		const n = 60
		for i := range n {
			mustPutOperation(t, s, msfOp(fmt.Sprintf("op-%d", i), "completed", 1))
		}
		drainTerminalEvents(t, s) // the dispatcher's part, on MySQL
		var mu sync.Mutex
		taken := map[int64]int{}
		var wg sync.WaitGroup
		now := time.Now().Add(time.Second)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ds, err := s.ClaimDeliveries(ctx, now, time.Minute, 4)
					if err != nil {
						t.Error(err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						taken[d.Seq]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(taken) != n {
			t.Fatalf("%d deliveries claimed, want %d", len(taken), n)
		}
		for seq, c := range taken {
			if c != 1 {
				t.Errorf("delivery %d claimed %d times", seq, c)
			}
		}
	})
}

// drainTerminalEvents converts marked operations until none is left.
func drainTerminalEvents(t *testing.T, s *Store) int {
	t.Helper()
	total := 0
	for {
		n, _, err := s.ConvertTerminalEvents(context.Background(), 50, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

// With only operation.terminal subscribed, each operation gets its one
// terminal event once the dispatcher converted the marks (MySQL) or at once
// (SQLite), whatever the notifications before and after it.
func TestStore_terminalEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		sub := mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
		narrow := mustSubscribe(t, s, SubscriptionFilter{Statuses: []string{"failed"}}, EventOperationTerminal)

		mustPutOperation(t, s, msfOp("a", "executing", 1))
		mustPutOperation(t, s, msfOp("a", "completed", 2))
		mustPutOperation(t, s, msfOp("b", "failed", 1)) // terminal when first seen
		mustPutOperation(t, s, msfOp("c", "completed", 1))
		if repeat, err := s.PutOperation(ctx, msfOp("c", "completed", 1)); err != nil || !repeat {
			t.Fatalf("the stored notification again: repeat %v, %v", repeat, err)
		}
		mustPutOperation(t, s, msfOp("d", "executing", 1)) // not terminal: no event
		if _, err := s.PutOperation(ctx, msfOp("a", "executing", 3)); !errors.Is(err, ErrConflict) {
			t.Fatalf("backwards: %v, want ErrConflict", err)
		}
		drainTerminalEvents(t, s)
		// New content, same terminal status: no second event, converted
		// or not.
		mustPutOperation(t, s, msfOp("c", "completed", 2))
		drainTerminalEvents(t, s)

		want := map[string]int{"operation.terminal msf/a": 1, "operation.terminal msf/b": 1, "operation.terminal msf/c": 1}
		if got := outboxRows(t, s, sub.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("terminal subscriber: %v, want %v", got, want)
		}
		want = map[string]int{"operation.terminal msf/b": 1}
		if got := outboxRows(t, s, narrow.ID); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("failed-only subscriber: %v, want %v", got, want)
		}
		// The event carries the operation as stored, and when it ended.
		ds, err := s.ClaimDeliveries(ctx, time.Now().Add(time.Second), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.OperationID == "b" && !strings.Contains(string(d.Payload), `"failed"`) {
				t.Errorf("b's event: %s", d.Payload)
			}
		}
		var marked int64
		if b.name == "mysql" {
			if err := s.db.Model(&operationRow{}).Where("event_due <> 0").Count(&marked).Error; err != nil || marked != 0 {
				t.Errorf("%d operations still marked (%v)", marked, err)
			}
		}
	})
}

// On MySQL, a terminal notification is one statement with an
// operation.terminal subscriber as without one.
func TestStore_terminalNotificationIsOneStatement(t *testing.T) {
	t.Parallel()
	s, _, p := mustProxiedStore(t)
	mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
	mustPutOperation(t, s, msfOp("warm", "completed", 1)) // prepares the statement
	for i, op := range []Operation{msfOp("new", "completed", 1), msfOp("run", "executing", 1), msfOp("run", "failed", 2)} {
		before := p.Statements()
		mustPutOperation(t, s, op)
		if n := p.Statements() - before; n != 1 {
			t.Errorf("notification %d (%s %s): %d statements, want 1", i, op.ID, op.Status, n)
		}
	}
	if n := drainTerminalEvents(t, s); n != 3 {
		t.Errorf("converted %d operations, want 3 (warm, new, run)", n)
	}
}

// Instances converting at once write each operation's event once.
func TestStore_convertConcurrently(t *testing.T) {
	t.Parallel()
	b := mysqlBackend()
	if b.missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs this on MySQL, but %s", b.missing)
		}
		t.Skipf("skipping: needs MySQL: %s", b.missing)
	}
	dsn := b.newDSN(t)
	s1 := mustOpenDSN(t, dsn, Options{})
	ctx := context.Background()
	sub := mustSubscribe(t, s1, SubscriptionFilter{}, EventOperationTerminal)
	// Opened after the subscription exists, s2 knows it from the start:
	// its writes mark their operations too.
	s2 := mustOpenDSN(t, dsn, Options{})
	const ops = 300
	for i := range ops {
		mustPutOperation(t, []*Store{s1, s2}[i%2], msfOp(fmt.Sprintf("op-%03d", i), "completed", 1))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	converted := 0
	for _, s := range []*Store{s1, s2, s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, _, err := s.ConvertTerminalEvents(ctx, 20, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
				mu.Lock()
				converted += n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got := outboxRows(t, s1, sub.ID)
	if converted != ops || len(got) != ops {
		t.Fatalf("converted %d, %d operations with events, want %d", converted, len(got), ops)
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s: %d events", k, n)
		}
	}
}

// TestStore_PurgeDeliveries: the finished deliveries created before the
// time go, in windows of seqs; pending ones stay whatever their age, and so
// do the newer ones, and one created early but numbered late (a terminal
// event written after its notification) until a later purge passes it.
func TestStore_PurgeDeliveries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
		if purged, err := s.PurgeDeliveries(ctx, time.UnixMilli(base)); err != nil || purged != 0 {
			t.Fatalf("PurgeDeliveries of an empty outbox = %d, %v; want 0", purged, err)
		}
		states := []string{DeliveryDelivered, DeliveryFailed, DeliveryCanceled, DeliveryPending}
		const n = 2*purgeWindow + 2000   // more than one window below the cut
		const stuck = purgeWindow + 1000 // a stretch of old pending ones first
		rows := make([]deliveryRow, 0, stuck+n+1)
		for i := range stuck {
			rows = append(rows, deliveryRow{MsgID: fmt.Sprint("msg_stuck", i), SubscriptionID: "sub_x", EventType: EventOperationTerminal,
				Subject: fmt.Sprint("msf/stuck", i), State: DeliveryPending, CreatedMS: base - 1000, NextAttemptMS: base})
		}
		for i := range n {
			rows = append(rows, deliveryRow{MsgID: fmt.Sprint("msg_", i), SubscriptionID: "sub_x", EventType: EventOperationTerminal,
				Subject: fmt.Sprint("msf/op", i), State: states[i%4], CreatedMS: base + int64(i), NextAttemptMS: base + int64(i)})
		}
		rows = append(rows, deliveryRow{MsgID: "msg_late", SubscriptionID: "sub_x", EventType: EventOperationTerminal,
			Subject: "msf/late", State: DeliveryDelivered, CreatedMS: base, NextAttemptMS: base})
		if err := s.db.CreateInBatches(rows, 500).Error; err != nil {
			t.Fatal(err)
		}
		count := func(where string, args ...any) int64 {
			t.Helper()
			var c int64
			if err := s.db.Model(&deliveryRow{}).Where(where, args...).Count(&c).Error; err != nil {
				t.Fatal(err)
			}
			return c
		}
		cut := base + 2*purgeWindow // rows 0 .. 2*purgeWindow-1 are older
		purged, err := s.PurgeDeliveries(ctx, time.UnixMilli(cut))
		if want := int64(2*purgeWindow) * 3 / 4; err != nil || purged != want {
			t.Fatalf("PurgeDeliveries = %d, %v; want %d (the finished three quarters of the older rows)", purged, err, want)
		}
		if got := count("created_ms < ? AND state <> ? AND msg_id <> ?", cut, DeliveryPending, "msg_late"); got != 0 {
			t.Errorf("%d finished older deliveries left", got)
		}
		if got := count("state = ?", DeliveryPending); got != int64(stuck+n/4) {
			t.Errorf("%d pending deliveries left, want all %d", got, stuck+n/4)
		}
		if got := count("created_ms >= ?", cut); got != 2000 {
			t.Errorf("%d newer deliveries left, want 2000", got)
		}
		if got := count("msg_id = ?", "msg_late"); got != 1 {
			t.Errorf("the delivery numbered after the cut was purged already")
		}
		purged, err = s.PurgeDeliveries(ctx, time.UnixMilli(base+n))
		if want := int64(2000*3/4 + 1); err != nil || purged != want {
			t.Fatalf("second PurgeDeliveries = %d, %v; want %d (the newer finished ones and the late one)", purged, err, want)
		}
		if purged, err = s.PurgeDeliveries(ctx, time.UnixMilli(base+n)); err != nil || purged != 0 {
			t.Errorf("third PurgeDeliveries = %d, %v; want 0", purged, err)
		}
		if got := count("1 = 1"); got != int64(stuck+n/4) {
			t.Errorf("%d deliveries left, want the %d pending ones", got, stuck+n/4)
		}
	})
}
