package server

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// MaxWait is the longest wait a request may ask for.
const MaxWait = 60 * time.Second

// DefaultWaitPoll is the default of Options.WaitPoll.
const DefaultWaitPoll = 300 * time.Millisecond

// retryAfter is the Retry-After of answers about operations not yet
// terminal, in seconds.
const retryAfter = "1"

// waitKey names an operation someone waits for: MSF and ICC ids are apart.
type waitKey struct {
	icc bool
	id  string
}

// waiters wakes requests waiting for operations to become terminal. A write
// through this instance wakes them at once (done); writes through other
// instances on the same database are found by one poller per process, which
// asks the database every poll interval, and only while someone waits,
// which of the awaited operations are done: one query per family however
// many wait, never one per waiter.
type waiters struct {
	store Store
	poll  time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	keys    map[waitKey]*waitEntry
	polling bool
	// stopped is closed by stop (the service is shutting down): every
	// waiter is answered at once, and new waits do not wait.
	stopped  chan struct{}
	stopOnce sync.Once
}

// waitEntry is the waiters of one operation: ch is closed to wake them all.
type waitEntry struct {
	ch chan struct{}
	n  int
}

func newWaiters(st Store, poll time.Duration, log *slog.Logger) *waiters {
	if poll <= 0 {
		poll = DefaultWaitPoll
	}
	return &waiters{store: st, poll: poll, log: log, keys: map[waitKey]*waitEntry{}, stopped: make(chan struct{})}
}

// watch registers a waiter for k and returns the channel closed when k may
// be done, and the function that unregisters it. Register first, then read
// the record: a write that lands in between still wakes the waiter.
func (w *waiters) watch(k waitKey) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.keys[k]
	if e == nil {
		e = &waitEntry{ch: make(chan struct{})}
		w.keys[k] = e
	}
	e.n++
	if !w.polling {
		w.polling = true
		go w.pollLoop()
	}
	return e.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		e.n--
		if e.n == 0 && w.keys[k] == e {
			delete(w.keys, k)
		}
	}
}

// done wakes the waiters of k: it is terminal, or gone.
func (w *waiters) done(k waitKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.keys[k]; e != nil {
		close(e.ch)
		delete(w.keys, k)
	}
}

// stop wakes every waiter and makes new waits return at once.
func (w *waiters) stop() { w.stopOnce.Do(func() { close(w.stopped) }) }

// pollLoop runs while anyone waits: every poll interval, one question to the
// database about every awaited operation.
func (w *waiters) pollLoop() {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-w.stopped:
			w.mu.Lock()
			w.polling = false
			w.mu.Unlock()
			return
		case <-t.C:
		}
		w.mu.Lock()
		if len(w.keys) == 0 {
			w.polling = false
			w.mu.Unlock()
			return
		}
		var msf, icc []string
		for k := range w.keys {
			if k.icc {
				icc = append(icc, k.id)
			} else {
				msf = append(msf, k.id)
			}
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), max(w.poll, time.Second))
		doneMSF, doneICC, err := w.store.Finished(ctx, msf, icc)
		cancel()
		if err != nil {
			// The waiters still end when their wait does.
			w.log.Warn("wait: polling the database", "error", err)
			continue
		}
		for _, id := range doneMSF {
			w.done(waitKey{id: id})
		}
		for _, id := range doneICC {
			w.done(waitKey{icc: true, id: id})
		}
	}
}

// await reads a record with read until terminal says it is terminal, the
// wait d ends, ctx ends or the service stops, and returns the last record
// read. A record that is gone ends the wait with read's error.
func await[T any](ctx context.Context, w *waiters, k waitKey, d time.Duration, read func(ctx context.Context) (T, error), terminal func(T) bool) (T, error) {
	if d <= 0 {
		return read(ctx)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		ch, unwatch := w.watch(k)
		rec, err := read(ctx)
		if err != nil || terminal(rec) {
			unwatch()
			return rec, err
		}
		select {
		case <-ch:
			unwatch()
			continue // read again
		case <-timer.C:
		case <-w.stopped:
		case <-ctx.Done():
			unwatch()
			var zero T
			return zero, ctx.Err()
		}
		unwatch()
		// The record as it is now: the wait may have ended just as it
		// changed.
		return read(context.WithoutCancel(ctx))
	}
}

// parseWait is the wait parameter as a duration, at most MaxWait.
func parseWait(p *string) (time.Duration, error) {
	if p == nil {
		return 0, nil
	}
	d, err := time.ParseDuration(*p)
	if err != nil || d < 0 {
		return 0, &FieldError{Field: "wait", Reason: "is not a duration such as 30s"}
	}
	if d > MaxWait {
		return 0, &FieldError{Field: "wait", Reason: "is longer than " + strconv.Itoa(int(MaxWait/time.Second)) + "s"}
	}
	return d, nil
}
