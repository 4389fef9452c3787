package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// FieldError is a refused value: the field (a body path such as
// target_clusters[0].cluster_id, or a parameter name) and why. Syntax marks a
// body that is not JSON or a value of the wrong JSON type (010001); any other
// FieldError is a missing or invalid value (010002).
type FieldError struct {
	Field  string
	Reason string
	Syntax bool
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Errors that the middleware and handlers raise; errorResponse maps them.
var (
	errTooLarge  = errors.New("body: larger than 4194304 bytes")
	errForbidden = errors.New("forbidden")
	errNoRoute   = errors.New("no such resource")
	errNoMethod  = errors.New("method not allowed")
	errDatabase  = errors.New("database failure")
	// errBusy is a request that found no room to read its body (BodyMemory).
	errBusy = errors.New("busy: too many large requests at once, retry later")
	// errBodyTimeout is a body not received before the server's read
	// deadline. net/http then cancels the request's context, but the client
	// is still there, waiting for an answer: it gets one.
	errBodyTimeout = errors.New("body read timeout")
)

// busyRetryAfter is the Retry-After of a 503 for errBusy, in seconds.
const busyRetryAfter = "1"

// ErrUnauthenticated is returned by an Authenticator for a token it does not
// accept: unknown, garbage, expired or revoked.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrAuthUnavailable is returned by an Authenticator that cannot reach its
// identity service. Callers get 503, never 401: an outage is not a bad token.
var ErrAuthUnavailable = errors.New("identity service unavailable")

// dbErr marks an error that came back from the store, so that an error the
// store did not classify is answered as a database failure (020002) rather
// than "anything else" (990001).
func dbErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", errDatabase, err)
}

// reply is what an error becomes: a status, an MSF error code, and the text
// (error_message for MSF, cause for ICC).
type reply struct {
	status  int
	code    string
	message string
}

// statusClientClosed is what the access log shows for a request whose client
// went away before the answer (nginx's 499); no client ever receives it.
const statusClientClosed = 499

// classify maps any error to its reply. The MSF status and error_code always
// pair as in the contract's error table (section 4).
func classify(err error) reply {
	var fe *FieldError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &fe):
		if fe.Syntax {
			return reply{http.StatusBadRequest, "010001", fe.Error()}
		}
		return reply{http.StatusBadRequest, "010002", fe.Error()}
	case errors.Is(err, errTooLarge):
		return reply{http.StatusRequestEntityTooLarge, "010003", errTooLarge.Error()}
	case errors.Is(err, ErrUnauthenticated):
		return reply{http.StatusUnauthorized, "990003", "Unauthorized"}
	case errors.Is(err, errForbidden):
		return reply{http.StatusForbidden, "990003", "Forbidden"}
	case errors.Is(err, ErrAuthUnavailable):
		return reply{http.StatusServiceUnavailable, "020001", "identity service unreachable"}
	case errors.Is(err, errNoSubscription):
		return reply{http.StatusNotFound, "030001", errNoSubscription.Error()}
	case errors.Is(err, store.ErrNotFound):
		return reply{http.StatusNotFound, "030001", "operation_id: no such operation"}
	case errors.Is(err, store.ErrConflict):
		return reply{http.StatusConflict, "030007", conflictMessage(err)}
	case errors.Is(err, store.ErrOutcomeUnknown):
		// The connection broke at or after COMMIT: see dataConsistency.
		return reply{http.StatusServiceUnavailable, "020001", "database unreachable: the write may or may not have been recorded"}
	case errors.Is(err, store.ErrUnavailable):
		return reply{http.StatusServiceUnavailable, "020001", "database unreachable"}
	case errors.Is(err, errBusy):
		// 503 pairs with 020001 in the contract's table; the message says
		// what it is.
		return reply{http.StatusServiceUnavailable, "020001", errBusy.Error()}
	case errors.Is(err, errDatabase):
		return reply{http.StatusInternalServerError, "020002", "database failure"}
	case errors.Is(err, errNoRoute):
		return reply{http.StatusNotFound, "030001", "path: no such resource"}
	case errors.Is(err, errNoMethod):
		// 405 has no row in the contract's table, and 990001 pairs with
		// 500 there: it gets a code of its own (openapi.yaml, MSFError).
		return reply{http.StatusMethodNotAllowed, "990002", "method: not allowed on this path"}
	case errors.As(err, &he):
		return classifyEcho(he)
	}
	return reply{http.StatusInternalServerError, "990001", "internal error"}
}

