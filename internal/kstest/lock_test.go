package kstest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two *lock values on one file stand for two test processes: each opens the file itself,
// and flock(2) locks belong to open files, so they conflict exactly as two processes'
// would. One *lock used by several test names stands for the tests of one process.

// settle is how long a test lets a goroutine that should stay blocked run before it
// checks that it did.
const settle = 200 * time.Millisecond

// mustHold takes l in mode ("shared" or "exclusive") for test, failing within a second.
func mustHold(t *testing.T, l *lock, mode, test string) func() {
	t.Helper()
	release, err := take(l, mode, test, time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", mode, test, err)
	}
	return release
}

func take(l *lock, mode, test string, wait time.Duration) (func(), error) {
	if mode == "exclusive" {
		return l.exclusive(test, wait)
	}
	return l.shared(test, wait)
}

// holding takes l in a goroutine and sends the release function once it holds it.
func holding(t *testing.T, l *lock, mode, test string) <-chan func() {
	t.Helper()
	ch := make(chan func(), 1)
	go func() {
		release, err := take(l, mode, test, 10*time.Second)
		if err != nil {
			t.Errorf("%s %s: %v", mode, test, err)
			return
		}
		ch <- release
	}()
	return ch
}

func mustWait(t *testing.T, ch <-chan func(), what string) func() {
	t.Helper()
	select {
	case release := <-ch:
		return release
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s", what)
		return nil
	}
}

func mustStillWait(t *testing.T, ch <-chan func(), what string) {
	t.Helper()
	select {
	case release := <-ch:
		release()
		t.Fatalf("%s: got the lock, want it to wait", what)
	case <-time.After(settle):
	}
}

func lockPath(t *testing.T) string { return filepath.Join(t.TempDir(), "tests.lock") }

func TestLock_SharedHoldersCoexist(t *testing.T) {
	path := lockPath(t)
	a, b := newLock(path), newLock(path)
	r1 := mustHold(t, a, "shared", "TestA")
	r2 := mustHold(t, a, "shared", "TestB")
	r3 := mustHold(t, b, "shared", "TestC")
	r1()
	r3()
	r2()
	// All let go: an exclusive hold is free to take.
	mustHold(t, b, "exclusive", "TestD")()
}

func TestLock_ExclusiveWaitsForSharedHolders(t *testing.T) {
	t.Run("in another process", func(t *testing.T) {
		path := lockPath(t)
		a, b := newLock(path), newLock(path)
		r1 := mustHold(t, a, "shared", "TestA")
		r2 := mustHold(t, a, "shared", "TestB")
		ex := holding(t, b, "exclusive", "TestStop")
		mustStillWait(t, ex, "exclusive while two hold it shared")
		r1()
		mustStillWait(t, ex, "exclusive while one holds it shared")
		r2()
		mustWait(t, ex, "exclusive once the shared holders let go")()
	})
	t.Run("in the same process", func(t *testing.T) {
		l := newLock(lockPath(t))
		r1 := mustHold(t, l, "shared", "TestA")
		ex := holding(t, l, "exclusive", "TestStop")
		mustStillWait(t, ex, "exclusive while a test of its process holds it shared")
		r1()
		mustWait(t, ex, "exclusive once the shared holder lets go")()
	})
}

func TestLock_SharedWaitsForExclusive(t *testing.T) {
	path := lockPath(t)
	a, b := newLock(path), newLock(path)
	rx := mustHold(t, a, "exclusive", "TestStop")
	other := holding(t, b, "shared", "TestOther")
	same := holding(t, a, "shared", "TestSame")
	mustStillWait(t, other, "shared in another process while one holds it exclusive")
	mustStillWait(t, same, "shared in the same process while one holds it exclusive")
	rx()
	mustWait(t, other, "shared in another process")()
	mustWait(t, same, "shared in the same process")()
}

func TestLock_ExclusiveExcludesExclusive(t *testing.T) {
	path := lockPath(t)
	a, b := newLock(path), newLock(path)
	rx := mustHold(t, a, "exclusive", "TestStop")
	other := holding(t, b, "exclusive", "TestRestart")
	same := holding(t, a, "exclusive", "TestOutage")
	mustStillWait(t, other, "exclusive in another process")
	mustStillWait(t, same, "exclusive in the same process")
	rx()
	// One of them goes first, then the other.
	var second <-chan func()
	select {
	case r := <-other:
		second = same
		mustStillWait(t, second, "the second exclusive")
		r()
	case r := <-same:
		second = other
		mustStillWait(t, second, "the second exclusive")
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("neither exclusive got the lock")
	}
	mustWait(t, second, "the second exclusive")()
}

// A reader that comes after a waiting writer waits for it, so that readers taking turns
// in other processes can't keep a test that stops Keystone waiting for ever.
func TestLock_WaitingExclusiveGoesBeforeLaterShared(t *testing.T) {
	path := lockPath(t)
	a, b, c := newLock(path), newLock(path), newLock(path)
	r1 := mustHold(t, a, "shared", "TestA")
	ex := holding(t, b, "exclusive", "TestStop")
	mustStillWait(t, ex, "exclusive while one holds it shared")
	later := holding(t, c, "shared", "TestLater")
	mustStillWait(t, later, "shared after an exclusive began to wait")
	r1()
	rx := mustWait(t, ex, "exclusive once the first reader let go")
	mustStillWait(t, later, "shared while one holds it exclusive")
	rx()
	mustWait(t, later, "shared after the exclusive let go")()
}

