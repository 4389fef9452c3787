package server

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"sync"

	"example.com/opsvc/gen"
)

// net/http answers a request it cannot parse (a malformed request line or
// path such as /v1/operations/%, headers past MaxHeaderBytes) itself, before
// any handler runs, with a plain-text body written straight to the
// connection. WrapListener's connections recognize those answers and write
// them in the family's JSON error format instead, the family read from the
// request line they saw come in.

// cannedErrorHeaders is what net/http writes after the status line of such
// an answer (net/http.conn.serve's errorHeaders).
const cannedErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// errHeadersTooLarge is a request whose headers exceed the server's
// MaxHeaderBytes (net/http's 431).
var errHeadersTooLarge = &FieldError{Field: "headers", Reason: "larger than the server accepts"}

// WrapListener returns ln with connections whose plain-text parse errors
// from net/http are rewritten as the API's JSON errors.
func WrapListener(ln net.Listener) net.Listener { return errorListener{ln} }

type errorListener struct{ net.Listener }

func (l errorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &errorConn{Conn: c}, nil
}

// errorConn keeps the first bytes of each request it reads (up to a write),
// which is all it needs to tell the family of a request net/http refused.
type errorConn struct {
	net.Conn
	mu   sync.Mutex
	head []byte
}

const headKept = 256

func (c *errorConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if room := headKept - len(c.head); room > 0 {
			c.head = append(c.head, p[:min(n, room)]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *errorConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	head := c.head
	c.head = nil // the next bytes read are the next request's
	c.mu.Unlock()
	if answer := rewriteCannedError(p, head); answer != nil {
		if _, err := c.Conn.Write(answer); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// rewriteCannedError returns the JSON answer for net/http's own answer p to
// the request that began with head, or nil when p is not one it rewrites.
func rewriteCannedError(p, head []byte) []byte {
	status, ok := cannedErrorStatus(p)
	if !ok {
		return nil
	}
	var r reply
	switch status {
	case http.StatusBadRequest:
		r = classify(&FieldError{Field: "request", Reason: "malformed: it could not be parsed as HTTP", Syntax: true})
	case http.StatusRequestHeaderFieldsTooLarge:
		// 431 has no row in the contract's table (010003 pairs with 413):
		// a code of its own (openapi.yaml, MSFError).
		r = reply{status, "010004", errHeadersTooLarge.Error()}
	default:
		return nil
	}
	body, err := json.Marshal(errorBody(familyOf(requestPath(head)), r, gen.MSFErrorDataConsistencyRolledBack))
	if err != nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 " + strconv.Itoa(r.status) + " " + http.StatusText(r.status) + "\r\n")
	b.WriteString("Content-Type: application/json\r\n")
	b.WriteString(requestIDHeader + ": " + newRequestID() + "\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// cannedErrorStatus is the status of p when p is an error answer written by
// net/http itself: "HTTP/1.1 NNN ..." followed by cannedErrorHeaders.
func cannedErrorStatus(p []byte) (int, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) || len(p) < len(proto)+3 {
		return 0, false
	}
	end := bytes.Index(p, []byte("\r\n"))
	if end < 0 || !bytes.HasPrefix(p[end:], []byte(cannedErrorHeaders)) {
		return 0, false
	}
	status, err := strconv.Atoi(string(p[len(proto) : len(proto)+3]))
	return status, err == nil
}

// requestPath is the request target of a request line, as sent: "" when
// head does not hold one.
func requestPath(head []byte) string {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return ""
	}
	target, _, _ := bytes.Cut(rest, []byte(" "))
	return string(target)
}
