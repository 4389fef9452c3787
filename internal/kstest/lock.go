package kstest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockWait bounds every wait for the lock. The longest legitimate wait is one test of
// another binary plus one restart of Keystone; a wait past this is a deadlock, and a
// failure that says so beats the test binary's timeout.
const lockWait = 5 * time.Minute

// pollEvery is how often a wait for a flock held by another process tries again.
const pollEvery = 10 * time.Millisecond

// Shared holds the Keystone lock shared until tb ends: any number of tests, in any
// number of processes, may hold it shared at once, and none while a test holds it
// exclusive. Env takes it already. A parallel test must take it after t.Parallel.
func Shared(tb testing.TB) {
	tb.Helper()
	start := time.Now()
	release, err := processLock(tb).shared(tb.Name(), lockWait)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	noteWait(tb, "shared", start)
}

// Exclusive holds the Keystone lock exclusive until tb ends: it waits until no other test
// holds it, in this process or any other. Tests that stop Keystone take it (through
// EnvExclusive) and must not call t.Parallel. Subtests of tb may take it shared or
// exclusive meanwhile; they share tb's hold.
func Exclusive(tb testing.TB) {
	tb.Helper()
	start := time.Now()
	release, err := processLock(tb).exclusive(tb.Name(), lockWait)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(release)
	noteWait(tb, "exclusive", start)
}

// mustHoldExclusive fails tb unless tb, or a test it runs under, holds the lock exclusive.
func mustHoldExclusive(tb testing.TB, what string) {
	tb.Helper()
	if !processLock(tb).heldExclusiveBy(tb.Name()) {
		tb.Fatalf("kstest.%s takes Keystone away from other tests: get the env from kstest.EnvExclusive", what)
	}
}

var (
	locksMu sync.Mutex
	locks   = map[string]*lock{}
)

// processLock returns this process's lock on the lock file for the Keystone tb tests
// against: DIR/tests.lock next to KEYSTONE_ENV_FILE, or a file in os.TempDir() when the
// variables come from the environment.
func processLock(tb testing.TB) *lock {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "opsvc-keystone-tests.lock")
	if f := os.Getenv("KEYSTONE_ENV_FILE"); f != "" {
		dir, err := filepath.Abs(filepath.Dir(f))
		if err != nil {
			tb.Fatalf("KEYSTONE_ENV_FILE: %v", err)
		}
		path = filepath.Join(dir, "tests.lock")
	}
	locksMu.Lock()
	defer locksMu.Unlock()
	if locks[path] == nil {
		locks[path] = newLock(path)
	}
	return locks[path]
}

// lock is a readers-writer lock across processes and across the tests of one process.
//
// Across processes it is flock(2) on path, with a second file, path+".gate", in front:
// flock grants a shared request whenever no exclusive lock is held, even while an
// exclusive request waits, so readers arriving one after another could starve a writer
// for as long as another binary runs tests. Every request first takes the gate
// exclusive; a writer keeps it while it waits, so later readers queue behind it.
//
// Within a process it is a count: the first reader takes the flock and the last one
// drops it. Two tests of one process must never each take their own flock: flock locks
// belong to open files, not processes, so a test asking for the exclusive lock on its own
// file would wait forever for a shared lock its own binary holds. Counting is also what
// lets a reader take the lock again while a writer waits (a test helper that calls Env in
// a test that already did): a new reader waits for a waiting writer only when no reader
// of this process holds the lock.
type lock struct {
	path, gate string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever a field below changes
	readers int           // holds of this process's tests that share the lock
	owner   string        // the name of the test that holds it exclusive, or ""
	writers int           // tests of this process waiting to hold it exclusive
	busy    bool          // a test of this process is taking the flock
	f       *os.File      // the flocked file, while a test of this process holds it
}

func newLock(path string) *lock {
	return &lock{path: path, gate: path + ".gate", changed: make(chan struct{})}
}

// shared waits until test may hold l shared, for at most wait, and returns the function
// that lets go.
func (l *lock) shared(test string, wait time.Duration) (release func(), err error) {
	deadline := time.Now().Add(wait)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		switch {
		case l.owner != "" && within(test, l.owner):
			return func() {}, nil
		case l.readers > 0:
			l.readers++
			return l.releaseShared(), nil
		case l.owner == "" && l.writers == 0 && !l.busy:
			f, err := l.flock(syscall.LOCK_SH, deadline)
			if err != nil {
				return nil, err
			}
			l.f, l.readers = f, 1
			return l.releaseShared(), nil
		}
		if !l.await(deadline) {
			if l.owner != "" {
				return nil, fmt.Errorf("waited %s for shared use of Keystone: test %q of this binary holds it exclusive", wait, l.owner)
			}
			return nil, fmt.Errorf("waited %s for shared use of Keystone: a test of this binary waits for it, behind another test process", wait)
		}
	}
}