func TestLock_SubtestsShareTheExclusiveHold(t *testing.T) {
	path := lockPath(t)
	l, other := newLock(path), newLock(path)
	rx := mustHold(t, l, "exclusive", "TestStop")
	mustHold(t, l, "shared", "TestStop/sub")()
	mustHold(t, l, "exclusive", "TestStop/sub/sub")()
	for test, want := range map[string]bool{"TestStop": true, "TestStop/sub": true, "TestStopper": false, "TestOther": false} {
		if got := l.heldExclusiveBy(test); got != want {
			t.Errorf("heldExclusiveBy(%q) = %v, want %v", test, got, want)
		}
	}
	if other.heldExclusiveBy("TestStop") {
		t.Error("another process's lock says TestStop holds it")
	}
	unrelated := holding(t, l, "shared", "TestOther")
	mustStillWait(t, unrelated, "shared by a test outside the exclusive holder")
	rx()
	mustWait(t, unrelated, "shared after the exclusive let go")()
	if l.heldExclusiveBy("TestStop") {
		t.Error("heldExclusiveBy after the release")
	}
}

// A test that holds the lock shared may take it again (a helper calling Env in a test
// that did) while a writer of its process waits: waiting there would deadlock.
func TestLock_SharedAgainWhileExclusiveWaits(t *testing.T) {
	l := newLock(lockPath(t))
	r1 := mustHold(t, l, "shared", "TestA")
	ex := holding(t, l, "exclusive", "TestStop")
	mustStillWait(t, ex, "exclusive while one holds it shared")
	r2 := mustHold(t, l, "shared", "TestA/helper")
	r2()
	mustStillWait(t, ex, "exclusive while one still holds it shared")
	r1()
	mustWait(t, ex, "exclusive once both let go")()
}

func TestLock_ReleaseTwiceIsHarmless(t *testing.T) {
	l := newLock(lockPath(t))
	r1 := mustHold(t, l, "shared", "TestA")
	r2 := mustHold(t, l, "shared", "TestB")
	r1()
	r1()
	ex := holding(t, l, "exclusive", "TestStop")
	mustStillWait(t, ex, "exclusive while TestB holds it shared")
	r2()
	mustWait(t, ex, "exclusive")()
}

func TestLock_WaitsEndWithAReason(t *testing.T) {
	tests := []struct {
		name string
		hold func(l, other *lock) func()
		mode string
		want string
	}{
		{
			name: "exclusive behind a shared hold of its own process: the Env before t.Parallel deadlock",
			hold: func(l, _ *lock) func() { r, _ := l.shared("TestParallel", time.Second); return r },
			mode: "exclusive", want: "t.Parallel",
		},
		{
			name: "exclusive behind another process's shared hold",
			hold: func(_, other *lock) func() { r, _ := other.shared("TestA", time.Second); return r },
			mode: "exclusive", want: "another test process",
		},
		{
			name: "shared behind another process's exclusive hold",
			hold: func(_, other *lock) func() { r, _ := other.exclusive("TestStop", time.Second); return r },
			mode: "shared", want: "another test process",
		},
		{
			name: "shared behind an exclusive hold of its own process",
			hold: func(l, _ *lock) func() { r, _ := l.exclusive("TestStop", time.Second); return r },
			mode: "shared", want: `"TestStop"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := lockPath(t)
			l, other := newLock(path), newLock(path)
			release := tt.hold(l, other)
			if release == nil {
				t.Fatal("could not take the first hold")
			}
			defer release()
			_, err := take(l, tt.mode, "TestWaiter", 100*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			// The failed wait left nothing behind: once the hold ends, the lock is free.
			release()
			mustHold(t, l, "exclusive", "TestAfter")()
		})
	}
}

// TestLock_AcrossProcesses runs a second process, this test binary again, that holds the
// lock shared until its standard input closes.
func TestLock_AcrossProcesses(t *testing.T) {
	if path := os.Getenv("KSTEST_HOLD_SHARED"); path != "" {
		release, err := newLock(path).shared("TestHolder", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		fmt.Println("holding")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	}
	path := lockPath(t)
	for _, end := range []string{"lets go", "dies"} {
		t.Run("exclusive waits until the other process "+end, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLock_AcrossProcesses$")
			cmd.Env = append(os.Environ(), "KSTEST_HOLD_SHARED="+path)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil || line != "holding\n" {
				t.Fatalf("helper process: %q, %v", line, err)
			}
			ex := holding(t, newLock(path), "exclusive", "TestStop")
			mustStillWait(t, ex, "exclusive while another process holds it shared")
			if end == "dies" {
				_ = cmd.Process.Kill() // the kernel drops a dead process's flocks
			} else {
				stdin.Close()
			}
			mustWait(t, ex, "exclusive after the other process "+end)()
		})
	}
}
