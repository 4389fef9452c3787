package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Connection ids of the ICC tests.
const (
	connA = "0a0a0a0a-0000-4000-8000-00000000000a"
	connB = "0b0b0b0b-0000-4000-8000-00000000000b"
	connC = "0c0c0c0c-0000-4000-8000-00000000000c"
)

// newICCOperation returns a processing Create operation of tenant on conn.
func newICCOperation(id, tenant, conn string) ICCOperation {
	return ICCOperation{
		ID:                id,
		ConnectionID:      conn,
		TenantID:          tenant,
		OrderType:         "Create",
		Phase:             "prepare_connection",
		OperationStatus:   "processing",
		ReceptionDatetime: at(0),
		RequestBody:       []byte(`{"connection":{"name":"` + id + `"}}`),
		ResourceType:      DefaultResourceType,
	}
}

// committed returns op in status with a commit time.
func committed(op ICCOperation, status string, commit int) ICCOperation {
	op.OperationStatus = status
	op.CommitDatetime = ptr(at(commit))
	return op
}

func mustPutICCOperation(tb testing.TB, s *Store, op ICCOperation) (created bool) {
	tb.Helper()
	stored, w, err := s.PutICCOperation(context.Background(), op)
	if err != nil {
		tb.Fatalf("PutICCOperation(%q): %v", op.ID, err)
	}
	assertEqual(tb, "returned record", stored, op)
	return w == Created
}

func mustListICCOperations(tb testing.TB, s *Store, f ICCFilter) []ICCOperation {
	tb.Helper()
	ops := []ICCOperation{}
	err := s.ListICCOperations(context.Background(), f, func(op ICCOperation) error {
		ops = append(ops, op)
		return nil
	})
	if err != nil {
		tb.Fatalf("ListICCOperations(%+v): %v", f, err)
	}
	return ops
}

func iccIDs(ops []ICCOperation) []string {
	ids := []string{}
	for _, op := range ops {
		ids = append(ids, op.ID)
	}
	return ids
}

func TestCheckICCTransition(t *testing.T) {
	t.Parallel()
	tests := []struct {
		old, next string
		conflict  bool
	}{
		{"processing", "processing", false},
		{"processing", "complete", false},
		{"processing", "error", false},
		{"complete", "complete", false},
		{"error", "error", false},
		{"complete", "processing", true},
		{"error", "processing", true},
		{"complete", "error", true},
		{"error", "complete", true},
	}
	for _, tt := range tests {
		t.Run(tt.old+" to "+tt.next, func(t *testing.T) {
			err := checkICCTransition(tt.old, tt.next)
			var conflict *ConflictError
			got := errors.As(err, &conflict) && conflict.Field == "operation_status" && errors.Is(err, ErrConflict)
			if got != tt.conflict || (err != nil && !got) {
				t.Errorf("checkICCTransition(%s, %s) = %v, want conflict %v", tt.old, tt.next, err, tt.conflict)
			}
		})
	}
}