// exclusive waits until test may hold l exclusive, for at most wait, and returns the
// function that lets go.
func (l *lock) exclusive(test string, wait time.Duration) (release func(), err error) {
	deadline := time.Now().Add(wait)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owner != "" && within(test, l.owner) {
		return func() {}, nil
	}
	l.writers++
	defer func() { l.writers--; l.broadcast() }()
	for l.readers > 0 || l.owner != "" || l.busy {
		if !l.await(deadline) {
			if l.readers > 0 {
				return nil, fmt.Errorf("waited %s for exclusive use of Keystone: %d tests of this binary still share it "+
					"(a parallel test that called kstest.Env before t.Parallel holds it while it waits to run, "+
					"and so does a test that called kstest.Env before a subtest asked for EnvExclusive)", wait, l.readers)
			}
			return nil, fmt.Errorf("waited %s for exclusive use of Keystone: test %q of this binary holds it", wait, l.owner)
		}
	}
	f, err := l.flock(syscall.LOCK_EX, deadline)
	if err != nil {
		return nil, err
	}
	l.f, l.owner = f, test
	return sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.unflock()
		l.owner = ""
		l.broadcast()
	}), nil
}

// heldExclusiveBy says whether test, or a test it runs under, holds l exclusive.
func (l *lock) heldExclusiveBy(test string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner != "" && within(test, l.owner)
}

func (l *lock) releaseShared() func() {
	return sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.readers--; l.readers == 0 {
			l.unflock()
		}
		l.broadcast()
	})
}

// flock takes the gate, then the lock file in mode how (LOCK_SH or LOCK_EX), waiting
// until deadline for other processes to let go of them. It is called with l.mu held and
// releases it while it waits, marking l busy meanwhile.
func (l *lock) flock(how int, deadline time.Time) (*os.File, error) {
	l.busy = true
	l.mu.Unlock()
	f, err := l.flockFiles(how, deadline)
	l.mu.Lock()
	l.busy = false
	l.broadcast()
	return f, err
}

func (l *lock) flockFiles(how int, deadline time.Time) (*os.File, error) {
	// os.OpenFile sets O_CLOEXEC: a Keystone that scripts/keystone.sh starts from a test
	// must not inherit, and so hold, the lock.
	gate, err := os.OpenFile(l.gate, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer gate.Close() // which lets go of the gate
	if err := pollFlock(gate, syscall.LOCK_EX, deadline); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", l.gate, err)
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pollFlock(f, how, deadline); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock file %s: %w", l.path, err)
	}
	return f, nil
}

// unflock lets go of the flock. It is called with l.mu held.
func (l *lock) unflock() {
	if l.f != nil {
		l.f.Close() // which drops the flock
		l.f = nil
	}
}

// await waits, with l.mu released, until a field of l changes or deadline passes, and
// says whether it was the former.
func (l *lock) await(deadline time.Time) bool {
	ch := l.changed
	l.mu.Unlock()
	defer l.mu.Lock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// broadcast wakes every await. It is called with l.mu held.
func (l *lock) broadcast() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// pollFlock takes a flock on f without blocking in the kernel, trying again until
// deadline: a blocked flock(2) can't be given up on.
func pollFlock(f *os.File, how int, deadline time.Time) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR):
			return err
		case time.Now().After(deadline):
			return errors.New("another test process held it until the deadline")
		}
		time.Sleep(pollEvery)
	}
}

// within says whether test is parent or one of its subtests.
func within(test, parent string) bool {
	return test == parent || strings.HasPrefix(test, parent+"/")
}

// noteWait logs how long taking the lock took, when that was long enough to notice.
func noteWait(tb testing.TB, mode string, start time.Time) {
	tb.Helper()
	if d := time.Since(start); d >= 100*time.Millisecond {
		tb.Logf("kstest: waited %s for %s use of Keystone", d.Round(10*time.Millisecond), mode)
	}
}
