package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// newOperation returns a complete executing notification for id.
func newOperation(id string) Operation {
	return Operation{
		ID:             id,
		OccurredTime:   at(0),
		LastUpdateTime: at(10),
		Status:         "executing",
		Request: Request{
			URI:    "/v1/fabrics/" + id,
			Method: "POST",
			Body:   ptr(`{"fabric":"` + id + `"}`),
		},
	}
}

// withClusters returns op with n target clusters named prefix-0, prefix-1...
func withClusters(op Operation, prefix string, n int) Operation {
	op.TargetClusters = make([]Cluster, n)
	for i := range op.TargetClusters {
		op.TargetClusters[i] = Cluster{
			ClusterID: fmt.Sprintf("%s-%d", prefix, i),
			Request:   Request{URI: "/v1/clusters/" + prefix, Method: "PUT", Body: ptr(fmt.Sprintf(`{"n":%d}`, i))},
			Response:  &Response{StatusCode: ptr(200 + i), Body: ptr(`{"ok":true}`)},
		}
	}
	return op
}

func mustPutOperation(tb testing.TB, s *Store, op Operation) {
	tb.Helper()
	if _, err := s.PutOperation(context.Background(), op); err != nil {
		tb.Fatalf("PutOperation(%q): %v", op.ID, err)
	}
}

func mustGetOperation(tb testing.TB, s *Store, id string) Operation {
	tb.Helper()
	op, err := s.GetOperation(context.Background(), id)
	if err != nil {
		tb.Fatalf("GetOperation(%q): %v", id, err)
	}
	return op
}

func mustListOperationIDs(tb testing.TB, s *Store) []string {
	tb.Helper()
	ids := []string{}
	err := s.ListOperationIDs(context.Background(), func(id string) error {
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		tb.Fatalf("ListOperationIDs: %v", err)
	}
	return ids
}

func mustListOperations(tb testing.TB, s *Store) []Operation {
	tb.Helper()
	ops := []Operation{}
	err := s.ListOperations(context.Background(), func(op Operation) error {
		ops = append(ops, op)
		return nil
	})
	if err != nil {
		tb.Fatalf("ListOperations: %v", err)
	}
	return ops
}

// withoutBodies is op as ListOperations returns it.
func withoutBodies(op Operation) Operation {
	op.Request.Body = nil
	if op.Response != nil {
		op.Response = &Response{StatusCode: op.Response.StatusCode}
	}
	op.TargetClusters = clustersWithoutBodies(op.TargetClusters)
	if op.Rollbacks != nil {
		rb := *op.Rollbacks
		rb.TargetClusters = clustersWithoutBodies(rb.TargetClusters)
		op.Rollbacks = &rb
	}
	return op
}

func clustersWithoutBodies(cs []Cluster) []Cluster {
	if cs == nil {
		return nil
	}
	out := make([]Cluster, len(cs))
	for i, c := range cs {
		c.Request.Body = nil
		if c.Response != nil {
			c.Response = &Response{StatusCode: c.Response.StatusCode}
		}
		out[i] = c
	}
	return out
}

func TestCheckTransition(t *testing.T) {
	t.Parallel()
	op := func(status string, lastUpdate int) Operation {
		return Operation{Status: status, LastUpdateTime: at(lastUpdate)}
	}
	tests := []struct {
		name      string
		old, next Operation
		field     string // of the *ConflictError; "" when accepted
	}{
		{"later time and higher status", op("unexecuted", 0), op("executing", 1), ""},
		{"later time and same status", op("executing", 0), op("executing", 1), ""},
		{"equal time and same status (repeat)", op("executing", 5), op("executing", 5), ""},
		{"equal time and higher status", op("executing", 5), op("completed", 5), ""},
		{"skipping executing", op("unexecuted", 0), op("failed", 1), ""},
		{"terminal re-sent with the same status", op("completed", 5), op("completed", 6), ""},
		{"older last_update_time is refused", op("executing", 5), op("executing", 4), "last_update_time"},
		{"older time with a higher status is refused", op("unexecuted", 5), op("completed", 4), "last_update_time"},
		{"lower status is refused even later", op("executing", 5), op("unexecuted", 9), "status"},
		{"completed to executing is refused", op("completed", 5), op("executing", 9), "status"},
		{"completed to failed is refused", op("completed", 5), op("failed", 9), "status"},
		{"failed to canceled is refused", op("failed", 5), op("canceled", 9), "status"},
		{"canceled to completed is refused", op("canceled", 5), op("completed", 9), "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkTransition(tt.old, tt.next)
			var conflict *ConflictError
			if tt.field == "" && err != nil ||
				tt.field != "" && !(errors.As(err, &conflict) && conflict.Field == tt.field && errors.Is(err, ErrConflict)) {
				t.Errorf("checkTransition(%s@%s, %s@%s) = %v, want a conflict on %q",
					tt.old.Status, tt.old.LastUpdateTime.Format(time.TimeOnly),
					tt.next.Status, tt.next.LastUpdateTime.Format(time.TimeOnly), err, tt.field)
			}
		})
	}
}