func TestStore_PutICCOperation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()

		// Each case uses a tenant of its own, so its list holds only its id.
		tests := []struct {
			name     string
			stored   func(op ICCOperation) ICCOperation // nil: nothing stored first
			next     func(op ICCOperation) ICCOperation
			conflict bool
		}{
			{
				name: "new id is created",
				next: func(op ICCOperation) ICCOperation { return op },
			},
			{
				name:   "processing replaced by processing",
				stored: func(op ICCOperation) ICCOperation { return op },
				next: func(op ICCOperation) ICCOperation {
					op.RequestBody = []byte(`{"v":2}`)
					op.ReceptionDatetime = at(5)
					return op
				},
			},
			{
				name:   "processing to complete replaces",
				stored: func(op ICCOperation) ICCOperation { return op },
				next:   func(op ICCOperation) ICCOperation { return committed(op, "complete", 9) },
			},
			{
				name:   "processing to error replaces",
				stored: func(op ICCOperation) ICCOperation { return op },
				next:   func(op ICCOperation) ICCOperation { return committed(op, "error", 9) },
			},
			{
				name:   "complete to complete with new content replaces",
				stored: func(op ICCOperation) ICCOperation { return committed(op, "complete", 9) },
				next: func(op ICCOperation) ICCOperation {
					op = committed(op, "complete", 12)
					op.Phase = "approve_connection"
					op.RequestBody = []byte(`{"v":3}`)
					return op
				},
			},
			{
				name:     "complete to processing is refused",
				stored:   func(op ICCOperation) ICCOperation { return committed(op, "complete", 9) },
				next:     func(op ICCOperation) ICCOperation { return op },
				conflict: true,
			},
			{
				name:     "error to processing is refused",
				stored:   func(op ICCOperation) ICCOperation { return committed(op, "error", 9) },
				next:     func(op ICCOperation) ICCOperation { return op },
				conflict: true,
			},
			{
				name:     "complete to error is refused",
				stored:   func(op ICCOperation) ICCOperation { return committed(op, "complete", 9) },
				next:     func(op ICCOperation) ICCOperation { return committed(op, "error", 10) },
				conflict: true,
			},
			{
				name:     "error to complete is refused",
				stored:   func(op ICCOperation) ICCOperation { return committed(op, "error", 9) },
				next:     func(op ICCOperation) ICCOperation { return committed(op, "complete", 10) },
				conflict: true,
			},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tenant := fmt.Sprintf("put-tenant-%d", i)
				base := newICCOperation(fmt.Sprintf("icc-put-%d", i), tenant, connA)
				next := tt.next(base)
				want := next
				if tt.stored != nil {
					if created := mustPutICCOperation(t, s, tt.stored(base)); !created {
						t.Fatal("first put: created = false")
					}
					if tt.conflict {
						want = tt.stored(base)
					}
				}
				stored, w, err := s.PutICCOperation(ctx, next)
				created := w == Created
				switch {
				case tt.conflict:
					if !errors.Is(err, ErrConflict) {
						t.Fatalf("PutICCOperation = %v, want ErrConflict", err)
					}
				case err != nil:
					t.Fatalf("PutICCOperation = %v", err)
				default:
					if created != (tt.stored == nil) {
						t.Errorf("created = %v, want %v", created, tt.stored == nil)
					}
					assertEqual(t, "returned record", stored, next)
				}
				got := mustListICCOperations(t, s, ICCFilter{TenantID: tenant})
				assertEqual(t, "stored records", got, []ICCOperation{want})
			})
		}

		t.Run("fields round-trip exactly", func(t *testing.T) {
			tokyo := time.FixedZone("JST", 9*3600)
			body := `{"name":"接続 😀","price":"¥100","path":"C:\\dir\\","quote":"\"q\"","nested":{"a":[1,2.50,null]}}`
			op := newICCOperation("icc-fields", "tenant-fields", connB)
			op.ReceptionDatetime = time.Date(2026, 3, 15, 0, 9, 26, 900_000_000, tokyo)
			op.CommitDatetime = ptr(time.Date(2026, 3, 15, 0, 9, 30, 1, tokyo))
			op.OperationStatus = "complete"
			op.RequestBody = []byte(body)
			stored, _, err := s.PutICCOperation(ctx, op)
			if err != nil {
				t.Fatal(err)
			}
			want := op
			want.ReceptionDatetime = at(0)
			want.CommitDatetime = ptr(at(4))
			assertEqual(t, "returned record", stored, want)
			got := mustListICCOperations(t, s, ICCFilter{TenantID: "tenant-fields"})
			assertEqual(t, "listed records", got, []ICCOperation{want})
			if string(got[0].RequestBody) != body {
				t.Errorf("request_body = %s, want %s", got[0].RequestBody, body)
			}
		})

		t.Run("commit_datetime nil round-trips", func(t *testing.T) {
			op := newICCOperation("icc-nil-commit", "tenant-nil", connB)
			mustPutICCOperation(t, s, op)
			got := mustListICCOperations(t, s, ICCFilter{TenantID: "tenant-nil"})
			if len(got) != 1 || got[0].CommitDatetime != nil {
				t.Fatalf("got %s, want one record without commit_datetime", clippedJSON(got))
			}
		})

		t.Run("replacing keeps the order recorded", func(t *testing.T) {
			tenant := "tenant-order"
			for _, id := range []string{"r-first", "r-second", "r-third"} {
				mustPutICCOperation(t, s, newICCOperation(id, tenant, connA))
			}
			replaced := committed(newICCOperation("r-first", tenant, connA), "complete", 3)
			if created := mustPutICCOperation(t, s, replaced); created {
				t.Error("replace: created = true")
			}
			got := iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: tenant}))
			assertEqual(t, "ids", got, []string{"r-first", "r-second", "r-third"})
			latest := iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: tenant, Latest: true}))
			assertEqual(t, "latest", latest, []string{"r-third"})
		})

		t.Run("ids are case-sensitive", func(t *testing.T) {
			tenant := "tenant-case"
			if !mustPutICCOperation(t, s, newICCOperation("Case", tenant, connA)) ||
				!mustPutICCOperation(t, s, newICCOperation("case", tenant, connA)) {
				t.Error("Case and case are not two creations")
			}
		})
	})
}

