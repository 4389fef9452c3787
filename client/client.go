package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Client calls the Operations Service. Its methods answer the decoded model,
// or an *Error when the service refused (any status but the operation's
// success), or another error when the service could not be reached or its
// answer could not be read.
type Client struct {
	raw *RawClient
}

// New returns a Client of the service at endpoint (e.g.
// http://localhost:8080). opts are the generated options (WithHTTPClient,
// WithRequestEditorFn) and WithToken.
func New(endpoint string, opts ...ClientOption) (*Client, error) {
	raw, err := NewClient(endpoint, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{raw: raw}, nil
}

// WithToken sends token in X-Auth-Token with every request: a Keystone token,
// or one of the service's static tokens file.
func WithToken(token string) ClientOption {
	return WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		return nil
	})
}

// Raw is the generated client underneath, for what Client does not cover.
func (c *Client) Raw() *RawClient { return c.raw }

// Error is a refusal: an answer with a status other than the operation's
// success. The MSF family fills Code, Message and DataConsistency; the ICC
// family fills Message (its cause).
type Error struct {
	StatusCode      int
	Code            string // MSF error_code, e.g. 030007
	Message         string // MSF error_message, or ICC cause
	DataConsistency string // MSF data_consistency: "rolled back", or "unknown" when the write may have happened
	RequestID       string // X-Request-Id, to find the request in the service's log
	Body            []byte // the answer as received
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.DataConsistency != "" && e.DataConsistency != string(MSFErrorDataConsistencyRolledBack) {
		fmt.Fprintf(&b, " (data_consistency: %s)", e.DataConsistency)
	}
	return b.String()
}

