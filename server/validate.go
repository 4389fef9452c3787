package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	middleware "github.com/oapi-codegen/nethttp-middleware"

	"example.com/opsvc/gen"
)

// MaxBodyBytes is the largest request body accepted: 4 MiB, inclusive. A
// larger one is answered 413 (010003) before anything parses it.
const MaxBodyBytes = 4 << 20

// readBody reads the whole request body, at most MaxBodyBytes of it, whether
// it comes with a Content-Length or chunked, and refuses a body that is not
// one JSON value (010001), such as `{...} {}`: kin-openapi's decoder would
// stop at the first value and ignore the rest.
func readBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		if r.ContentLength > MaxBodyBytes {
			return errTooLarge
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			// The client went away or ran past the server's ReadTimeout.
			return &FieldError{Field: "body", Reason: "could not be read", Syntax: true}
		}
		if len(b) > MaxBodyBytes {
			return errTooLarge
		}
		if len(b) > 0 {
			if err := json.Unmarshal(b, new(json.RawMessage)); err != nil {
				return &FieldError{Field: "body", Reason: "not JSON: " + err.Error(), Syntax: true}
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		return next(c)
	}
}

// newValidator builds the middleware that checks every request against the
// embedded openapi.yaml before a handler runs. Its refusals go through
// validationError to the one error handler.
func newValidator() (echo.MiddlewareFunc, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	// kin-openapi would otherwise match the Host header against `servers` and
	// refuse valid requests (oapi-codegen issue #882).
	spec.Servers = nil
	mw := middleware.OapiRequestValidatorWithOptions(spec, &middleware.Options{
		Options: openapi3filter.Options{
			// Authentication happened already (authenticate); the spec's
			// security schemes document it.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
		ErrorHandlerWithOpts: func(ctx context.Context, err error, w http.ResponseWriter, r *http.Request, _ middleware.ErrorHandlerOpts) {
			// Hand the error back to the Echo chain, which answers it.
			*errSlot(ctx) = validationError(err)
		},
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			var failed error
			r := c.Request()
			r = r.WithContext(context.WithValue(r.Context(), errSlotKey{}, &failed))
			var nextErr error
			mw(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				c.SetRequest(r)
				nextErr = next(c)
			})).ServeHTTP(c.Response(), r)
			if failed != nil {
				return failed
			}
			return nextErr
		}
	}, nil
}

type errSlotKey struct{}

func errSlot(ctx context.Context) *error { return ctx.Value(errSlotKey{}).(*error) }

// validationError turns a kin-openapi refusal into the error the contract
// wants: the field by its path (target_clusters[0].cluster_id) or the
// parameter's name, and the reason; a wrong JSON type is 010001, anything
// else 010002.
func validationError(err error) error {
	if me, ok := err.(openapi3.MultiError); ok && len(me) > 0 {
		err = me[0]
	}
	switch {
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return errNoMethod
	case errors.Is(err, routers.ErrPathNotFound):
		return errNoRoute
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		var se *openapi3filter.SecurityRequirementsError
		if errors.As(err, &se) {
			return ErrUnauthenticated
		}
		return err
	}
	field := "body"
	if re.Parameter != nil {
		field = re.Parameter.Name
	}
	var schemaErr *openapi3.SchemaError
	var parseErr *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &schemaErr):
		if p := fieldPath(schemaErr.JSONPointer()); p != "" {
			field = p
		}
		return &FieldError{Field: field, Reason: schemaReason(schemaErr), Syntax: schemaErr.SchemaField == "type"}
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return &FieldError{Field: field, Reason: "is required"}
	case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		return &FieldError{Field: field, Reason: "must not be empty"}
	case errors.As(re.Err, &parseErr):
		return &FieldError{Field: field, Reason: "cannot be parsed: " + parseErr.Error(), Syntax: true}
	case re.Err == nil && re.RequestBody != nil:
		// The Content-Type is not application/json.
		return &FieldError{Field: "Content-Type", Reason: "must be application/json", Syntax: true}
	}
	reason := re.Reason
	if reason == "" && re.Err != nil {
		reason = re.Err.Error()
	}
	return &FieldError{Field: field, Reason: reason}
}

// schemaReason is kin-openapi's reason, which never quotes the value.
func schemaReason(e *openapi3.SchemaError) string {
	if e.SchemaField == "nullable" {
		return "must not be null"
	}
	return e.Reason
}

// fieldPath writes a JSON pointer the way error messages name fields:
// ["target_clusters", "0", "cluster_id"] is target_clusters[0].cluster_id.
func fieldPath(pointer []string) string {
	var b strings.Builder
	for _, p := range pointer {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Times. MSF times are YYYYMMDD_hhmmss; the seed's space form is accepted
// too. ICC times are YYYY-MM-DD HH:MM:SS, UTC. Both must be real dates and
// times: time.Parse refuses month 13, February 30 and hour 24.
const (
	msfTimeLayout = "20060102_150405"
	iccTimeLayout = "2006-01-02 15:04:05"
)

// parseMSFTime is the one place an MSF time is checked (010002).
func parseMSFTime(field, s string) (time.Time, error) {
	t, err := time.Parse(msfTimeLayout, strings.Replace(s, " ", "_", 1))
	if err != nil {
		return time.Time{}, &FieldError{Field: field, Reason: "not a real date and time in the form YYYYMMDD_hhmmss"}
	}
	return t, nil
}

func formatMSFTime(t time.Time) string { return t.UTC().Format(msfTimeLayout) }

// parseICCTime is the one place an ICC time is checked.
func parseICCTime(field, s string) (time.Time, error) {
	t, err := time.Parse(iccTimeLayout, s)
	if err != nil {
		return time.Time{}, &FieldError{Field: field, Reason: "not a real date and time in the form YYYY-MM-DD HH:MM:SS"}
	}
	return t, nil
}

func formatICCTime(t time.Time) string { return t.UTC().Format(iccTimeLayout) }

// checkOperation holds the A1 rules the schema cannot express.
func checkOperation(pathID string, op *gen.Operation) error {
	if op.OperationId != pathID {
		return &FieldError{Field: "operation_id", Reason: "does not match the operation_id of the path"}
	}
	if (op.Status == gen.StatusCompleted || op.Status == gen.StatusFailed) && op.Response == nil {
		return &FieldError{Field: "response", Reason: "is required when status is " + string(op.Status)}
	}
	return nil
}

// phaseOrder is which order type each phase belongs to.
var phaseOrder = map[gen.Phase]gen.OrderType{
	gen.PrepareConnection:    gen.Create,
	gen.ApproveConnection:    gen.Create,
	gen.DisapproveConnection: gen.Create,
	gen.UpdateConnection:     gen.Update,
	gen.DeleteConnection:     gen.Delete,
}

// checkICCOperation holds the B2 rules the schema cannot express.
func checkICCOperation(op *gen.ICCOperationWrite) error {
	if want := phaseOrder[op.Phase]; want != op.OrderType {
		return &FieldError{Field: "phase", Reason: fmt.Sprintf("%s belongs to order_type %s, not %s", op.Phase, want, op.OrderType)}
	}
	terminal := op.OperationStatus == gen.Complete || op.OperationStatus == gen.Error
	switch {
	case terminal && op.CommitDatetime == nil:
		return &FieldError{Field: "commit_datetime", Reason: "is required when operation_status is " + string(op.OperationStatus)}
	case !terminal && op.CommitDatetime != nil:
		return &FieldError{Field: "commit_datetime", Reason: "must be absent or null while operation_status is processing"}
	}
	return nil
}
