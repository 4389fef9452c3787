package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"

	"example.com/opsvc/client"
	"example.com/opsvc/internal/spectest"
)

// client returns a Go client (package client) of the service, with token,
// that checks every answer against openapi.yaml as do does.
func (s *service) client(tb testing.TB, token string) *client.Client {
	tb.Helper()
	c, err := client.New(s.URL, client.WithHTTPClient(checkedDoer{tb}), client.WithToken(token))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// checkedDoer sends a request and checks its answer against openapi.yaml.
type checkedDoer struct{ tb testing.TB }

func (d checkedDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	spectest.Check(d.tb, req, resp, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// asDoc is v as a JSON document, for comparing a decoded answer with the
// document that was sent.
func asDoc(tb testing.TB, v any) doc {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var d doc
	if err := json.Unmarshal(b, &d); err != nil {
		tb.Fatal(err)
	}
	return d
}

// jsonBody is d's JSON, for the client's *JSON methods.
func jsonBody(tb testing.TB, d doc) io.Reader {
	tb.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.NewReader(b)
}

// wantClientError checks that err is the service's refusal with status and,
// when code is set, that MSF error_code.
func wantClientError(tb testing.TB, err error, status int, code string) *client.Error {
	tb.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != status || e.Code != code {
		tb.Fatalf("want a %d %s refusal, got %v", status, code, err)
	}
	return e
}

// TestClient_MSF drives the MSF family through the Go client.
func TestClient_MSF(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	ctx := context.Background()
	c := s.client(t, "")

	in := notification("cl-1")
	if err := c.PutOperationJSON(ctx, "cl-1", jsonBody(t, in)); err != nil {
		t.Fatal(err)
	}
	op, err := c.GetOperation(ctx, "cl-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := asDoc(t, op); !reflect.DeepEqual(got, clone(in)) {
		t.Fatalf("GetOperation\n got: %v\nwant: %v", got, in)
	}
	if op.Status != client.StatusFailed || op.Request.Method != client.MethodPOST {
		t.Fatalf("typed fields: %s %s", op.Status, op.Request.Method)
	}

	// The typed way: the decoded operation sent back is a repeat (200).
	if err := c.PutOperation(ctx, op); err != nil {
		t.Fatalf("repeat of the stored record: %v", err)
	}
	back := *op
	back.Status = client.StatusExecuting
	e := wantClientError(t, c.PutOperation(ctx, &back), 409, "030007")
	if e.DataConsistency != "rolled back" || e.RequestID == "" {
		t.Fatalf("refusal %+v", e)
	}
	if _, err := c.GetOperation(ctx, "cl-none"); !client.IsNotFound(err) {
		t.Fatalf("unknown id: %v, want not found", err)
	}
	wantClientError(t, c.PutOperationJSON(ctx, "cl-2", jsonBody(t, edit(minimal("cl-2", "executing", "20261123_100000"), "status", "done"))), 400, "010002")

	ids, err := c.ListOperationIDs(ctx)
	if err != nil || !reflect.DeepEqual(ids, []string{"cl-1"}) {
		t.Fatalf("ListOperationIDs: %v, %v", ids, err)
	}
	details, err := c.ListOperationDetails(ctx)
	if err != nil || len(details) != 1 || details[0].OperationId != "cl-1" || details[0].Status != client.StatusFailed {
		t.Fatalf("ListOperationDetails: %v, %v", details, err)
	}

	// An MSF caller outside the allow-list needs an admin token.
	refused := mustRunMain(t, map[string]string{"MSF_ALLOWED_CIDRS": "192.0.2.0/24"})
	_, err = refused.client(t, tokenA).GetOperation(ctx, "cl-1")
	wantClientError(t, err, 403, "990003")
	if _, err := refused.client(t, adminToken).ListOperationIDs(ctx); err != nil {
		t.Fatalf("admin token: %v", err)
	}
}

// TestClient_ICC drives both ICC views through the Go client.
func TestClient_ICC(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	ctx := context.Background()
	admin, a, b := s.client(t, adminToken), s.client(t, tokenA), s.client(t, tokenB)

	first := iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-20 09:00:00")
	rec, created, err := admin.PutICCOperationJSON(ctx, "ci-1", jsonBody(t, first))
	if err != nil || !created || rec.OperationStatus != client.OperationStatusProcessing || rec.CommitDatetime != nil {
		t.Fatalf("create: %+v, %v, %v", rec, created, err)
	}
	var w client.ICCOperationWrite
	if err := json.Unmarshal(must(json.Marshal(iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00"))), &w); err != nil {
		t.Fatal(err)
	}
	rec, created, err = admin.PutICCOperation(ctx, "ci-1", &w)
	if err != nil || created || rec.OperationStatus != client.OperationStatusComplete || rec.CommitDatetime == nil {
		t.Fatalf("replace: %+v, %v, %v", rec, created, err)
	}
	if _, _, err := admin.PutICCOperationJSON(ctx, "ci-2", jsonBody(t, iccOp(connA2, tenantA, "update_connection", "processing", "2026-11-21 09:00:00"))); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.PutICCOperation(ctx, "ci-3", &w)
	wantClientError(t, err, 403, "")

	latest := client.ListICCOperationsParamsLatestTrue
	update := client.OrderTypeUpdate
	for _, tt := range []struct {
		name   string
		params *client.ListICCOperationsParams
		want   []string
	}{
		{"all", nil, []string{"ci-1", "ci-2"}},
		{"order_type", &client.ListICCOperationsParams{OrderType: &update}, []string{"ci-2"}},
		{"latest", &client.ListICCOperationsParams{Latest: &latest}, []string{"ci-1", "ci-2"}},
	} {
		ops, err := a.ListICCOperations(ctx, tt.params)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var ids []string
		for _, op := range ops {
			ids = append(ids, op.OperationId)
		}
		if !reflect.DeepEqual(ids, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, ids, tt.want)
		}
	}
	if ops, err := b.ListICCOperations(ctx, nil); err != nil || len(ops) != 0 {
		t.Fatalf("another tenant: %v, %v", ops, err)
	}

	v2, err := a.ListICCOperationsV2(ctx, &client.ListICCOperationsV2Params{RequestType: &update})
	if err != nil || len(v2) != 1 || v2[0].Id != "ci-2" || v2[0].ResourceType != client.ResourceTypeAwsConnection {
		t.Fatalf("ListICCOperationsV2: %+v, %v", v2, err)
	}
	show, err := a.GetICCOperationV2(ctx, "ci-1")
	if err != nil || show.Id != "ci-1" || string(show.Error) != "{}" || show.ResourceId.String() != connA1 {
		t.Fatalf("GetICCOperationV2: %+v, %v", show, err)
	}
	if _, err := b.GetICCOperationV2(ctx, "ci-1"); !client.IsNotFound(err) {
		t.Fatalf("another tenant's operation: %v, want not found", err)
	}
	e := wantClientError(t, func() error { _, err := s.client(t, "").ListICCOperations(ctx, nil); return err }(), 401, "")
	if e.Message != "Unauthorized" {
		t.Fatalf("cause %q", e.Message)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