func TestStore_PutOperation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()

		// stored, when set, is put first; then next is put.
		tests := []struct {
			name     string
			stored   func(id string) Operation
			next     func(id string) Operation
			conflict bool
		}{
			{
				name: "new id is created",
				next: func(id string) Operation { return withClusters(newOperation(id), "c", 2) },
			},
			{
				name:   "later last_update_time replaces the whole record",
				stored: func(id string) Operation { return withClusters(newOperation(id), "old", 3) },
				next: func(id string) Operation {
					op := withClusters(newOperation(id), "new", 1)
					op.LastUpdateTime = at(20)
					op.Status = "completed"
					op.SubStatus = ptr("done")
					op.Response = &Response{StatusCode: ptr(201), Body: ptr(`{}`)}
					op.Request.Body = ptr(`{"v":2}`)
					return op
				},
			},
			{
				name:   "equal last_update_time with the same status replaces",
				stored: func(id string) Operation { return withClusters(newOperation(id), "old", 2) },
				next: func(id string) Operation {
					op := withClusters(newOperation(id), "new", 3)
					op.Request.URI = "/other"
					return op
				},
			},
			{
				name:   "replacing with no clusters drops the stored ones",
				stored: func(id string) Operation { return withClusters(newOperation(id), "old", 2) },
				next:   newOperation,
			},
			{
				name: "repeat of the stored notification is accepted",
				stored: func(id string) Operation {
					return withClusters(newOperation(id), "c", 2)
				},
				next: func(id string) Operation { return withClusters(newOperation(id), "c", 2) },
			},
			{
				name: "terminal status re-sent with new content replaces",
				stored: func(id string) Operation {
					op := newOperation(id)
					op.Status = "failed"
					op.Response = &Response{StatusCode: ptr(500), Body: ptr(`{"e":1}`)}
					return op
				},
				next: func(id string) Operation {
					op := newOperation(id)
					op.Status = "failed"
					op.LastUpdateTime = at(30)
					op.Response = &Response{StatusCode: ptr(503), Body: ptr(`{"e":2}`)}
					return op
				},
			},
			{
				name:   "older last_update_time is refused",
				stored: func(id string) Operation { return withClusters(newOperation(id), "old", 2) },
				next: func(id string) Operation {
					op := withClusters(newOperation(id), "new", 1)
					op.LastUpdateTime = at(9)
					return op
				},
				conflict: true,
			},
			{
				name: "lower status is refused whatever its time",
				stored: func(id string) Operation {
					return withClusters(newOperation(id), "old", 2)
				},
				next: func(id string) Operation {
					op := newOperation(id)
					op.Status = "unexecuted"
					op.LastUpdateTime = at(99)
					return op
				},
				conflict: true,
			},
			{
				name: "terminal status to another terminal status is refused",
				stored: func(id string) Operation {
					op := newOperation(id)
					op.Status = "completed"
					op.Response = &Response{StatusCode: ptr(200), Body: ptr(`{}`)}
					return op
				},
				next: func(id string) Operation {
					op := newOperation(id)
					op.Status = "failed"
					op.LastUpdateTime = at(99)
					op.Response = &Response{StatusCode: ptr(500), Body: ptr(`{}`)}
					return op
				},
				conflict: true,
			},
			{
				name: "canceled to executing is refused",
				stored: func(id string) Operation {
					op := newOperation(id)
					op.Status = "canceled"
					return op
				},
				next: func(id string) Operation {
					op := newOperation(id)
					op.LastUpdateTime = at(99)
					return op
				},
				conflict: true,
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := fmt.Sprintf("put-%d", i)
				want := tt.next(id)
				if tt.stored != nil {
					mustPutOperation(t, s, tt.stored(id))
					if tt.conflict {
						want = tt.stored(id)
					}
				}
				_, err := s.PutOperation(ctx, tt.next(id))
				if tt.conflict {
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("PutOperation = %v, want ErrConflict", err)
					}
					var conflict *ConflictError
					if !errors.As(err, &conflict) || !strings.Contains(err.Error(), id) {
						t.Errorf("error %q is not a *ConflictError naming the id", err)
					}
				} else if err != nil {
					t.Fatalf("PutOperation = %v, want nil", err)
				}
				assertEqual(t, "stored operation", mustGetOperation(t, s, id), want)
			})
		}
	})
}

