package kstest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Mode is what a Proxy does with its connections.
type Mode int

const (
	// Pass forwards every connection to Keystone.
	Pass Mode = iota
	// Refuse resets every open connection and every new one, as a Keystone that is down
	// does.
	Refuse
	// Hang accepts connections and answers none, as a Keystone that stopped responding
	// does: the client waits until it gives up. A new connection is not passed on to
	// Keystone; one already passed on still sends its request, but Keystone's answer is
	// held. What was held is forwarded when the mode returns to Pass.
	Hang
)

// Proxy forwards TCP connections to the real Keystone and can be switched to refuse or
// hang them, so that a test takes Keystone away from the service it runs without
// touching the Keystone other tests use.
//
// It never leaves Keystone waiting for a request: it connects to Keystone only once a
// client has sent something, and never holds a request back from a connection it has
// made. scripts/keystone.sh's server (Python's wsgiref) serves one connection at a time,
// so a connection that sent nothing would stall every test.
type Proxy struct {
	ln     net.Listener
	url    string
	target string

	mu      sync.Mutex
	mode    Mode
	changed chan struct{} // closed and replaced when mode changes
	conns   map[*proxyConn]struct{}
}

// proxyConn is one client connection and, once its first bytes came, its connection to
// Keystone.
type proxyConn struct {
	client net.Conn
	server net.Conn      // set under Proxy.mu
	done   chan struct{} // closed when the connection ends
}

// NewProxy listens on 127.0.0.1 in mode Pass and forwards to the Keystone of env's
// KEYSTONE_URL. It stops when tb ends.
func NewProxy(tb testing.TB, env map[string]string) *Proxy {
	tb.Helper()
	u, err := url.Parse(env["KEYSTONE_URL"])
	if err != nil || u.Host == "" {
		tb.Fatalf("KEYSTONE_URL %q: not a URL", env["KEYSTONE_URL"])
	}
	target := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		target = net.JoinHostPort(u.Hostname(), port)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = ln.Addr().String()
	p := &Proxy{ln: ln, url: u.String(), target: target, changed: make(chan struct{}), conns: map[*proxyConn]struct{}{}}
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// URL is KEYSTONE_URL with the proxy's address in place of Keystone's: the service's
// KEYSTONE_URL in the test.
func (p *Proxy) URL() string { return p.url }

// Set switches the mode, for open and new connections.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	var cut []*proxyConn
	if m == Refuse {
		for c := range p.conns {
			cut = append(cut, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cut {
		p.end(c, true)
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Set(Refuse)
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.mode == Refuse
		c := &proxyConn{client: client, done: make(chan struct{})}
		if !refuse {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if refuse {
			reset(client)
			continue
		}
		go p.serve(c)
	}
}

// serve waits for the client's first bytes and the mode Pass, connects to Keystone, and
// forwards both ways until either side ends.
func (p *Proxy) serve(c *proxyConn) {
	defer p.end(c, false)
	buf := make([]byte, 32<<10)
	n, _ := c.client.Read(buf)
	if n == 0 || !p.await(c) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	_, open := p.conns[c]
	if open {
		c.server = server
	}
	p.mu.Unlock()
	if !open {
		server.Close()
		return
	}
	if _, err := server.Write(buf[:n]); err != nil {
		return
	}
	go func() {
		defer p.end(c, false)
		p.answer(c, server)
	}()
	_, _ = io.Copy(server, c.client)
}

// answer forwards Keystone's answer to the client, holding it while the proxy hangs.
func (p *Proxy) answer(c *proxyConn, server net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if !p.await(c) {
				return
			}
			if _, err := c.client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// await waits while the proxy hangs, and says whether to go on: false when it refuses
// or c has ended.
func (p *Proxy) await(c *proxyConn) bool {
	for {
		p.mu.Lock()
		mode, changed := p.mode, p.changed
		p.mu.Unlock()
		switch mode {
		case Pass:
			return true
		case Refuse:
			return false
		}
		select {
		case <-changed:
		case <-c.done:
			return false
		}
	}
}

// end closes both sides of c, the client's with a reset when asked (as a Keystone that
// went down does), and is harmless when c has ended already.
func (p *Proxy) end(c *proxyConn, hard bool) {
	p.mu.Lock()
	_, open := p.conns[c]
	delete(p.conns, c)
	server := c.server
	p.mu.Unlock()
	if !open {
		return
	}
	close(c.done)
	if hard {
		reset(c.client)
	} else {
		c.client.Close()
	}
	if server != nil {
		server.Close()
	}
}

// reset closes conn so that the peer gets a TCP reset rather than an orderly end.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}
