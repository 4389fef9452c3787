package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"

	"example.com/opsvc/gen"
)

// validator checks every request against the embedded openapi.yaml before a
// handler runs: parameters with kin-openapi's openapi3filter, the body with
// the schema of its operation. It finds the operation from the route Echo
// already matched, so no second router runs.
type validator struct {
	routes map[string]*routers.Route // by method and Echo path
	opts   *openapi3filter.Options
}

// Operations whose handler must see the body's own bytes: request_body and
// error are stored byte for byte (RawMessage), which binding from the decoded
// value would re-encode.
var bindsRawBody = map[string]bool{"PutICCOperation": true}

func newValidator() (echo.MiddlewareFunc, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	v := &validator{
		routes: map[string]*routers.Route{},
		opts: &openapi3filter.Options{
			// The body is validated by validateBody, from the value
			// readBody decoded.
			ExcludeRequestBody: true,
			// Authentication happened already (authenticate); the spec's
			// security schemes document it, and the routes drop them.
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		},
	}
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			// /v1/operations/{operation_id} is /v1/operations/:operation_id to Echo.
			echoPath := pathParam.ReplaceAllString(path, ":$1")
			// Authentication happened already, so the route's copy of the
			// operation names no security requirement: with one,
			// ValidateRequest reads the whole body into a copy for the
			// (no-op) authentication function, a quarter of an A1
			// request's allocations.
			unsecured := *op
			unsecured.Security = &openapi3.SecurityRequirements{}
			v.routes[method+" "+echoPath] = &routers.Route{Spec: spec, Path: path, PathItem: item, Method: method, Operation: &unsecured}
		}
	}
	return v.middleware, nil
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func (v *validator) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		route := v.routes[r.Method+" "+c.Path()]
		if route == nil {
			// No such route: Echo's 404 or 405 answers it.
			return next(c)
		}
		params := make(map[string]string, len(c.ParamNames()))
		for i, name := range c.ParamNames() {
			value := c.ParamValues()[i]
			if r.URL.RawPath != "" {
				// Echo matched the escaped path, so the value is escaped.
				if u, err := url.PathUnescape(value); err == nil {
					value = u
				}
			}
			params[name] = value
		}
		if err := singleValued(r, route); err != nil {
			return err
		}
		in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: v.opts}
		if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
			return validationError(err)
		}
		if rb := route.Operation.RequestBody; rb != nil && rb.Value != nil {
			if err := validateBody(c, rb.Value, !bindsRawBody[route.Operation.OperationID]); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// singleValued refuses a query parameter given more than once (010002,
// naming it) unless its schema is an array: kin-openapi would check the first
// value only, and the generated binding refuses them all, naming no
// parameter.
func singleValued(r *http.Request, route *routers.Route) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	q := r.URL.Query()
	for _, params := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range params {
			v := p.Value
			if v == nil || v.In != openapi3.ParameterInQuery || len(q[v.Name]) < 2 {
				continue
			}
			if v.Schema != nil && v.Schema.Value != nil && v.Schema.Value.Type.Is(openapi3.TypeArray) {
				continue
			}
			return &FieldError{Field: v.Name, Reason: "must be given once"}
		}
	}
	return nil
}

// validateBody checks the decoded body against its operation's schema. A
// value of the wrong JSON type anywhere is reported first (010001), whatever
// else is wrong. With keep, the handler binds the validated value instead of
// decoding the body again; without, it decodes a body that holds only the
// members the schema names (exactMembers).
func validateBody(c echo.Context, rb *openapi3.RequestBody, keep bool) error {
	r := c.Request()
	value := c.Get(bodyValueKey)
	if value == nil { // no body, or null
		if rb.Required {
			return &FieldError{Field: "body", Reason: "is required"}
		}
		return nil
	}
	mt := rb.Content.Get(r.Header.Get(echo.HeaderContentType))
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return &FieldError{Field: "Content-Type", Reason: "must be application/json", Syntax: true}
	}
	schema := mt.Schema.Value
	if fe := checkTypes(schema, value); fe != nil {
		if fe.Field == "" {
			fe.Field = "body"
		}
		return fe
	}
	if err := schema.VisitJSON(value, openapi3.VisitAsRequest()); err != nil {
		var se *openapi3.SchemaError
		if errors.As(err, &se) {
			return schemaFieldError(se, "body")
		}
		return &FieldError{Field: "body", Reason: err.Error()}
	}
	if keep {
		r.Body = validatedBody{ReadCloser: r.Body, value: value}
		return nil
	}
	// The handler decodes the body again, with encoding/json, which matches
	// member names case-insensitively: "Operation_Status" or
	// "REQUEST_BODY" after the validated members would replace their
	// values unchecked. It gets only the members the schema names.
	text, _ := c.Get(bodyBytesKey).([]byte)
	b, err := exactMembers(text, schema.Properties)
	if err != nil {
		return &FieldError{Field: "body", Reason: "not JSON: " + err.Error(), Syntax: true}
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.ContentLength = int64(len(b))
	return nil
}

