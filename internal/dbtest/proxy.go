package dbtest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is what a Proxy does with its connections.
type Mode int32

const (
	// Pass forwards everything.
	Pass Mode = iota
	// Hang accepts connections and forwards nothing, either way, on new and
	// open connections alike, as a frozen server (SIGSTOP) does: the client
	// waits. What was held back is forwarded when the mode returns to Pass.
	Hang
	// Refuse resets every open connection and every new one, as a server
	// that is down does.
	Refuse
)

// Fault is what a Proxy does to one statement a client sends (FailNext).
type Fault int

const (
	// CutBefore closes the connection instead of forwarding the statement:
	// the server never sees it, and rolls back the transaction it was in.
	CutBefore Fault = iota + 1
	// CutAfter forwards the statement, then closes the connection before the
	// answer comes back: the server runs it (a COMMIT commits), and the
	// client cannot know.
	CutAfter
	// HangAfter forwards the statement, then nothing more on that
	// connection: the server runs it, and the client waits for an answer.
	HangAfter
)

// Proxy forwards TCP connections to a MySQL or MariaDB server and injects the
// faults the test asks for. It reads the MySQL packets the client sends (no
// TLS, no compression) to find the statements FailNext names.
type Proxy struct {
	ln     net.Listener
	target string

	mode atomic.Int32 // Mode

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	prefix []byte // FailNext's statement, armed for one match
	prior  []byte // FailNextAfter's: a statement the connection ran first
	fault  Fault

	statements atomic.Int64 // statements clients sent (Statements)
}

// Statements is how many statements the clients have sent through the proxy
// so far (COM_QUERY, COM_STMT_EXECUTE): what the database was asked to do,
// counted at the wire, whatever the client library.
func (p *Proxy) Statements() int64 { return p.statements.Load() }

// NewProxy listens on 127.0.0.1 and forwards to target (host:port). It stops
// when tb ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr is where clients connect: 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set switches the mode for open and new connections.
func (p *Proxy) Set(m Mode) {
	p.mode.Store(int32(m))
	if m == Refuse {
		p.closeConns()
	}
}

// FailNext arms fault f for the next statement any client runs (as a query,
// or by executing a statement it prepared) that starts with statement, in any
// case: "COMMIT", "SELECT", "INSERT INTO `msf_operations`". Preparing a
// statement is not running it: the fault waits for its execution.
func (p *Proxy) FailNext(statement string, f Fault) {
	p.FailNextAfter("", statement, f)
}

// FailNextAfter is FailNext for a statement run on a connection that ran a
// statement starting with prior earlier in the same transaction (since its
// last COMMIT or ROLLBACK): ("INSERT INTO `icc_operations`", "COMMIT") is the
// COMMIT of an ICC write, never that of a background job which happens to
// commit first. An empty prior is FailNext.
func (p *Proxy) FailNextAfter(prior, statement string, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prefix, p.fault = []byte(statement), f
	p.prior = nil
	if prior != "" {
		p.prior = []byte(prior)
	}
}

// The client commands the proxy reads.
const (
	comQuery       = 0x03
	comStmtPrepare = 0x16
	comStmtExecute = 0x17
)

// faultFor returns the fault armed for a statement's text, run on c, and
// disarms it.
func (p *Proxy) faultFor(c *proxyConn, text []byte) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == 0 || !hasPrefixFold(text, p.prefix) {
		return 0
	}
	if p.prior != nil && !c.ranInTx(p.prior) {
		return 0
	}
	f := p.fault
	p.prefix, p.prior, p.fault = nil, nil, 0
	return f
}

// hasPrefixFold reports whether text starts with prefix, in any case.
func hasPrefixFold(text, prefix []byte) bool {
	return len(text) >= len(prefix) && bytes.EqualFold(text[:len(prefix)], prefix)
}

func (p *Proxy) close() {
	p.ln.Close()
	p.closeConns()
}

func (p *Proxy) closeConns() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if Mode(p.mode.Load()) == Refuse {
			reset(client)
			continue
		}
		c := &proxyConn{p: p, client: client}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		go c.run()
	}
}

// proxyConn is one client connection and its connection to the server.
type proxyConn struct {
	p      *Proxy
	client net.Conn
	server net.Conn
	mu     sync.Mutex
	hung   bool // this connection forwards nothing more (HangAfter)
	closed bool

	// The statements the client prepared, by the id the server gave them:
	// preparing is the text of a COM_STMT_PREPARE sent and not yet answered.
	preparing []byte
	prepared  map[uint32][]byte

	// The statements run since the last COMMIT or ROLLBACK
	// (FailNextAfter); their first bytes are enough.
	inTx [][]byte
}

