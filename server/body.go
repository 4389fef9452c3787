package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/semaphore"
)

// MaxBodyBytes is the largest request body accepted: 4 MiB, inclusive. A
// larger one is answered 413 (010003) before anything parses it.
const MaxBodyBytes = 4 << 20

// MaxJSONDepth is how deeply arrays and objects may nest in a body. The
// deepest the contract needs is 6 (rollbacks.target_clusters[0].request...);
// request_body and error objects get the rest.
const MaxJSONDepth = 32

// DefaultBodyMemory is the default of Options.BodyMemory.
const DefaultBodyMemory = 256 << 20

// bodyWait is how long a request waits for room in Options.BodyMemory before
// it is answered 503 with Retry-After.
const bodyWait = time.Second

// Decoding a body costs memory by its bytes (the body itself, the strings
// decoded from it) and by its values (each array, object and member one or
// more Go values): measured at 5 bytes per byte for a body of long strings and
// about 64 per comma, bracket or brace for 4 MiB of tiny values.
const (
	decodeCostPerByte  = 5
	decodeCostPerValue = 64
)

// bodyValueKey is where readBody leaves the decoded body for the validator,
// and bodyBytesKey its text.
const (
	bodyValueKey = "opsvc.body"
	bodyBytesKey = "opsvc.body.text"
)

// bodyBudget bounds the memory that request bodies being read and decoded
// may take at once: each request holds its estimated decode cost until it is
// answered. Without it, 150 concurrent 4 MiB bodies took the service to
// 3.5 GB.
type bodyBudget struct {
	sem   *semaphore.Weighted
	limit int64
}

func newBodyBudget(limit int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(limit), limit: limit}
}

// acquire takes n, at most the whole budget (a body that alone costs more
// runs alone), waiting up to bodyWait.
func (b *bodyBudget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.limit)
	ctx, cancel := context.WithTimeout(ctx, bodyWait)
	defer cancel()
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, errBusy
	}
	return n, nil
}

// readBody reads the whole request body, at most MaxBodyBytes of it, whether
// it comes with a Content-Length or chunked, checks its text and nesting, and
// decodes it, once, for the validator and the handler. It refuses a body that
// is not one JSON value (010001), such as `{...} {}`, text that is not UTF-8
// or holds a lone surrogate (010001, naming the field: stored, it would come
// back altered), and nesting deeper than MaxJSONDepth (010002).
func (s *Server) readBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		if r.ContentLength > MaxBodyBytes {
			return errTooLarge
		}
		size := r.ContentLength
		if size < 0 { // chunked: at most this much
			size = MaxBodyBytes
		}
		held, err := s.bodies.acquire(r.Context(), decodeCostPerByte*size)
		if err != nil {
			return err
		}
		defer func() { s.bodies.sem.Release(held) }()

		b, err := readAll(r.Body, r.ContentLength)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The client is too slow: the http.Server's ReadTimeout passed.
			return fmt.Errorf("%w: %w", errBodyTimeout, &FieldError{Field: "body", Reason: "not received within the read timeout", Syntax: true})
		}
		if err != nil {
			// The client went away.
			return &FieldError{Field: "body", Reason: "could not be read", Syntax: true}
		}
		if len(b) > MaxBodyBytes {
			return errTooLarge
		}
		if len(b) > 0 {
			values, err := checkStructure(b)
			if err != nil {
				return err
			}
			cost := int64(decodeCostPerByte*len(b) + decodeCostPerValue*values)
			if extra := min(cost, s.bodies.limit) - held; extra > 0 {
				got, err := s.bodies.acquire(r.Context(), extra)
				if err != nil {
					return err
				}
				held += got
			}
			if fe := checkText(b); fe != nil {
				return fe
			}
			v, err := decodeJSON(b)
			if err != nil {
				return &FieldError{Field: "body", Reason: "not JSON: " + err.Error(), Syntax: true}
			}
			c.Set(bodyValueKey, v)
			c.Set(bodyBytesKey, b)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		return next(c)
	}
}

// readAll reads a body of at most MaxBodyBytes+1 bytes. With its length
// announced, it reads into one buffer of that size plus one byte (io.ReadAll
// grows one from 512 bytes: about four times a 5 KB body in all).
func readAll(body io.Reader, length int64) ([]byte, error) {
	body = io.LimitReader(body, MaxBodyBytes+1)
	if length < 0 || length > MaxBodyBytes {
		return io.ReadAll(body)
	}
	b := make([]byte, length+1)
	n, err := io.ReadFull(body, b)
	switch {
	case err == nil: // more than announced (a reader other than net/http's)
		rest, err := io.ReadAll(body)
		return append(b, rest...), err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if int64(n) < length {
			return nil, io.ErrUnexpectedEOF // the client went away
		}
		return b[:n], nil
	default:
		return nil, err
	}
}