// iccFixture is recorded in this order. Ids run against the order recorded,
// so that a tie broken by id instead of by recording would show.
var iccFixture = []ICCOperation{
	committed(withICC(newICCOperation("z1", "t1", connA), "Create", "prepare_connection", 0), "complete", 1),
	committed(withICC(newICCOperation("y2", "t1", connA), "Update", "update_connection", 10), "complete", 11),
	withICC(newICCOperation("x3", "t1", connB), "Create", "prepare_connection", 10),
	committed(withICC(newICCOperation("w4", "t2", connC), "Create", "prepare_connection", 5), "complete", 6),
	committed(withICC(newICCOperation("v5", "t1", connA), "Delete", "delete_connection", 20), "error", 21),
	withICC(newICCOperation("u6", "t2", connC), "Update", "update_connection", 20),
	withICC(newICCOperation("t7", "t1", connB), "Create", "approve_connection", 10),
}

func withICC(op ICCOperation, orderType, phase string, reception int) ICCOperation {
	op.OrderType, op.Phase, op.ReceptionDatetime = orderType, phase, at(reception)
	return op
}

func TestStore_ListICCOperations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{BatchSize: 2})
		ctx := context.Background()
		for _, op := range iccFixture {
			mustPutICCOperation(t, s, op)
		}
		// Replaced after t7 was recorded: x3 must stay before t7 in their tie.
		x3 := iccFixture[2]
		x3.RequestBody = []byte(`{"replaced":true}`)
		mustPutICCOperation(t, s, x3)

		tests := []struct {
			name   string
			filter ICCFilter
			want   []string
		}{
			{"a tenant sees only its operations, ties in the order recorded",
				ICCFilter{TenantID: "t1"}, []string{"z1", "y2", "x3", "t7", "v5"}},
			{"another tenant", ICCFilter{TenantID: "t2"}, []string{"w4", "u6"}},
			{"unknown tenant sees nothing", ICCFilter{TenantID: "t3"}, []string{}},
			{"tenant ids are case-sensitive", ICCFilter{TenantID: "T1"}, []string{}},
			{"all tenants", ICCFilter{AllTenants: true}, []string{"z1", "w4", "y2", "x3", "t7", "v5", "u6"}},
			{"all tenants ignores TenantID", ICCFilter{AllTenants: true, TenantID: "t2"},
				[]string{"z1", "w4", "y2", "x3", "t7", "v5", "u6"}},
			{"connection_id", ICCFilter{TenantID: "t1", ConnectionID: connA}, []string{"z1", "y2", "v5"}},
			{"connection_id of another tenant", ICCFilter{TenantID: "t2", ConnectionID: connA}, []string{}},
			{"order_type", ICCFilter{TenantID: "t1", OrderType: "Create"}, []string{"z1", "x3", "t7"}},
			{"phase", ICCFilter{TenantID: "t1", Phase: "prepare_connection"}, []string{"z1", "x3"}},
			{"operation_status", ICCFilter{TenantID: "t1", OperationStatus: "processing"}, []string{"x3", "t7"}},
			{"every filter combined",
				ICCFilter{TenantID: "t1", ConnectionID: connA, OrderType: "Update", Phase: "update_connection", OperationStatus: "complete"},
				[]string{"y2"}},
			{"all tenants with a filter", ICCFilter{AllTenants: true, OperationStatus: "processing"}, []string{"x3", "t7", "u6"}},
			{"all tenants by connection", ICCFilter{AllTenants: true, ConnectionID: connC}, []string{"w4", "u6"}},
			{"all tenants by phase", ICCFilter{AllTenants: true, Phase: "update_connection"}, []string{"y2", "u6"}},
			{"latest per connection, a tie going to the one recorded last",
				ICCFilter{TenantID: "t1", Latest: true}, []string{"t7", "v5"}},
			{"latest of all tenants", ICCFilter{AllTenants: true, Latest: true}, []string{"t7", "v5", "u6"}},
			{"latest among the matches of order_type",
				ICCFilter{TenantID: "t1", OrderType: "Create", Latest: true}, []string{"z1", "t7"}},
			{"latest among the matches of operation_status",
				ICCFilter{TenantID: "t1", OperationStatus: "complete", Latest: true}, []string{"y2"}},
			{"latest among the matches of phase and connection",
				ICCFilter{AllTenants: true, ConnectionID: connB, Phase: "prepare_connection", Latest: true}, []string{"x3"}},
			{"latest of all tenants by order_type",
				ICCFilter{AllTenants: true, OrderType: "Update", Latest: true}, []string{"y2", "u6"}},
			{"latest within one tenant", ICCFilter{TenantID: "t2", Latest: true}, []string{"u6"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := iccIDs(mustListICCOperations(t, s, tt.filter))
				assertEqual(t, "ids", got, tt.want)
			})
		}

		t.Run("records come back whole", func(t *testing.T) {
			want := map[string]ICCOperation{}
			for _, op := range iccFixture {
				want[op.ID] = op
			}
			want["x3"] = x3
			for _, got := range mustListICCOperations(t, s, ICCFilter{AllTenants: true}) {
				assertEqual(t, "record "+got.ID, got, want[got.ID])
			}
		})

		t.Run("a filter without tenant or AllTenants is refused", func(t *testing.T) {
			calls := 0
			err := s.ListICCOperations(ctx, ICCFilter{ConnectionID: connA}, func(ICCOperation) error {
				calls++
				return nil
			})
			if err == nil || calls != 0 {
				t.Errorf("ListICCOperations = %v after %d calls, want an error and no call", err, calls)
			}
		})

		t.Run("fn error stops the listing", func(t *testing.T) {
			stop := errors.New("client went away")
			calls := 0
			err := s.ListICCOperations(ctx, ICCFilter{AllTenants: true}, func(ICCOperation) error {
				calls++
				if calls == 3 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || calls != 3 {
				t.Errorf("ListICCOperations = %v after %d calls, want fn's error after 3", err, calls)
			}
		})

		t.Run("no connection is held while fn runs", func(t *testing.T) {
			err := s.ListICCOperations(ctx, ICCFilter{TenantID: "t2"}, func(op ICCOperation) error {
				ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_, _, err := s.PutICCOperation(ctx, newICCOperation("nested-"+op.ID, "t9", connA))
				return err
			})
			if err != nil {
				t.Fatalf("store call inside fn: %v", err)
			}
		})
	})
}