// ranInTx reports whether c ran a statement starting with prefix since its
// last COMMIT or ROLLBACK.
func (c *proxyConn) ranInTx(prefix []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.inTx {
		if hasPrefixFold(s, prefix) {
			return true
		}
	}
	return false
}

// ran notes a statement c runs, after its fault was looked up.
func (c *proxyConn) ran(text []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hasPrefixFold(text, []byte("COMMIT")) || hasPrefixFold(text, []byte("ROLLBACK")) {
		c.inTx = c.inTx[:0]
		return
	}
	c.inTx = append(c.inTx, bytes.Clone(text[:min(len(text), 64)]))
}

// statement is the text of the statement a client packet's payload runs, if
// it runs one. It counts the statements run (Statements).
func (c *proxyConn) statement(payload []byte) []byte {
	if len(payload) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if payload[0] == comQuery || payload[0] == comStmtExecute {
		c.p.statements.Add(1)
	}
	switch payload[0] {
	case comQuery:
		return payload[1:]
	case comStmtPrepare:
		c.preparing = bytes.Clone(payload[1:])
	case comStmtExecute:
		if len(payload) >= 5 {
			return c.prepared[binary.LittleEndian.Uint32(payload[1:5])]
		}
	}
	return nil
}

// answered notes the server's answer to a COM_STMT_PREPARE: an OK packet
// whose payload starts with the statement's id.
func (c *proxyConn) answered(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.preparing == nil {
		return
	}
	if len(payload) >= 5 && payload[0] == 0x00 {
		if c.prepared == nil {
			c.prepared = map[uint32][]byte{}
		}
		c.prepared[binary.LittleEndian.Uint32(payload[1:5])] = c.preparing
	}
	c.preparing = nil
}

func (c *proxyConn) run() {
	defer c.close()
	server, err := net.DialTimeout("tcp", c.p.target, 5*time.Second)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.server = server
	closed := c.closed
	c.mu.Unlock()
	if closed {
		server.Close()
		return
	}
	go func() {
		defer c.close()
		c.pumpToClient()
	}()
	c.pumpToServer()
}

// pumpToServer forwards the client's packets one at a time, acting on the
// armed fault.
func (c *proxyConn) pumpToServer() {
	for {
		packet, err := readPacket(c.client)
		if err != nil {
			return
		}
		var fault Fault
		if text := c.statement(packet[4:]); text != nil {
			fault = c.p.faultFor(c, text)
			c.ran(text)
		}
		if fault == CutBefore {
			return
		}
		if !c.wait() {
			return
		}
		if _, err := c.server.Write(packet); err != nil {
			return
		}
		switch fault {
		case CutAfter:
			return
		case HangAfter:
			c.mu.Lock()
			c.hung = true
			c.mu.Unlock()
		}
	}
}

// pumpToClient forwards the server's packets one at a time, noting the ids
// of prepared statements.
func (c *proxyConn) pumpToClient() {
	for {
		packet, err := readPacket(c.server)
		if err != nil {
			return
		}
		c.answered(packet[4:])
		if !c.wait() {
			return
		}
		if _, err := c.client.Write(packet); err != nil {
			return
		}
	}
}

// wait holds a pump while the proxy or this connection hangs. It reports
// false when the connection was closed meanwhile.
func (c *proxyConn) wait() bool {
	for {
		c.mu.Lock()
		closed, hung := c.closed, c.hung
		c.mu.Unlock()
		switch {
		case closed:
			return false
		case !hung && Mode(c.p.mode.Load()) == Pass:
			return true
		case Mode(c.p.mode.Load()) == Refuse:
			c.close()
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// close closes both sides; the client's with a reset, as a dead server's
// connection ends.
func (c *proxyConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	server := c.server
	c.mu.Unlock()
	reset(c.client)
	if server != nil {
		server.Close()
	}
	c.p.mu.Lock()
	delete(c.p.conns, c)
	c.p.mu.Unlock()
}

// readPacket reads one MySQL packet: its 4-byte header (payload length,
// sequence number) and its payload.
func readPacket(r io.Reader) ([]byte, error) {
	header := make([]byte, 4)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	n := int(header[0]) | int(header[1])<<8 | int(header[2])<<16
	packet := make([]byte, 4+n)
	copy(packet, header)
	_, err := io.ReadFull(r, packet[4:])
	return packet, err
}

// reset closes conn so that the peer gets a TCP reset rather than an orderly
// end.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}