func TestStore_GetOperation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})

		t.Run("unknown id is ErrNotFound", func(t *testing.T) {
			_, err := s.GetOperation(context.Background(), "nobody")
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetOperation = %v, want ErrNotFound", err)
			}
		})

		t.Run("times are stored in UTC at second precision", func(t *testing.T) {
			tokyo := time.FixedZone("JST", 9*3600)
			op := newOperation("times")
			op.OccurredTime = time.Date(2026, 3, 15, 0, 9, 26, 999_999_999, tokyo)
			op.LastUpdateTime = time.Date(2026, 3, 15, 0, 9, 36, 500_000_000, tokyo)
			op.Rollbacks = &Rollbacks{Result: "none", OccurredTime: time.Date(2026, 3, 15, 0, 10, 0, 1, tokyo)}
			mustPutOperation(t, s, op)

			got := mustGetOperation(t, s, "times")
			for _, tm := range []struct {
				got, want time.Time
			}{
				{got.OccurredTime, at(0)},
				{got.LastUpdateTime, at(10)},
				{got.Rollbacks.OccurredTime, t0.Add(34 * time.Second)},
			} {
				if !tm.got.Equal(tm.want) || tm.got.Location() != time.UTC {
					t.Errorf("time = %v, want %v", tm.got, tm.want)
				}
			}
		})

		// Every optional field, absent, empty and present, comes back as sent.
		shapes := []struct {
			name   string
			modify func(op *Operation)
		}{
			{"every optional field absent", func(op *Operation) {}},
			{"request body absent", func(op *Operation) { op.Request.Body = nil }},
			{"request body empty", func(op *Operation) { op.Request.Body = ptr("") }},
			{"sub_status empty", func(op *Operation) { op.SubStatus = ptr("") }},
			{"sub_status present", func(op *Operation) { op.SubStatus = ptr("waiting for fabric") }},
			{"response without body", func(op *Operation) { op.Response = &Response{StatusCode: ptr(204)} }},
			{"response with empty body", func(op *Operation) { op.Response = &Response{StatusCode: ptr(200), Body: ptr("")} }},
			{"response with body", func(op *Operation) { op.Response = &Response{StatusCode: ptr(200), Body: ptr(`{"a":1}`)} }},
			{"response without status_code (the MSF controller's canceled)", func(op *Operation) {
				op.Status = "canceled"
				op.Response = &Response{Body: ptr("")}
			}},
			{"response empty", func(op *Operation) { op.Response = &Response{} }},
			{"reservation_time and start_time", func(op *Operation) {
				op.ReservationTime, op.StartTime = ptr(at(-5)), ptr(at(-1))
			}},
			{"clusters with {} and a status code alone", func(op *Operation) {
				op.TargetClusters = []Cluster{
					{ClusterID: "1", Request: Request{URI: "/a", Method: "POST", Body: ptr("{}")}, Response: &Response{}},
					{ClusterID: "2", Request: Request{URI: "/a", Method: "POST", Body: ptr("{}")}, Response: &Response{StatusCode: ptr(202)}},
				}
				op.Rollbacks = &Rollbacks{Result: "completed", OccurredTime: at(5), TargetClusters: []Cluster{
					{ClusterID: "1", Request: Request{URI: "/r", Method: "DELETE"}, Response: &Response{}},
				}}
			}},
			{"target_clusters empty", func(op *Operation) { op.TargetClusters = []Cluster{} }},
			{"target_clusters with and without response and body", func(op *Operation) {
				op.TargetClusters = []Cluster{
					{ClusterID: "c0", Request: Request{URI: "/a", Method: "POST", Body: ptr("{}")}},
					{ClusterID: "c1", Request: Request{URI: "/b", Method: "DELETE"}, Response: &Response{StatusCode: ptr(404)}},
					{ClusterID: "c2", Request: Request{URI: "/c", Method: "PATCH", Body: ptr("")},
						Response: &Response{StatusCode: ptr(200), Body: ptr(`{"x":"y"}`)}},
				}
			}},
			{"rollbacks without target_clusters", func(op *Operation) {
				op.Rollbacks = &Rollbacks{Result: "none", OccurredTime: at(5)}
			}},
			{"rollbacks with empty target_clusters", func(op *Operation) {
				op.Rollbacks = &Rollbacks{Result: "failed", OccurredTime: at(5), TargetClusters: []Cluster{}}
			}},
			{"rollbacks and target_clusters both present", func(op *Operation) {
				*op = withClusters(*op, "t", 2)
				op.Rollbacks = &Rollbacks{Result: "completed", OccurredTime: at(5), TargetClusters: []Cluster{
					{ClusterID: "t-1", Request: Request{URI: "/r", Method: "DELETE"}},
					{ClusterID: "t-0", Request: Request{URI: "/r", Method: "DELETE", Body: ptr("{}")},
						Response: &Response{StatusCode: ptr(202), Body: ptr("")}},
				}}
			}},
			{"target_clusters empty and rollbacks with clusters", func(op *Operation) {
				op.TargetClusters = []Cluster{}
				op.Rollbacks = &Rollbacks{Result: "completed", OccurredTime: at(5), TargetClusters: []Cluster{
					{ClusterID: "r0", Request: Request{URI: "/r", Method: "PUT"}},
				}}
			}},
		}
		for i, tt := range shapes {
			t.Run(tt.name+" round-trips", func(t *testing.T) {
				op := newOperation(fmt.Sprintf("shape-%d", i))
				tt.modify(&op)
				mustPutOperation(t, s, op)
				assertEqual(t, "GetOperation", mustGetOperation(t, s, op.ID), op)

				var listed *Operation
				err := s.ListOperations(context.Background(), func(got Operation) error {
					if got.ID == op.ID {
						listed = &got
					}
					return nil
				})
				if err != nil || listed == nil {
					t.Fatalf("ListOperations: %v, found %v", err, listed != nil)
				}
				assertEqual(t, "ListOperations item", *listed, withoutBodies(op))
			})
		}
	})
}