func TestStore_PutICCOperationConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		const writers = 24

		inputs := make([]ICCOperation, writers)
		for i := range inputs {
			op := newICCOperation("icc-contended", "tenant-race", connA)
			op.RequestBody = []byte(fmt.Sprintf(`{"writer":%d,"pad":%q}`, i, strings.Repeat("x", i*10)))
			op.ReceptionDatetime = at(i % 3)
			inputs[i] = op
		}
		type result struct {
			created bool
			err     error
		}
		results := make([]result, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range inputs {
			wg.Go(func() {
				<-start
				_, w, err := s.PutICCOperation(ctx, inputs[i])
				results[i] = result{w == Created, err}
			})
		}
		close(start)
		wg.Wait()

		created := 0
		for i, r := range results {
			if r.err != nil && !errors.Is(r.err, ErrConflict) {
				t.Errorf("writer %d: PutICCOperation = %v, want nil or ErrConflict", i, r.err)
			}
			if r.created {
				created++
			}
		}
		if created != 1 {
			t.Errorf("%d writers created the operation, want exactly 1", created)
		}
		got := mustListICCOperations(t, s, ICCFilter{TenantID: "tenant-race"})
		if len(got) != 1 {
			t.Fatalf("listed %d records, want 1", len(got))
		}
		for i, op := range inputs {
			if results[i].err == nil && reflect.DeepEqual(got[0], op) {
				return
			}
		}
		t.Errorf("stored record is none of the accepted ones: %s", clippedJSON(got[0]))
	})
}