// checkStructure counts the values of a body (its commas, brackets and
// braces outside strings) in one pass without decoding it, and refuses
// nesting deeper than MaxJSONDepth.
func checkStructure(b []byte) (values int, err error) {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			values++
			if depth > MaxJSONDepth {
				return 0, &FieldError{Field: "body", Reason: fmt.Sprintf("nested deeper than %d levels", MaxJSONDepth)}
			}
		case ']', '}':
			depth--
		case ',':
			values++
		}
	}
	return values, nil
}

// checkText refuses text that decoding would silently alter: bytes that are
// not UTF-8 and \u escapes of lone surrogates both become U+FFFD. The common
// case, valid UTF-8 with no surrogate escape, costs one pass; otherwise the
// body is walked token by token to name the field.
func checkText(b []byte) *FieldError {
	if utf8.Valid(b) && !hasSurrogateEscape(b) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var path jsonPath
	start := int64(0)
	for {
		tok, err := dec.Token()
		if err != nil {
			// Not JSON: decodeJSON says where.
			return nil
		}
		end := dec.InputOffset()
		raw := b[start:end]
		start = end
		isKey := path.beforeToken(tok)
		if _, ok := tok.(string); ok {
			if reason := badText(raw); reason != "" {
				field := path.String()
				if isKey {
					reason = "has a member name that " + reason
				}
				return &FieldError{Field: field, Reason: reason, Syntax: true}
			}
		}
		path.afterToken(tok, isKey)
		if path.done() {
			return nil
		}
	}
}

// badText says what is wrong with the raw text of one JSON string token, or
// "" when nothing is.
func badText(raw []byte) string {
	if !utf8.Valid(raw) {
		return "is not valid UTF-8"
	}
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		r, ok := hex4(raw, i+2)
		switch {
		case !ok:
		case r >= 0xD800 && r <= 0xDBFF:
			// A high surrogate must be followed by an escaped low one.
			if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				if lo, ok := hex4(raw, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return "holds a lone surrogate (\\u" + strconv.FormatUint(uint64(r), 16) + ")"
		case r >= 0xDC00 && r <= 0xDFFF:
			return "holds a lone surrogate (\\u" + strconv.FormatUint(uint64(r), 16) + ")"
		}
		i += 5
	}
	return ""
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[at:at+4]), 16, 32)
	return rune(n), err == nil
}

// hasSurrogateEscape reports whether b may hold a \u escape of a surrogate
// (\uD800 to \uDFFF, in either case).
func hasSurrogateEscape(b []byte) bool {
	for {
		i := bytes.Index(b, []byte(`\u`))
		if i < 0 || i+3 >= len(b) {
			return false
		}
		if (b[i+2] == 'd' || b[i+2] == 'D') && bytes.IndexByte([]byte("89abcdefABCDEF"), b[i+3]) >= 0 {
			return true
		}
		b = b[i+2:]
	}
}

// jsonPath follows where a token stream is, to name fields the way error
// messages do (target_clusters[0].request.body).
type jsonPath struct {
	frames []pathFrame
	ended  bool
}

type pathFrame struct {
	object    bool
	key       string
	index     int
	expectKey bool
}

// beforeToken reports whether tok is a member name.
func (p *jsonPath) beforeToken(tok json.Token) bool {
	if len(p.frames) == 0 {
		return false
	}
	f := &p.frames[len(p.frames)-1]
	if _, ok := tok.(json.Delim); ok && (tok == json.Delim('}') || tok == json.Delim(']')) {
		return false
	}
	if f.object && f.expectKey {
		if s, ok := tok.(string); ok {
			f.key = s
			return true
		}
	}
	return false
}

func (p *jsonPath) afterToken(tok json.Token, isKey bool) {
	if isKey {
		p.frames[len(p.frames)-1].expectKey = false
		return
	}
	switch tok {
	case json.Delim('{'):
		p.frames = append(p.frames, pathFrame{object: true, expectKey: true})
		return
	case json.Delim('['):
		p.frames = append(p.frames, pathFrame{})
		return
	case json.Delim('}'), json.Delim(']'):
		p.frames = p.frames[:len(p.frames)-1]
	}
	// A value ended.
	if len(p.frames) == 0 {
		p.ended = true
		return
	}
	f := &p.frames[len(p.frames)-1]
	if f.object {
		f.expectKey = true
	} else {
		f.index++
	}
}

func (p *jsonPath) done() bool { return p.ended }

// String names the value the next token is, or the member whose name it is.
func (p *jsonPath) String() string {
	var parts []string
	for _, f := range p.frames {
		if f.object {
			parts = append(parts, f.key)
		} else {
			parts = append(parts, strconv.Itoa(f.index))
		}
	}
	if s := fieldPath(parts); s != "" {
		return s
	}
	return "body"
}

// decodeJSON decodes one JSON value as kin-openapi does (numbers as
// json.Number) and refuses anything after it: decodeValue's fast path, or
// encoding/json for what that leaves.
func decodeJSON(b []byte) (any, error) {
	if v, ok := decodeValue(b); ok {
		return v, nil
	}
	return decodeStd(b)
}

// decodeStd is decodeJSON by encoding/json alone.
func decodeStd(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("more text after the JSON value")
	}
	return v, nil
}