// bodyText is a body that JSON and SQL escaping could get wrong.
const bodyText = `{"name":"接続テスト 😀🚀","price":"¥1,000","path":"C:\\Program Files\\x","quote":"say \"hi\"","nul":"\u0000","tab":"\t"}` + "\n"

func TestStore_PutOperationBodies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})

		tests := []struct {
			name string
			body string
		}{
			{"mixed text body", bodyText},
			{"1 MiB+ body", strings.Repeat(bodyText, 1<<20/len(bodyText)+1)},
			{"4 MiB body of 4-byte characters", strings.Repeat("😀", 1<<20)},
		}
		for i, tt := range tests {
			t.Run(tt.name+" round-trips byte for byte", func(t *testing.T) {
				op := withClusters(newOperation(fmt.Sprintf("body-%d", i)), "c", 1)
				op.Request.Body = &tt.body
				op.Response = &Response{StatusCode: ptr(200), Body: ptr("resp:" + bodyText)}
				op.TargetClusters[0].Request.Body = ptr("cluster:" + bodyText)
				mustPutOperation(t, s, op)

				got := mustGetOperation(t, s, op.ID)
				if got.Request.Body == nil || *got.Request.Body != tt.body {
					t.Fatalf("request body: got %d bytes, want %d bytes, equal %v",
						len(deref(got.Request.Body)), len(tt.body), deref(got.Request.Body) == tt.body)
				}
				assertEqual(t, "operation", got, op)
			})
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestStore_ListOperationIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{BatchSize: 2})
		ctx := context.Background()

		if got := mustListOperationIDs(t, s); len(got) != 0 {
			t.Fatalf("empty store lists %v", got)
		}

		// Put in an order that is neither the time nor the id order.
		puts := []struct {
			id       string
			occurred int
		}{
			{"b", 5}, {"late", 100}, {"a", 5}, {"op1", 5}, {"B", 5}, {"Op1", 5},
			{"a~b", 5}, {"a-b", 5}, {"a_b", 5}, {"a.b", 5}, {"9", 5}, {"early", 1},
		}
		for _, p := range puts {
			op := newOperation(p.id)
			op.OccurredTime = at(p.occurred)
			mustPutOperation(t, s, op)
		}

		t.Run("ordered by occurred_time then id in byte order, across batches", func(t *testing.T) {
			want := []string{"early", "9", "B", "Op1", "a", "a-b", "a.b", "a_b", "a~b", "b", "op1", "late"}
			assertEqual(t, "ids", mustListOperationIDs(t, s), want)
		})

		t.Run("ids are case-sensitive", func(t *testing.T) {
			if got := mustGetOperation(t, s, "Op1"); got.ID != "Op1" {
				t.Errorf("GetOperation(Op1).ID = %q", got.ID)
			}
			if _, err := s.GetOperation(ctx, "OP1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetOperation(OP1) = %v, want ErrNotFound", err)
			}
		})

		t.Run("fn error stops the listing", func(t *testing.T) {
			stop := errors.New("client went away")
			calls := 0
			err := s.ListOperationIDs(ctx, func(string) error {
				calls++
				if calls == 3 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || calls != 3 {
				t.Errorf("ListOperationIDs = %v after %d calls, want fn's error after 3", err, calls)
			}
		})
	})
}

