package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// streamFlushBytes is how much of a streamed list is held back before the
// status line goes out. Until then a failure is still answered with a proper
// error; after it, the rows go to the client as they are encoded, so memory
// does not grow with the number of records.
const streamFlushBytes = 64 << 10

// jsonStream writes {"<key>": [item, item, ...]} one item at a time.
type jsonStream struct {
	w         http.ResponseWriter
	buf       bytes.Buffer
	enc       *json.Encoder
	items     int
	committed bool
	// hold keeps everything until finish: a page (at most
	// store.MaxPageLimit items) goes out whole, after its Link header.
	hold bool
	// writeTimeout bounds each flush (0: DefaultStreamWriteTimeout).
	writeTimeout time.Duration
}

func newJSONStream(w http.ResponseWriter, key string, writeTimeout time.Duration) *jsonStream {
	if writeTimeout <= 0 {
		writeTimeout = DefaultStreamWriteTimeout
	}
	s := &jsonStream{w: w, writeTimeout: writeTimeout}
	s.enc = json.NewEncoder(&s.buf)
	// Bodies are returned byte for byte; there is no HTML to protect.
	s.enc.SetEscapeHTML(false)
	s.buf.WriteString(`{"` + key + `":[`)
	return s
}

// add encodes one item.
func (s *jsonStream) add(v any) error {
	if s.items > 0 {
		s.buf.WriteByte(',')
	}
	s.items++
	if err := s.enc.Encode(v); err != nil {
		return err
	}
	// Encode ends each value with a newline; the list is compact JSON.
	s.buf.Truncate(s.buf.Len() - 1)
	if s.buf.Len() >= streamFlushBytes && !s.hold {
		return s.flush()
	}
	return nil
}

// addJSON appends one item that appendItem encodes itself.
func (s *jsonStream) addJSON(appendItem func([]byte) []byte) error {
	if s.items > 0 {
		s.buf.WriteByte(',')
	}
	s.items++
	s.buf.Write(appendItem(s.buf.AvailableBuffer()))
	if s.buf.Len() >= streamFlushBytes && !s.hold {
		return s.flush()
	}
	return nil
}

func (s *jsonStream) flush() error {
	if !s.committed {
		s.w.Header().Set("Content-Type", "application/json")
		s.w.WriteHeader(http.StatusOK)
		s.committed = true
	}
	// A client that stops reading must not hold its batch (and a
	// goroutine) for ever: each flush gets streamWriteTimeout to go out.
	// Writers that cannot take a deadline (a test recorder) just write.
	_ = http.NewResponseController(s.w).SetWriteDeadline(time.Now().Add(s.writeTimeout))
	_, err := s.w.Write(s.buf.Bytes())
	s.buf.Reset()
	return err
}

// DefaultStreamWriteTimeout is the default of Options.StreamWriteTimeout:
// 64 KiB in 30 s is a client reading at 2 KiB/s.
const DefaultStreamWriteTimeout = 30 * time.Second

// finish closes the document, or, when listing failed, decides how the
// failure reaches the client: as an ordinary error while nothing has been
// sent, or as a broken stream once the status line is out.
func (s *jsonStream) finish(listErr error) error {
	if listErr != nil {
		if s.committed {
			return &brokenStreamError{listErr}
		}
		return listErr
	}
	s.buf.WriteString("]}\n")
	return s.flush()
}

// finishPage is finish for a page: when another page follows (next is not
// nil), the document ends with its next_page_token and the answer links it.
// The page was held whole (hold), so the header still goes out first.
func (s *jsonStream) finishPage(listErr error, pg pager, next *store.Cursor) error {
	if listErr != nil || next == nil {
		return s.finish(listErr)
	}
	token, link := pg.next(next)
	s.w.Header().Set("Link", link)
	// The token is base64url: nothing in it needs escaping.
	s.buf.WriteString(`],"next_page_token":"` + token + "\"}\n")
	return s.flush()
}

// brokenStreamError is a list that failed after its 200 went out. The error
// handler logs it and aborts the connection, so the client sees a failed
// transfer rather than a truncated document that looks complete.
type brokenStreamError struct{ err error }

func (e *brokenStreamError) Error() string { return "stream broken: " + e.err.Error() }
func (e *brokenStreamError) Unwrap() error { return e.err }

func isBrokenStream(err error) bool {
	var b *brokenStreamError
	return errors.As(err, &b)
}

// writeJSON writes v as a whole answer. Like the streamed lists it does not
// escape <, > and &: bodies are returned as they were recorded, and nothing
// here is HTML. v is encoded before the status goes out, so an encoding
// failure is still answered as an error.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// recordAnswer is a single record that carries an ETag (A3, B3 show): a
// digest of the answer itself, so it changes exactly when the answer does,
// even when an id is deleted and recorded again. When the request's
// If-None-Match holds it, the answer is 304 without a body. A record not yet
// terminal carries Retry-After.
type recordAnswer struct {
	record      any
	ifNoneMatch *string
	running     bool
}

func (a recordAnswer) write(w http.ResponseWriter) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(a.record); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	h := w.Header()
	h.Set("ETag", etag)
	if a.running {
		h.Set("Retry-After", retryAfter)
	}
	if a.ifNoneMatch != nil && etagListHolds(*a.ifNoneMatch, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(buf.Bytes())
	return err
}

// etagListHolds reports whether an If-None-Match value holds etag: "*", or
// a comma-separated list of entity tags compared weakly (RFC 9110 13.1.2).
func etagListHolds(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func (a recordAnswer) VisitGetOperationResponse(w http.ResponseWriter) error { return a.write(w) }

func (a recordAnswer) VisitGetICCOperationV2Response(w http.ResponseWriter) error { return a.write(w) }

// The other single-record answers, written by writeJSON.
type iccRecordAnswer struct {
	status int
	record gen.ICCOperationRecord
}

func (a iccRecordAnswer) VisitPutICCOperationResponse(w http.ResponseWriter) error {
	return writeJSON(w, a.status, a.record)
}
