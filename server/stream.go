package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"example.com/opsvc/gen"
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
	if s.buf.Len() >= streamFlushBytes {
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
	if s.buf.Len() >= streamFlushBytes {
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

// The single-record answers, written by writeJSON.
type (
	operationAnswer gen.Operation
	iccRecordAnswer struct {
		status int
		record gen.ICCOperationRecord
	}
	iccV2Answer gen.ICCOperationV2Show
)

func (a operationAnswer) VisitGetOperationResponse(w http.ResponseWriter) error {
	return writeJSON(w, http.StatusOK, gen.Operation(a))
}

func (a iccRecordAnswer) VisitPutICCOperationResponse(w http.ResponseWriter) error {
	return writeJSON(w, a.status, a.record)
}

func (a iccV2Answer) VisitGetICCOperationV2Response(w http.ResponseWriter) error {
	return writeJSON(w, http.StatusOK, gen.ICCOperationV2Show(a))
}