func TestStore_ListOperations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{BatchSize: 3})
		ctx := context.Background()

		var want []Operation
		for i := range 8 {
			op := withClusters(newOperation(fmt.Sprintf("list-%d", i)), fmt.Sprintf("c%d", i), i%3)
			op.OccurredTime = at(100 - i) // time order is the reverse of id order
			op.Response = &Response{StatusCode: ptr(200), Body: ptr(bodyText)}
			if i%2 == 0 {
				op.Rollbacks = &Rollbacks{Result: "completed", OccurredTime: at(200), TargetClusters: []Cluster{
					{ClusterID: "rb", Request: Request{URI: "/rb", Method: "DELETE", Body: ptr("{}")},
						Response: &Response{StatusCode: ptr(200), Body: ptr("{}")}},
				}}
			}
			mustPutOperation(t, s, op)
			want = append([]Operation{withoutBodies(op)}, want...)
		}

		t.Run("every operation in order, without any body, across batches", func(t *testing.T) {
			assertEqual(t, "operations", mustListOperations(t, s), want)
		})

		t.Run("fn error stops the listing", func(t *testing.T) {
			stop := errors.New("client went away")
			calls := 0
			err := s.ListOperations(ctx, func(Operation) error {
				calls++
				if calls == 4 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || calls != 4 {
				t.Errorf("ListOperations = %v after %d calls, want fn's error after 4", err, calls)
			}
		})

		t.Run("no connection is held while fn runs", func(t *testing.T) {
			// On SQLite's single connection, a listing that held it would
			// make this nested call wait until its deadline.
			err := s.ListOperations(ctx, func(op Operation) error {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if _, err := s.PutOperation(ctx, newOperation("nested-"+op.ID)); err != nil {
					return err
				}
				_, err := s.GetOperation(ctx, op.ID)
				return err
			})
			if err != nil {
				t.Fatalf("store call inside fn: %v", err)
			}
		})
	})
}

func TestStore_PutOperationConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		const writers = 24
		const id = "contended"

		// Most writers send the same time and status with their own
		// clusters and bodies, so they all replace each other and any mix
		// of two would show; the others go backwards and may be refused.
		inputs := make([]Operation, writers)
		for i := range inputs {
			op := withClusters(newOperation(id), fmt.Sprintf("w%d", i), 1+i%4)
			op.Request.Body = ptr(fmt.Sprintf(`{"writer":%d}`, i))
			op.Response = &Response{StatusCode: ptr(200 + i), Body: ptr(fmt.Sprintf(`{"writer":%d}`, i))}
			switch {
			case i%6 == 0:
				op.Status = "unexecuted"
			case i%4 == 1:
				op.LastUpdateTime = at(9)
			}
			if i%2 == 0 {
				op.Rollbacks = &Rollbacks{Result: "none", OccurredTime: at(i), TargetClusters: []Cluster{
					{ClusterID: fmt.Sprintf("rb%d", i), Request: Request{URI: "/rb", Method: "DELETE"}},
				}}
			}
			inputs[i] = op
		}

		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range inputs {
			wg.Go(func() {
				<-start
				_, errs[i] = s.PutOperation(ctx, inputs[i])
			})
		}
		close(start)
		wg.Wait()

		accepted := 0
		for i, err := range errs {
			switch {
			case err == nil:
				accepted++
			case !errors.Is(err, ErrConflict):
				t.Errorf("writer %d: PutOperation = %v, want nil or ErrConflict", i, err)
			}
		}
		if accepted == 0 {
			t.Fatal("no notification was accepted")
		}
		got := mustGetOperation(t, s, id)
		for i, op := range inputs {
			if errs[i] == nil && reflect.DeepEqual(got, op) {
				t.Logf("%d of %d accepted; the stored record is writer %d's", accepted, writers, i)
				return
			}
		}
		t.Errorf("stored record is none of the accepted notifications: %s", clippedJSON(got))
	})
}

