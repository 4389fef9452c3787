package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"example.com/opsvc/server"
	"example.com/opsvc/store"
)

// lateStore is the store of a service that started before its database
// answered: until the database is open every call fails with
// store.ErrUnavailable, so the service is alive (/healthz), not ready
// (/readyz 503), and answers 503 in each family's format.
type lateStore struct {
	st atomic.Pointer[store.Store]
	// register, when set, gets the pool's statistics once the store is open.
	register prometheus.Registerer
}

var _ server.Store = (*lateStore)(nil)

var errNotOpen = fmt.Errorf("%w: not reached since start-up", store.ErrUnavailable)

// set hands over the opened store.
func (l *lateStore) set(st *store.Store) {
	l.st.Store(st)
	if l.register != nil {
		// go_sql_* with db_name="opsvc": open, in use and idle connections,
		// waits for one, and those closed for being idle or old.
		l.register.MustRegister(collectors.NewDBStatsCollector(st.DB(), "opsvc"))
	}
}

// close closes the store if it was opened.
func (l *lateStore) close() error {
	if st := l.st.Load(); st != nil {
		return st.Close()
	}
	return nil
}

func (l *lateStore) get() (*store.Store, error) {
	if st := l.st.Load(); st != nil {
		return st, nil
	}
	return nil, errNotOpen
}

func (l *lateStore) Ping(ctx context.Context) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

func (l *lateStore) PutOperation(ctx context.Context, op store.Operation) (bool, error) {
	st, err := l.get()
	if err != nil {
		return false, err
	}
	return st.PutOperation(ctx, op)
}

func (l *lateStore) GetOperation(ctx context.Context, id string) (store.Operation, error) {
	st, err := l.get()
	if err != nil {
		return store.Operation{}, err
	}
	return st.GetOperation(ctx, id)
}

func (l *lateStore) PageOperationIDs(ctx context.Context, p store.Page, fn func(id string) error) (*store.Cursor, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.PageOperationIDs(ctx, p, fn)
}

func (l *lateStore) PageOperations(ctx context.Context, p store.Page, fn func(store.Operation) error) (*store.Cursor, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.PageOperations(ctx, p, fn)
}

func (l *lateStore) DeleteOperation(ctx context.Context, id string) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.DeleteOperation(ctx, id)
}

func (l *lateStore) PutICCOperation(ctx context.Context, op store.ICCOperation) (store.ICCOperation, store.Write, error) {
	st, err := l.get()
	if err != nil {
		return store.ICCOperation{}, 0, err
	}
	return st.PutICCOperation(ctx, op)
}

func (l *lateStore) PageICCOperations(ctx context.Context, f store.ICCFilter, p store.Page, fn func(store.ICCOperation) error) (*store.Cursor, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.PageICCOperations(ctx, f, p, fn)
}

func (l *lateStore) DeleteICCOperation(ctx context.Context, id string) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.DeleteICCOperation(ctx, id)
}

func (l *lateStore) Finished(ctx context.Context, msf, icc []string) ([]string, []string, error) {
	st, err := l.get()
	if err != nil {
		return nil, nil, err
	}
	return st.Finished(ctx, msf, icc)
}

// Waits between attempts to reach the database at start-up: growing, jittered
// (instances started together don't knock in step), at most maxOpenWait.
const (
	firstOpenWait = 250 * time.Millisecond
	maxOpenWait   = 10 * time.Second
)

// keepOpening tries again to open the database, which failed with err,
// until it answers or deadline passes, logging each failure. An error other
// than store.ErrUnavailable (a refused password, a failed migration) ends it
// at once, and so does ctx.
func keepOpening(ctx context.Context, url string, opts store.Options, deadline time.Time, err error, log *slog.Logger) (*store.Store, error) {
	wait := firstOpenWait
	for attempt := 2; ; attempt++ {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, err
		}
		wait = min(wait, left)
		log.Warn("database unreachable: retrying", "attempt", attempt, "retry_in", wait.Round(time.Millisecond).String(), "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		var st *store.Store
		st, err = store.Open(ctx, url, opts)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			return nil, err
		}
		wait = min(2*wait, maxOpenWait)
		wait = wait/2 + rand.N(wait/2)
	}
}