// IsNotFound reports whether err is the service's 404: no such operation, or
// one of another tenant.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// GetOperation answers an MSF operation (GET /v1/operations/{id}).
func (c *Client) GetOperation(ctx context.Context, id string) (*Operation, error) {
	var op Operation
	if err := decode(c.raw.GetOperation(ctx, id, nil))(http.StatusOK, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// WaitOperation is GetOperation that waits, up to d (at most a minute), for
// the operation to become terminal (GET /v1/operations/{id}?wait=d): the
// answer comes as soon as it is, or once d has passed, with the record as it
// is then. d below a millisecond reads at once.
func (c *Client) WaitOperation(ctx context.Context, id string, d time.Duration) (*Operation, error) {
	var op Operation
	if err := decode(c.raw.GetOperation(ctx, id, &GetOperationParams{Wait: waitParam(d)}))(http.StatusOK, &op); err != nil {
		return nil, err
	}
	return &op, nil
}

// waitParam is d as the wait parameter: whole milliseconds, at most 60 s;
// nil below a millisecond.
func waitParam(d time.Duration) *Wait {
	d = min(d, time.Minute)
	if d < time.Millisecond {
		return nil
	}
	w := Wait(strconv.FormatInt(d.Milliseconds(), 10) + "ms")
	return &w
}

// PutOperation records an MSF operation result notification (PUT
// /v1/operations/{id}, id being op.OperationId).
func (c *Client) PutOperation(ctx context.Context, op *Operation) error {
	return decode(c.raw.PutOperation(ctx, op.OperationId, *op))(http.StatusOK, nil)
}

// PutOperationJSON sends body, a notification's JSON, as it is: what the
// service stores is exactly what was read.
func (c *Client) PutOperationJSON(ctx context.Context, id string, body io.Reader) error {
	return decode(c.raw.PutOperationWithBody(ctx, id, "application/json", body))(http.StatusOK, nil)
}

// ListOperationIDs answers the ids of every MSF operation (GET
// /v1/operations?format=list), by occurred_time then id.
func (c *Client) ListOperationIDs(ctx context.Context) ([]string, error) {
	format := ListOperationsParamsFormatList
	var l struct {
		IDs *[]string `json:"operation_ids"`
	}
	if err := decode(c.raw.ListOperations(ctx, &ListOperationsParams{Format: &format}))(http.StatusOK, &l); err != nil {
		return nil, err
	}
	// An answer of the other shape has no operation_ids: it is an error,
	// not an empty list.
	if l.IDs == nil {
		return nil, errors.New("GET /v1/operations?format=list: the answer has no operation_ids")
	}
	return *l.IDs, nil
}

// ListOperationDetails answers every MSF operation without its body strings
// (GET /v1/operations?format=detail-list), by occurred_time then id.
func (c *Client) ListOperationDetails(ctx context.Context) ([]OperationSummary, error) {
	format := ListOperationsParamsFormatDetailList
	var l struct {
		Operations *[]OperationSummary `json:"operations"`
	}
	if err := decode(c.raw.ListOperations(ctx, &ListOperationsParams{Format: &format}))(http.StatusOK, &l); err != nil {
		return nil, err
	}
	if l.Operations == nil {
		return nil, errors.New("GET /v1/operations?format=detail-list: the answer has no operations")
	}
	return *l.Operations, nil
}

// ListICCOperations answers the token's tenant's connection operations that
// match params (GET /v1.0/icc/operations); params may be nil.
func (c *Client) ListICCOperations(ctx context.Context, params *ListICCOperationsParams) ([]ICCOperation, error) {
	var l ICCOperationList
	if err := decode(c.raw.ListICCOperations(ctx, params))(http.StatusOK, &l); err != nil {
		return nil, err
	}
	return l.Operations, nil
}

// PutICCOperation records a connection operation (PUT
// /v1.0/icc/operations/{id}; an admin token). created is true when it was
// new (201), false when it replaced one (200).
func (c *Client) PutICCOperation(ctx context.Context, id string, op *ICCOperationWrite) (rec *ICCOperationRecord, created bool, err error) {
	return putICC(c.raw.PutICCOperation(ctx, id, *op))
}

// PutICCOperationJSON is PutICCOperation with the body's JSON sent as it is.
func (c *Client) PutICCOperationJSON(ctx context.Context, id string, body io.Reader) (rec *ICCOperationRecord, created bool, err error) {
	return putICC(c.raw.PutICCOperationWithBody(ctx, id, "application/json", body))
}

func putICC(resp *http.Response, err error) (*ICCOperationRecord, bool, error) {
	var rec ICCOperationRecord
	if err := decode(resp, err)(http.StatusOK, &rec, http.StatusCreated); err != nil {
		return nil, false, err
	}
	return &rec, resp.StatusCode == http.StatusCreated, nil
}

// ListICCOperationsV2 answers the token's tenant's connection operations in
// ICC API v2.0's shape (GET /v2.0/operations); params may be nil.
func (c *Client) ListICCOperationsV2(ctx context.Context, params *ListICCOperationsV2Params) ([]ICCOperationV2, error) {
	var l ICCOperationV2List
	if err := decode(c.raw.ListICCOperationsV2(ctx, params))(http.StatusOK, &l); err != nil {
		return nil, err
	}
	return l.Operations, nil
}

// GetICCOperationV2 answers one connection operation (GET
// /v2.0/operations/{id}); another tenant's is not found.
func (c *Client) GetICCOperationV2(ctx context.Context, id string) (*ICCOperationV2, error) {
	var s ICCOperationV2Show
	if err := decode(c.raw.GetICCOperationV2(ctx, id, nil))(http.StatusOK, &s); err != nil {
		return nil, err
	}
	return &s.Operation, nil
}

// WaitICCOperationV2 is GetICCOperationV2 that waits, up to d (at most a
// minute), for the operation to become terminal, as WaitOperation does.
func (c *Client) WaitICCOperationV2(ctx context.Context, id string, d time.Duration) (*ICCOperationV2, error) {
	var s ICCOperationV2Show
	if err := decode(c.raw.GetICCOperationV2(ctx, id, &GetICCOperationV2Params{Wait: waitParam(d)}))(http.StatusOK, &s); err != nil {
		return nil, err
	}
	return &s.Operation, nil
}

// decode returns a function that reads the answer: into v (JSON; nil: no body
// is expected) when its status is want or one of more, else into an *Error.
// It always closes the body.
func decode(resp *http.Response, err error) func(want int, v any, more ...int) error {
	return func(want int, v any, more ...int) error {
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		method, path := resp.Request.Method, resp.Request.URL.Path
		ok := resp.StatusCode == want
		for _, s := range more {
			ok = ok || resp.StatusCode == s
		}
		if !ok {
			return refusal(resp)
		}
		if v == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			return nil
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
			return fmt.Errorf("%s %s: answer %d is %q, not JSON", method, path, resp.StatusCode, mt)
		}
		// Lists are streamed: decode as they arrive rather than read them whole.
		dec := json.NewDecoder(resp.Body)
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
		}
		return nil
	}
}

// refusal reads an error answer of either family.
func refusal(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"), Body: body}
	var b struct {
		ErrorCode       string `json:"error_code"`
		ErrorMessage    string `json:"error_message"`
		DataConsistency string `json:"data_consistency"`
		Cause           string `json:"cause"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Code, e.Message, e.DataConsistency = b.ErrorCode, b.ErrorMessage, b.DataConsistency
		if b.Cause != "" {
			e.Message = b.Cause
		}
	} else {
		e.Message = strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
	}
	return e
}