// exactMembers is body, a JSON object, with only the members named in
// props, spelled exactly, each with the text of its last value (the one the
// validator saw), whitespace aside. Only the top level is filtered: it is for
// bodies whose nested objects are bound as raw JSON text (RawMessage), which
// no member name can redirect.
func exactMembers(body []byte, props openapi3.Schemas) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, err
	}
	for name := range members {
		if _, ok := props[name]; !ok {
			delete(members, name)
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the values' text as sent: no \u003c for <
	if err := enc.Encode(members); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// validatedBody hands the validated value to the generated strict handler,
// which binds it (runtime.BindJSONValue) instead of decoding the body again.
type validatedBody struct {
	io.ReadCloser
	value any
}

// ValidatedValue is the body value that was validated.
func (b validatedBody) ValidatedValue() any { return b.value }

// checkTypes finds a value of the wrong JSON type (010001) anywhere in v, by
// schema s, before any other rule is checked: "status": 5 is a wrong type
// even though the field also has an enum. Null is left to the schema check
// (nullable). It returns the error with the field's path relative to v, and
// of several, the one whose path sorts first, so the answer does not depend
// on map order.
func checkTypes(s *openapi3.Schema, v any) *FieldError {
	if s == nil || v == nil {
		return nil
	}
	for _, sub := range s.AllOf {
		if fe := checkTypes(sub.Value, v); fe != nil {
			return fe
		}
	}
	if s.Type != nil && len(*s.Type) > 0 && !typeMatches(*s.Type, v) {
		return &FieldError{Reason: "must be " + typeNames(*s.Type), Syntax: true}
	}
	switch v := v.(type) {
	case map[string]any:
		var first *FieldError
		for name, p := range s.Properties {
			pv, ok := v[name]
			if !ok || p == nil {
				continue
			}
			if fe := checkTypes(p.Value, pv); fe != nil {
				fe.Field = joinField(name, fe.Field)
				if first == nil || fe.Field < first.Field {
					first = fe
				}
			}
		}
		return first
	case []any:
		if s.Items == nil {
			return nil
		}
		for i, item := range v {
			if fe := checkTypes(s.Items.Value, item); fe != nil {
				fe.Field = joinField("["+strconv.Itoa(i)+"]", fe.Field)
				return fe
			}
		}
	}
	return nil
}

// joinField names field inside parent: rollbacks and occurred_time are
// rollbacks.occurred_time; target_clusters and [0].cluster_id are
// target_clusters[0].cluster_id.
func joinField(parent, field string) string {
	switch {
	case field == "":
		return parent
	case field[0] == '[':
		return parent + field
	}
	return parent + "." + field
}

// typeMatches reports whether v, as decoded by decodeJSON, is of one of the
// JSON types. An integer is an integer literal: 200.0 and 2e2 are not.
func typeMatches(types openapi3.Types, v any) bool {
	for _, t := range types {
		switch v := v.(type) {
		case string:
			if t == openapi3.TypeString {
				return true
			}
		case bool:
			if t == openapi3.TypeBoolean {
				return true
			}
		case map[string]any:
			if t == openapi3.TypeObject {
				return true
			}
		case []any:
			if t == openapi3.TypeArray {
				return true
			}
		case json.Number:
			if t == openapi3.TypeNumber {
				return true
			}
			if t == openapi3.TypeInteger {
				if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
					return true
				}
			}
		}
	}
	return false
}

func typeNames(types openapi3.Types) string {
	names := make([]string, len(types))
	for i, t := range types {
		switch t {
		case openapi3.TypeObject, openapi3.TypeArray, openapi3.TypeInteger:
			names[i] = "an " + t
		default:
			names[i] = "a " + t
		}
	}
	return strings.Join(names, " or ")
}

// validationError turns a kin-openapi refusal of a parameter into the error
// the contract wants: the parameter's name and the reason; a wrong type is
// 010001, anything else 010002.
func validationError(err error) error {
	if me, ok := err.(openapi3.MultiError); ok && len(me) > 0 {
		err = me[0]
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
		return schemaFieldError(schemaErr, field)
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return &FieldError{Field: field, Reason: "is required"}
	case errors.Is(re.Err, openapi3filter.ErrInvalidEmptyValue):
		return &FieldError{Field: field, Reason: "must not be empty"}
	case errors.As(re.Err, &parseErr):
		return &FieldError{Field: field, Reason: "cannot be parsed: " + parseErr.Error(), Syntax: true}
	}
	reason := re.Reason
	if reason == "" && re.Err != nil {
		reason = re.Err.Error()
	}
	return &FieldError{Field: field, Reason: reason}
}

// schemaFieldError names the field of a schema refusal by its path within
// the value (field when the value itself is refused).
func schemaFieldError(e *openapi3.SchemaError, field string) *FieldError {
	if p := fieldPath(e.JSONPointer()); p != "" {
		field = p
	}
	// An allOf refusal (a time with a description of its own) says only
	// "doesn't match all schemas from allOf"; the part it failed says why.
	for e.SchemaField == "allOf" {
		var part *openapi3.SchemaError
		if !errors.As(e.Origin, &part) {
			break
		}
		e = part
	}
	return &FieldError{Field: field, Reason: schemaReason(e), Syntax: e.SchemaField == "type"}
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

// Times are stored as DATETIME, whose range on MySQL and MariaDB is the
// years 1000 to 9999: outside it one database refuses what the other stores.
const minYear = 1000

// parseMSFTime is the one place an MSF time is checked (010002).
func parseMSFTime(field, s string) (time.Time, error) {
	t, err := time.Parse(msfTimeLayout, strings.Replace(s, " ", "_", 1))
	if err != nil || t.Year() < minYear {
		return time.Time{}, &FieldError{Field: field, Reason: "not a real date and time in the form YYYYMMDD_hhmmss"}
	}
	return t, nil
}

func formatMSFTime(t time.Time) string { return t.UTC().Format(msfTimeLayout) }

// parseOptionalMSFTime is parseMSFTime for the times a notification may omit.
func parseOptionalMSFTime(field string, s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := parseMSFTime(field, *s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func formatOptionalMSFTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := formatMSFTime(*t)
	return &s
}

// parseICCTime is the one place an ICC time is checked.
func parseICCTime(field, s string) (time.Time, error) {
	t, err := time.Parse(iccTimeLayout, s)
	if err != nil || t.Year() < minYear {
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
	gen.PhasePrepareConnection:    gen.OrderTypeCreate,
	gen.PhaseApproveConnection:    gen.OrderTypeCreate,
	gen.PhaseDisapproveConnection: gen.OrderTypeCreate,
	gen.PhaseUpdateConnection:     gen.OrderTypeUpdate,
	gen.PhaseDeleteConnection:     gen.OrderTypeDelete,
}

// checkICCOperation holds the B2 rules the schema cannot express.
func checkICCOperation(op *gen.ICCOperationWrite) error {
	if want := phaseOrder[op.Phase]; want != op.OrderType {
		return &FieldError{Field: "phase", Reason: fmt.Sprintf("%s belongs to order_type %s, not %s", op.Phase, want, op.OrderType)}
	}
	terminal := op.OperationStatus == gen.OperationStatusComplete || op.OperationStatus == gen.OperationStatusError
	switch {
	case op.Error != nil && op.OperationStatus != gen.OperationStatusError:
		return &FieldError{Field: "error", Reason: "is allowed only when operation_status is error"}
	case terminal && op.CommitDatetime == nil:
		return &FieldError{Field: "commit_datetime", Reason: "is required when operation_status is " + string(op.OperationStatus)}
	case !terminal && op.CommitDatetime != nil:
		return &FieldError{Field: "commit_datetime", Reason: "must be absent or null while operation_status is processing"}
	}
	return nil
}
