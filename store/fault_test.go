package store

import (
	"context"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"example.com/opsvc/internal/dbtest"
)

// The fault tests put a proxy between the store and the test MySQL server and
// make it hang, refuse, or cut a connection at COMMIT. They run on MySQL only:
// SQLite has no connection to lose.

// faultTimeout is Options.Timeout in the fault tests; faultBound is how long a
// failing call may take: twice the timeout (a COMMIT is bounded by the
// driver's read timeout, after the context's) and room for a busy machine.
const (
	faultTimeout = time.Second
	faultBound   = 2*faultTimeout + 3*time.Second
)

// mustProxiedStore opens a store on a new MySQL database through a proxy, and
// a second store on the same database directly, to look at what was stored.
func mustProxiedStore(t *testing.T) (s *Store, direct *Store, p *dbtest.Proxy) {
	t.Helper()
	b := mysqlBackend()
	if b.missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs the fault tests on MySQL, but %s", b.missing)
		}
		t.Skipf("skipping: the fault tests need MySQL: %s", b.missing)
	}
	dsn := b.newDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p = dbtest.NewProxy(t, u.Host)
	u.Host = p.Addr()
	s = mustOpenDSN(t, u.String(), Options{Timeout: faultTimeout})
	direct = mustOpenDSN(t, dsn, Options{})
	return s, direct, p
}

// timed runs fn and fails t if it takes longer than faultBound.
func timed(t *testing.T, what string, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d > faultBound {
		t.Errorf("%s took %s, want at most %s", what, d.Round(time.Millisecond), faultBound)
	}
	return err
}

func TestStore_frozenDatabase(t *testing.T) {
	t.Parallel()
	s, _, p := mustProxiedStore(t)
	ctx := context.Background()
	mustPutOperation(t, s, newOperation("before"))
	p.Set(dbtest.Hang)
	calls := map[string]func() error{
		"Ping":         func() error { return s.Ping(ctx) },
		"PutOperation": func() error { _, err := s.PutOperation(ctx, newOperation("frozen")); return err },
		"GetOperation": func() error { _, err := s.GetOperation(ctx, "before"); return err },
		"ListOperationIDs": func() error {
			return s.ListOperationIDs(ctx, func(string) error { return nil })
		},
		"ListOperations": func() error {
			return s.ListOperations(ctx, func(Operation) error { return nil })
		},
		"PutICCOperation": func() error {
			_, _, err := s.PutICCOperation(ctx, newICCOperation("frozen", "tenant", connA))
			return err
		},
		"ListICCOperations": func() error {
			return s.ListICCOperations(ctx, ICCFilter{AllTenants: true}, func(ICCOperation) error { return nil })
		},
	}
	for name, call := range calls {
		t.Run(name+" fails with ErrUnavailable in time", func(t *testing.T) {
			t.Parallel()
			err := timed(t, name, call)
			// An MSF write is one statement that commits on its own: sent
			// on a connection the frozen server never answers, it may yet be
			// applied when the server resumes. Nothing else can commit.
			mayBeUnknown := name == "PutOperation"
			if !errors.Is(err, ErrUnavailable) || (errors.Is(err, ErrOutcomeUnknown) && !mayBeUnknown) {
				t.Fatalf("%s on a frozen database = %v, want ErrUnavailable (and not ErrOutcomeUnknown)", name, err)
			}
		})
	}
	t.Cleanup(func() {
		// The parallel subtests are done: the database answers again.
		p.Set(dbtest.Pass)
		mustPutOperation(t, s, newOperation("after"))
	})
}

// A fault where a write commits: at COMMIT for ICC writes (a transaction),
// at the INSERT itself for a new MSF operation (one statement, which commits
// on its own). A connection lost after the statement went out leaves the
// outcome unknown; one lost before any write went out is a plain
// ErrUnavailable. An MSF write is a single statement, so any connection lost
// once it was sent leaves the outcome unknown.
func TestStore_commitFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const msfWrite = "INSERT INTO msf_operations"
	tests := []struct {
		name        string
		msf, icc    string // the statement that fails, per family
		fault       dbtest.Fault
		wantUnknown bool // ErrOutcomeUnknown rather than a plain ErrUnavailable
		wantStored  bool
	}{
		{"connection cut at the first statement: ICC rolled back, MSF unknown (not stored)", msfWrite, "SELECT", dbtest.CutBefore, false, false},
		// The store sent the write and lost the connection: it cannot tell
		// this case from the next.
		{"connection cut as the commit is sent: outcome unknown (rolled back)", msfWrite, "COMMIT", dbtest.CutBefore, true, false},
		{"connection cut after the commit was sent: outcome unknown (committed)", msfWrite, "COMMIT", dbtest.CutAfter, true, true},
		{"no answer to the commit: outcome unknown (committed), in time", msfWrite, "COMMIT", dbtest.HangAfter, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, direct, p := mustProxiedStore(t)
			t.Run("MSF", func(t *testing.T) {
				p.FailNext(tt.msf, tt.fault)
				err := timed(t, "PutOperation", func() error { _, err := s.PutOperation(ctx, newOperation("msf")); return err })
				checkCommitFault(t, err, true)
				// The client gave up on the connection at once; the server
				// may still be running the statement it received.
				stored := eventually(tt.wantStored, func() bool {
					_, err := direct.GetOperation(ctx, "msf")
					return err == nil
				})
				if stored != tt.wantStored {
					t.Errorf("stored = %v, want %v", stored, tt.wantStored)
				}
			})
			t.Run("ICC", func(t *testing.T) {
				p.FailNext(tt.icc, tt.fault)
				err := timed(t, "PutICCOperation", func() error {
					_, _, err := s.PutICCOperation(ctx, newICCOperation("icc", "tenant", connA))
					return err
				})
				checkCommitFault(t, err, tt.wantUnknown)
				stored := eventually(tt.wantStored, func() bool {
					n := 0
					_ = direct.ListICCOperations(ctx, ICCFilter{AllTenants: true}, func(ICCOperation) error { n++; return nil })
					return n == 1
				})
				if stored != tt.wantStored {
					t.Errorf("stored = %v, want %v", stored, tt.wantStored)
				}
			})
			// The store recovers: the broken connection is not reused.
			mustPutOperation(t, s, newOperation("next"))
		})
	}
}

// eventually is cond once it became want, within two seconds, or its last
// value.
func eventually(want bool, cond func() bool) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := cond()
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkCommitFault(t *testing.T, err error, wantUnknown bool) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if errors.Is(err, ErrOutcomeUnknown) != wantUnknown {
		t.Fatalf("err = %v, want ErrOutcomeUnknown %v", err, wantUnknown)
	}
}

func TestStore_databaseDown(t *testing.T) {
	t.Parallel()
	s, _, p := mustProxiedStore(t)
	ctx := context.Background()
	p.Set(dbtest.Refuse)
	err := timed(t, "PutOperation", func() error { _, err := s.PutOperation(ctx, newOperation("down")); return err })
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("PutOperation on a database that is down = %v, want ErrUnavailable only", err)
	}
	p.Set(dbtest.Pass)
	mustPutOperation(t, s, newOperation("up"))
}

func TestStore_callerCancels(t *testing.T) {
	t.Parallel()
	s, _, p := mustProxiedStore(t)
	p.Set(dbtest.Hang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := s.GetOperation(ctx, "x")
	// The caller gave up: that is not the database's fault.
	if errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetOperation with the caller's deadline = %v, want the caller's context error", err)
	}
	p.Set(dbtest.Pass)
}