// latestOf computes, from every stored operation, what a tenant's latest list
// must be: of each connection, the greatest reception time, then the one
// recorded last; in listing order.
func latestOf(all []ICCOperation, tenant, conn string) []string {
	best := map[string]int{} // connection -> index into all (listing order)
	var order []string
	for i, op := range all {
		if op.TenantID != tenant || (conn != "" && op.ConnectionID != conn) {
			continue
		}
		if _, ok := best[op.ConnectionID]; !ok {
			order = append(order, op.ConnectionID)
		}
		best[op.ConnectionID] = i // all is in listing order: the last one wins
	}
	idx := make([]int, 0, len(order))
	for _, c := range order {
		idx = append(idx, best[c])
	}
	slices.Sort(idx)
	ids := []string{}
	for _, i := range idx {
		ids = append(ids, all[i].ID)
	}
	return ids
}

func TestStore_ListICCOperationsLatestMarker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{BatchSize: 3})
		ctx := context.Background()
		tenants := []string{"lt-a", "lt-b"}
		conns := []string{connA, connB, connC}
		check := func(t *testing.T) {
			t.Helper()
			all := mustListICCOperations(t, s, ICCFilter{AllTenants: true})
			for _, tenant := range tenants {
				got := iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: tenant, Latest: true}))
				assertEqual(t, "latest of "+tenant, got, latestOf(all, tenant, ""))
				for _, c := range conns {
					got := iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: tenant, ConnectionID: c, Latest: true}))
					assertEqual(t, "latest of "+tenant+" "+c, got, latestOf(all, tenant, c))
				}
			}
		}

		t.Run("creates and replaces that move operations in time, connection and tenant", func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, 2))
			for i := range 120 {
				// Few ids, so that most writes replace, and few times, so
				// that receptions tie.
				op := newICCOperation(fmt.Sprintf("lt-%d", rnd.IntN(25)), tenants[rnd.IntN(2)], conns[rnd.IntN(3)])
				op.ReceptionDatetime = at(rnd.IntN(6))
				_, _, err := s.PutICCOperation(ctx, op)
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				if i%10 == 9 {
					check(t)
				}
			}
		})

		t.Run("concurrent writers of one connection", func(t *testing.T) {
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := range 5 {
						op := newICCOperation(fmt.Sprintf("ltc-%d-%d", w, i%3), "lt-a", connC)
						op.ReceptionDatetime = at(100 + (w*5+i)%7)
						if _, _, err := s.PutICCOperation(ctx, op); err != nil {
							t.Errorf("writer %d: %v", w, err)
						}
					}
				})
			}
			wg.Wait()
			check(t)
		})
	})
}

func TestStore_PutICCOperation_write(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		s := mustOpen(t, b, Options{})
		ctx := context.Background()
		op := newICCOperation("again", "tenant", connA)
		done := op
		done.OperationStatus, done.CommitDatetime = "complete", ptr(at(30))
		steps := []struct {
			name string
			op   ICCOperation
			want Write
		}{
			{"a new operation is created", op, Created},
			{"the stored one again is repeated", op, Repeated},
			{"a different one replaces it", done, Replaced},
			{"the terminal one again is repeated", done, Repeated},
		}
		for _, st := range steps {
			_, w, err := s.PutICCOperation(ctx, st.op)
			if err != nil || w != st.want {
				t.Fatalf("%s: PutICCOperation = %v, %v; want %v", st.name, w, err, st.want)
			}
		}
	})
}
