package main

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter is a listener that keeps at most max client connections open,
// so that the service never runs out of file descriptors (20,000 idle
// keep-alive connections did that). At the limit it closes the connection that
// has been idle the longest, a keep-alive connection between two requests,
// which HTTP allows at any time, to make room; with none idle, it waits for a
// connection to close, and new clients wait in the listen queue. Its track
// method must be the http.Server's ConnState hook.
type connLimiter struct {
	net.Listener
	log   *slog.Logger
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close

	mu       sync.Mutex
	conns    map[*limitedConn]struct{}
	waiting  bool      // Accept waits for a slot
	lastWarn time.Time // when the limit was last logged
	closing  sync.Once
}

func newConnLimiter(ln net.Listener, max int, log *slog.Logger) *connLimiter {
	return &connLimiter{
		Listener: ln,
		log:      log,
		slots:    make(chan struct{}, max),
		done:     make(chan struct{}),
		conns:    map[*limitedConn]struct{}{},
	}
}

// limitedConn is a connection that gives its slot back when closed.
type limitedConn struct {
	net.Conn
	l         *connLimiter
	state     http.ConnState // guarded by l.mu
	idleSince time.Time      // guarded by l.mu
	closing   sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closing.Do(func() { c.l.release(c) })
	return err
}

// Accept waits for a free slot, making one if it can, then for a connection.
func (l *connLimiter) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if err := l.waitForSlot(); err != nil {
			return nil, err
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l, state: http.StateNew}
	l.mu.Lock()
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

func (l *connLimiter) waitForSlot() error {
	l.mu.Lock()
	l.waiting = true
	idle := l.longestIdle()
	if now := time.Now(); now.Sub(l.lastWarn) > time.Minute {
		l.lastWarn = now
		l.log.Warn("connection limit reached: closing idle keep-alive connections, or waiting for one to close",
			"max_connections", cap(l.slots))
	}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.waiting = false
		l.mu.Unlock()
	}()
	if idle != nil {
		idle.Close()
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

// longestIdle returns the connection idle the longest, or nil. l.mu is held.
func (l *connLimiter) longestIdle() *limitedConn {
	var oldest *limitedConn
	for c := range l.conns {
		if c.state == http.StateIdle && (oldest == nil || c.idleSince.Before(oldest.idleSince)) {
			oldest = c
		}
	}
	return oldest
}

// track follows each connection's state (http.Server.ConnState). A
// connection that turns idle while Accept waits for a slot is closed at once.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	lc.state = state
	evict := false
	if state == http.StateIdle {
		lc.idleSince = time.Now()
		evict = l.waiting
	}
	l.mu.Unlock()
	if evict {
		lc.Close()
	}
}

func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	<-l.slots
}

// Close closes the listener; open connections stay.
func (l *connLimiter) Close() error {
	l.closing.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open describes the open connections, for the log: how many in each state,
// and the peers of the first few.
func (l *connLimiter) open() (counts map[string]int, peers []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	counts = map[string]int{}
	for c := range l.conns {
		counts[c.state.String()]++
		if len(peers) < 20 {
			peers = append(peers, c.RemoteAddr().String()+" ("+c.state.String()+")")
		}
	}
	return counts, peers
}