func TestStore_PutOperationRollback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		before := withClusters(newOperation("rollback"), "before", 3)
		before.Rollbacks = &Rollbacks{Result: "none", OccurredTime: at(1), TargetClusters: []Cluster{}}
		mustPutOperation(t, s, before)

		t.Run("a cluster without an id is refused and changes nothing", func(t *testing.T) {
			next := withClusters(newOperation("rollback"), "after", 3)
			next.LastUpdateTime = at(50)
			next.Status = "completed"
			next.Response = &Response{StatusCode: ptr(200)}
			next.TargetClusters[2].ClusterID = ""
			_, err := s.PutOperation(context.Background(), next)
			if err == nil || errors.Is(err, ErrConflict) {
				t.Fatalf("PutOperation = %v, want an error", err)
			}
			assertEqual(t, "stored operation", mustGetOperation(t, s, "rollback"), before)
		})

		t.Run("a cancelled context changes nothing", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			next := withClusters(newOperation("rollback"), "after", 1)
			next.LastUpdateTime = at(60)
			if _, err := s.PutOperation(ctx, next); !errors.Is(err, context.Canceled) {
				t.Fatalf("PutOperation = %v, want context.Canceled", err)
			}
			assertEqual(t, "stored operation", mustGetOperation(t, s, "rollback"), before)
		})
	})
}

func BenchmarkStore_PutOperation(b *testing.B) {
	s := mustOpenDSN(b, newSQLiteDSN(b), Options{})
	ctx := context.Background()
	op := withClusters(newOperation("bench"), "c", 3)
	op.Request.Body = ptr(strings.Repeat(bodyText, 8))
	i := 0
	for b.Loop() {
		op.ID = fmt.Sprintf("bench-%d", i%100)
		op.LastUpdateTime = at(i)
		if _, err := s.PutOperation(ctx, op); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// A 4 MiB notification can hold tens of thousands of small clusters.
func TestStore_PutOperationManyClusters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		// Slow under the race detector, on SQLite in particular.
		s := mustOpen(t, b, Options{Timeout: time.Minute})
		n := 7500
		op := withClusters(newOperation("many"), "c", n)
		mustPutOperation(t, s, op)
		got := mustGetOperation(t, s, "many")
		if len(got.TargetClusters) != n || !reflect.DeepEqual(got.TargetClusters[n-1], op.TargetClusters[n-1]) {
			t.Fatalf("got %d clusters", len(got.TargetClusters))
		}
	})
}

func TestStore_PutOperation_repeat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		op := newOperation("again")
		completed := op
		completed.Status, completed.LastUpdateTime = "completed", at(20)
		otherBody := completed
		otherBody.Request.Body = ptr(`{"fabric":"other"}`)
		steps := []struct {
			name string
			op   Operation
			want bool
		}{
			{"a new operation is no repeat", op, false},
			{"the stored notification again is a repeat", op, true},
			{"a later one is no repeat", completed, false},
			{"the terminal one again is a repeat", completed, true},
			{"the same status and time with another body is no repeat", otherBody, false},
		}
		for _, st := range steps {
			repeat, err := s.PutOperation(ctx, st.op)
			if err != nil || repeat != st.want {
				t.Fatalf("%s: PutOperation = %v, %v; want repeat %v", st.name, repeat, err, st.want)
			}
		}
		assertEqual(t, "stored", mustGetOperation(t, s, "again"), otherBody)
	})
}