// classifyEcho maps the errors Echo itself raises (routing, binding).
func classifyEcho(he *echo.HTTPError) reply {
	switch he.Code {
	case http.StatusNotFound:
		return classify(errNoRoute)
	case http.StatusMethodNotAllowed:
		return classify(errNoMethod)
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return reply{http.StatusBadRequest, "010001", fmt.Sprintf("body: %v", he.Message)}
	}
	return reply{http.StatusInternalServerError, "990001", "internal error"}
}

// conflictMessage names the field and the reason of a refused transition.
func conflictMessage(err error) string {
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		return ce.Field + ": " + ce.Reason
	}
	return "status: the notification would move the record backwards"
}

// family tells which error body a path gets.
type family int

const (
	familyOther family = iota
	familyMSF
	familyICC
)

func familyOf(path string) family {
	switch {
	case strings.HasPrefix(path, "/v1/"):
		return familyMSF
	case strings.HasPrefix(path, "/v1.0/icc/"), strings.HasPrefix(path, "/v2.0/"):
		return familyICC
	}
	return familyOther
}

// msfError is gen.MSFError with its fields in the contract's order, which is
// the order people read them in.
type msfError struct {
	Code            string `json:"error_code"`
	Message         string `json:"error_message"`
	DataConsistency string `json:"data_consistency"`
}

// dataConsistency is the MSF body's data_consistency for err: "rolled back"
// for every refusal (nothing was changed), except when the database
// connection broke at or after COMMIT: then the write may have happened.
func dataConsistency(err error) gen.MSFErrorDataConsistency {
	if errors.Is(err, store.ErrOutcomeUnknown) {
		return gen.MSFErrorDataConsistencyUnknown
	}
	return gen.MSFErrorDataConsistencyRolledBack
}

// errorBody is the body of a refusal in the given family's format; dc is the
// MSF body's data_consistency.
func errorBody(f family, r reply, dc gen.MSFErrorDataConsistency) any {
	if f == familyMSF {
		return msfError{Code: r.code, Message: r.message, DataConsistency: string(dc)}
	}
	if r.status == http.StatusInternalServerError {
		// As the seed's example: the details are in the log, not the body.
		return gen.ICCError{Cause: http.StatusText(r.status)}
	}
	return gen.ICCError{Cause: r.message}
}

// errorHandler is the only place where an error becomes a status and a body.
// It serves as Echo's HTTPErrorHandler, as the request validator's error path
// and as the authentication middleware's, so all three answer alike. Server
// errors are logged here, once, with the request id; clients see only what the
// contract allows.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Request().Context().Err() != nil && !errors.Is(err, errBodyTimeout) {
		// The client went away (or the connection was cut at shutdown):
		// whatever failed then failed because of that, and nobody is there
		// to answer. Not a server error: the access log says 499. The
		// connection is aborted: returning would let net/http answer 200
		// with an empty body (or end a list cut short as if whole) to a
		// client that is in fact still reading, such as one that only
		// closed its side for writing.
		s.log.DebugContext(c.Request().Context(), "client went away",
			"request_id", requestID(c), "error", err)
		c.Response().Status = statusClientClosed
		panic(http.ErrAbortHandler)
	}
	if c.Response().Committed {
		s.log.ErrorContext(c.Request().Context(), "error after response started",
			"request_id", requestID(c), "error", err)
		if isBrokenStream(err) {
			// The 200 is out and the list is cut short: abort the connection
			// so the client cannot take a truncated list for a whole one.
			panic(http.ErrAbortHandler)
		}
		return
	}
	r := classify(err)
	s.metrics.countRefusal(c, r.status)
	if r.status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			"request_id", requestID(c), "method", c.Request().Method,
			"path", c.Request().URL.Path, "status", r.status, "error", err)
	}
	if errors.Is(err, errBusy) {
		c.Response().Header().Set("Retry-After", busyRetryAfter)
	}
	if r.status == http.StatusMethodNotAllowed {
		// Echo's router lists the routes' methods; HEAD is served
		// wherever GET is (ServeHTTP).
		h := c.Response().Header()
		if allow := h.Get(echo.HeaderAllow); strings.Contains(allow, http.MethodGet) && !strings.Contains(allow, http.MethodHead) {
			h.Set(echo.HeaderAllow, allow+", "+http.MethodHead)
		}
	}
	body := errorBody(familyOf(c.Request().URL.Path), r, dataConsistency(err))
	if c.Request().Method == http.MethodHead {
		err = c.NoContent(r.status)
	} else {
		err = c.JSON(r.status, body)
	}
	if err != nil {
		s.log.ErrorContext(c.Request().Context(), "writing error response",
			"request_id", requestID(c), "error", err)
	}
}
