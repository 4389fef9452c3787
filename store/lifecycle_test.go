package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestStore_pages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{BatchSize: 3})
		ctx := context.Background()
		var want []string
		for i := range 10 {
			op := newOperation(fmt.Sprintf("op-%02d", i))
			op.OccurredTime = at(i / 4) // ties across page ends
			mustPutOperation(t, s, op)
			want = append(want, op.ID)
			_, _, err := s.PutICCOperation(ctx, ICCOperation{ID: fmt.Sprintf("icc-%02d", i), TenantID: "t", ConnectionID: "c",
				OrderType: "Create", Phase: "prepare_connection", OperationStatus: "processing",
				ReceptionDatetime: at(i / 3), RequestBody: []byte("{}")})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, limit := range []int{1, 3, 4, 9, 10, 11} {
			t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
				var got, gotICC []string
				var after, afterICC *Cursor
				for pages := 1; ; pages++ {
					n := 0
					next, err := s.PageOperationIDs(ctx, Page{After: after, Limit: limit}, func(id string) error {
						got = append(got, id)
						n++
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if n > limit || (next != nil && n != limit) {
						t.Fatalf("page %d: %d items, next %v", pages, n, next)
					}
					if next == nil {
						break
					}
					after = next
				}
				for {
					next, err := s.PageICCOperations(ctx, ICCFilter{TenantID: "t"}, Page{After: afterICC, Limit: limit}, func(op ICCOperation) error {
						gotICC = append(gotICC, op.ID)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if next == nil {
						break
					}
					afterICC = next
				}
				assertEqual(t, "ids", got, want)
				wantICC := slices.Clone(want)
				for i := range wantICC {
					wantICC[i] = fmt.Sprintf("icc-%02d", i)
				}
				assertEqual(t, "icc ids", gotICC, wantICC)
				if limit >= 10 && after != nil {
					t.Errorf("limit %d: a second page", limit)
				}
			})
		}
		t.Run("limit out of range", func(t *testing.T) {
			if _, err := s.PageOperationIDs(ctx, Page{Limit: MaxPageLimit + 1}, func(string) error { return nil }); err == nil {
				t.Error("no error")
			}
		})
	})
}

func TestStore_deleteAndFinished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		mustPutOperation(t, s, newOperation("running"))
		done := newOperation("done")
		done.Status = "failed"
		mustPutOperation(t, s, done)
		icc := ICCOperation{ID: "icc-run", TenantID: "t", ConnectionID: "c", OrderType: "Create", Phase: "prepare_connection",
			OperationStatus: "processing", ReceptionDatetime: at(0), RequestBody: []byte("{}")}
		if _, _, err := s.PutICCOperation(ctx, icc); err != nil {
			t.Fatal(err)
		}
		doneMSF, doneICC, err := s.Finished(ctx, []string{"running", "done", "unknown"}, []string{"icc-run", "icc-unknown"})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(doneMSF)
		assertEqual(t, "finished msf", doneMSF, []string{"done", "unknown"})
		assertEqual(t, "finished icc", doneICC, []string{"icc-unknown"})

		if err := s.DeleteOperation(ctx, "running"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteOperation(ctx, "running"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if err := s.DeleteICCOperation(ctx, "icc-run"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteICCOperation(ctx, "icc-run"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second icc delete: %v", err)
		}
		if got := mustListICCOperations(t, s, ICCFilter{TenantID: "t", Latest: true}); len(got) != 0 {
			t.Fatalf("latest after delete: %v", got)
		}
	})
}

func TestStore_Purge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var mu sync.Mutex
		now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		s := mustOpen(t, b, Options{Now: clock})
		ctx := context.Background()
		put := func(id, status string, last int) {
			op := newOperation(id)
			op.Status, op.LastUpdateTime = status, at(last)
			if status == "executing" {
				op.Response = nil
			}
			mustPutOperation(t, s, op)
		}
		putICC := func(id, conn, status string, reception int) {
			_, _, err := s.PutICCOperation(ctx, ICCOperation{ID: id, TenantID: "t", ConnectionID: conn, OrderType: "Create",
				Phase: "prepare_connection", OperationStatus: status, ReceptionDatetime: at(reception), RequestBody: []byte("{}")})
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := range 7 {
			put(fmt.Sprintf("old-%d", i), "completed", 0)
			putICC(fmt.Sprintf("icc-old-%d", i), "c1", "complete", i)
		}
		put("running", "executing", 0)
		putICC("icc-running", "c2", "processing", 0)
		advance(time.Hour)
		// Terminal an hour later: younger.
		put("running", "completed", 1)
		putICC("icc-young", "c1", "complete", 100)
		// The same terminal notification again keeps its first time.
		advance(30 * time.Minute)
		put("old-0", "completed", 2)

		p, err := s.Purge(ctx, 45*time.Minute, 2)
		if err != nil {
			t.Fatal(err)
		}
		if p.MSF != 7 || p.ICC != 7 {
			t.Fatalf("purged %+v, want 7 and 7", p)
		}
		assertEqual(t, "msf left", mustListOperationIDs(t, s), []string{"running"})
		assertEqual(t, "icc left", iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: "t"})), []string{"icc-running", "icc-young"})
		assertEqual(t, "latest", iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: "t", Latest: true})), []string{"icc-running", "icc-young"})
		if p, err := s.Purge(ctx, 45*time.Minute, 2); err != nil || p.MSF+p.ICC != 0 {
			t.Fatalf("second purge: %+v, %v", p, err)
		}
		advance(time.Hour)
		if p, err := s.Purge(ctx, 45*time.Minute, 0); err != nil || p.MSF != 1 || p.ICC != 1 {
			t.Fatalf("third purge: %+v, %v", p, err)
		}
	})
}

// TestStore_terminalEventsOutliveTheirOperation: an operation deleted, or
// purged by retention, before its terminal event was sent still has its
// event delivered, with the operation in it. (On MySQL such an event is
// written without its payload, made from the operation when it is claimed:
// retention waits for it, and DELETE writes the payload first.)
func TestStore_terminalEventsOutliveTheirOperation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		var mu sync.Mutex
		now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		encode := func(ev Event) ([]byte, error) {
			return []byte(ev.Type + " " + ev.Operation.ID + " " + ev.Operation.Status + " " + ev.Time.Format(time.RFC3339)), nil
		}
		s := mustOpen(t, b, Options{Now: clock, EncodeEvent: encode})
		ctx := context.Background()
		mustSubscribe(t, s, SubscriptionFilter{}, EventOperationTerminal)
		mustPutOperation(t, s, msfOp("written", "completed", 1))
		mustPutOperation(t, s, msfOp("deleted", "failed", 1))
		drainTerminalEvents(t, s)
		// Not converted yet (MySQL: still marked event_due) when deleted.
		mustPutOperation(t, s, msfOp("deleted-due", "canceled", 1))

		mu.Lock()
		now = now.Add(2 * time.Hour)
		mu.Unlock()
		for _, id := range []string{"deleted", "deleted-due"} {
			if err := s.DeleteOperation(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Purge(ctx, time.Hour, 0); err != nil {
			t.Fatal(err)
		}
		drainTerminalEvents(t, s)

		ds, err := s.ClaimDeliveries(ctx, time.Now().Add(time.Second), time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		fs := make([]Finished, len(ds))
		for i, d := range ds {
			got = append(got, string(d.Payload))
			fs[i] = Finished{d, Attempt{At: now, State: DeliveryDelivered, NextAt: now, Status: 204, Counted: true}}
		}
		slices.Sort(got)
		assertEqual(t, "payloads", got, []string{
			"operation.terminal deleted failed 2026-11-30T00:00:00Z",
			"operation.terminal deleted-due canceled 2026-11-30T00:00:00Z",
			"operation.terminal written completed 2026-11-30T00:00:00Z",
		})
		if n, err := s.FinishDeliveries(ctx, fs); err != nil || n != len(fs) {
			t.Fatalf("FinishDeliveries = %d, %v", n, err)
		}
		// Delivered: nothing holds the operation any more.
		if _, err := s.Purge(ctx, time.Hour, 0); err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "operations left", mustListOperationIDs(t, s), []string{})
	})
}
