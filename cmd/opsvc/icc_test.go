package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const (
	connA1 = "a80c1728-cc0c-11e6-8080-525400060300"
	connA2 = "b1c2d3e4-0000-4000-8000-000000000002"
	connB1 = "c0ffee00-1111-4222-8333-444455556666"
)

// iccOp is a valid B2 body.
func iccOp(conn, tenant, phase, status, reception string) doc {
	order := map[string]string{
		"prepare_connection": "Create", "approve_connection": "Create", "disapprove_connection": "Create",
		"update_connection": "Update", "delete_connection": "Delete",
	}[phase]
	d := doc{
		"connection_id":      conn,
		"tenant_id":          tenant,
		"order_type":         order,
		"phase":              phase,
		"operation_status":   status,
		"reception_datetime": reception,
		"request_body":       doc{"connection": doc{"name": "hoge", "bandwidth": "100", "tenant_id": tenant}},
	}
	if status != "processing" {
		d["commit_datetime"] = reception
	}
	return d
}

func putICC(tb testing.TB, s *service, id string, body any, token string) result {
	tb.Helper()
	return s.do(tb, http.MethodPut, "/v1.0/icc/operations/"+id, body, "X-Auth-Token", token)
}

// listICC lists with a query and returns the operation ids in order.
func listICC(tb testing.TB, s *service, query, token string) []string {
	tb.Helper()
	return listIDs(tb, s, "/v1.0/icc/operations"+query, "operation_id", token)
}

// listIDs lists path and returns each item's idKey, in order.
func listIDs(tb testing.TB, s *service, path, idKey, token string) []string {
	tb.Helper()
	r := s.do(tb, http.MethodGet, path, nil, "X-Auth-Token", token)
	wantStatus(tb, r, 200)
	var l struct{ Operations []doc }
	if err := json.Unmarshal(r.body, &l); err != nil {
		tb.Fatal(err)
	}
	ids := []string{}
	for _, op := range l.Operations {
		ids = append(ids, op[idKey].(string))
	}
	return ids
}

func TestICC_auth(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	wantStatus(t, putICC(t, s, "auth1", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), adminToken), 201)
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		token  string
		status int
		cause  string
	}{
		{"list without a token", "GET", "/v1.0/icc/operations", nil, "", 401, "Unauthorized"},
		{"list with an unknown token", "GET", "/v1.0/icc/operations", nil, "nope", 401, "Unauthorized"},
		{"list with a long Fernet-like token", "GET", "/v1.0/icc/operations", nil, strings.Repeat("gAAAAA", 40), 401, "Unauthorized"},
		{"write without a token", "PUT", "/v1.0/icc/operations/auth2", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "", 401, "Unauthorized"},
		{"write by a tenant", "PUT", "/v1.0/icc/operations/auth2", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), tokenA, 403, "Forbidden"},
		{"bad query before the token is checked is still 401", "GET", "/v1.0/icc/operations?order_type=x", nil, "", 401, "Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.token != "" {
				hdr = []string{"X-Auth-Token", tt.token}
			}
			r := s.do(t, tt.method, tt.path, tt.body, hdr...)
			wantICCError(t, r, tt.status, tt.cause)
		})
	}
	t.Run("the token never reaches the logs", func(t *testing.T) {
		s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", "secret-token-value")
		s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tokenA)
		if l := s.logs.String(); strings.Contains(l, "secret-token-value") || strings.Contains(l, tokenA) {
			t.Fatal("a token was logged")
		}
	})
	t.Run("unknown path under /v1.0/icc/ answers a cause", func(t *testing.T) {
		_, r := s.send(t, "GET", "/v1.0/icc/nothing", nil, "X-Auth-Token", tokenA)
		wantICCError(t, r, 404, "no such resource")
	})
}

func TestICC_PutICCOperation(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	t.Run("create is 201 with the stored item, replace is 200", func(t *testing.T) {
		in := iccOp(strings.ToUpper(connA1), tenantA, "approve_connection", "complete", "2016-12-27 08:15:41")
		in["commit_datetime"] = "2016-12-27 08:39:55"
		r := putICC(t, s, "w1", in, adminToken)
		wantStatus(t, r, 201)
		var got doc
		_ = json.Unmarshal(r.body, &got)
		want := clone(in)
		want["connection_id"] = connA1 // stored in lower case
		want["operation_id"] = "w1"
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
		in["request_body"] = doc{"connection": doc{"name": "changed"}}
		r = putICC(t, s, "w1", in, adminToken)
		wantStatus(t, r, 200)
		_ = json.Unmarshal(r.body, &got)
		if !reflect.DeepEqual(got["request_body"], clone(in)["request_body"]) {
			t.Fatalf("replace did not store the new body: %s", r.body)
		}
	})
	t.Run("processing answers a null commit_datetime", func(t *testing.T) {
		in := iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")
		in["commit_datetime"] = nil
		r := putICC(t, s, "w2", in, adminToken)
		wantStatus(t, r, 201)
		var got doc
		_ = json.Unmarshal(r.body, &got)
		if v, ok := got["commit_datetime"]; !ok || v != nil {
			t.Fatalf("commit_datetime: want null, got %s", r.body)
		}
	})
	transitions := []struct {
		name     string
		from, to string
		status   int
	}{
		{"processing to complete", "processing", "complete", 200},
		{"processing to error", "processing", "error", 200},
		{"processing to processing", "processing", "processing", 200},
		{"complete to processing is refused", "complete", "processing", 409},
		{"error to processing is refused", "error", "processing", 409},
		{"complete to error is refused", "complete", "error", 409},
		{"error to complete is refused", "error", "complete", 409},
		{"complete to complete replaces", "complete", "complete", 200},
	}
	for i, tt := range transitions {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("tr%d", i)
			wantStatus(t, putICC(t, s, id, iccOp(connA2, tenantA, "update_connection", tt.from, "2026-11-23 10:00:00"), adminToken), 201)
			r := putICC(t, s, id, iccOp(connA2, tenantA, "update_connection", tt.to, "2026-11-23 10:00:01"), adminToken)
			if tt.status == 409 {
				wantICCError(t, r, 409, "operation_status")
				return
			}
			wantStatus(t, r, tt.status)
		})
	}
	refusals := []struct {
		name  string
		body  any
		cause string
	}{
		{"connection_id missing", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "connection_id", del), "connection_id"},
		{"connection_id not a UUID", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "connection_id", "conn-1"), "connection_id"},
		{"tenant_id missing", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "tenant_id", del), "tenant_id"},
		{"tenant_id over 64", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "tenant_id", strings.Repeat("t", 65)), "tenant_id"},
		{"order_type not in enum", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "order_type", "create"), "order_type"},
		{"phase not in enum", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "phase", "prepare"), "phase"},
		{"operation_status missing", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "operation_status", del), "operation_status"},
		{"reception_datetime missing", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "reception_datetime", del), "reception_datetime"},
		{"reception_datetime impossible", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-02-30 10:00:00"), "reception_datetime"},
		{"reception_datetime in MSF form", iccOp(connA1, tenantA, "prepare_connection", "processing", "20261123_100000"), "reception_datetime"},
		{"request_body missing", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "request_body", del), "request_body"},
		{"request_body not an object", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "request_body", "text"), "request_body"},
		{"phase of another order type", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "order_type", "Delete"), "phase"},
		{"update phase with Create", edit(iccOp(connA1, tenantA, "update_connection", "processing", "2026-11-23 10:00:00"), "order_type", "Create"), "phase"},
		{"commit_datetime while processing", edit(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "commit_datetime", "2026-11-23 10:00:01"), "commit_datetime"},
		{"commit_datetime missing when complete", edit(iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-23 10:00:00"), "commit_datetime", del), "commit_datetime"},
		{"commit_datetime null when error", edit(iccOp(connA1, tenantA, "prepare_connection", "error", "2026-11-23 10:00:00"), "commit_datetime", nil), "commit_datetime"},
		{"commit_datetime impossible", edit(iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-23 10:00:00"), "commit_datetime", "2026-11-23 25:00:00"), "commit_datetime"},
		{"malformed JSON", `{"connection_id":`, "body"},
		{"JSON followed by more", `{} {}`, "body"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			wantICCError(t, putICC(t, s, "bad1", tt.body, adminToken), 400, tt.cause)
		})
	}
	t.Run("bad path id", func(t *testing.T) {
		wantICCError(t, putICC(t, s, "bad%2F1", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), adminToken), 400, "operation_id")
	})
	t.Run("too large", func(t *testing.T) {
		in := iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")
		in["request_body"] = doc{"pad": strings.Repeat("x", 4<<20)}
		wantICCError(t, putICC(t, s, "bad1", in, adminToken), 413, "4194304")
	})
	t.Run("nothing refused was stored", func(t *testing.T) {
		for _, id := range listICC(t, s, "", adminToken) {
			if id == "bad1" {
				t.Fatal("a refused operation was stored")
			}
		}
	})
}

// TestICC_list checks every B1 filter alone and combined, ordering, latest and
// tenant isolation, on every database.
func TestICC_list(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			// Recorded in this order; reception times tie on purpose.
			ops := []struct {
				id string
				op doc
			}{
				{"a1", iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00")},
				{"a2", iccOp(connA1, tenantA, "approve_connection", "complete", "2026-11-20 10:00:00")},
				{"a3", iccOp(connA2, tenantA, "prepare_connection", "error", "2026-11-20 10:00:00")},
				{"a4", iccOp(connA1, tenantA, "update_connection", "processing", "2026-11-21 08:00:00")},
				{"a5", iccOp(connA2, tenantA, "prepare_connection", "processing", "2026-11-20 10:00:00")},
				{"a0", iccOp(connA1, tenantA, "delete_connection", "processing", "2026-11-19 23:59:59")},
				{"b1", iccOp(connB1, tenantB, "prepare_connection", "complete", "2026-11-20 09:30:00")},
				{"b2", iccOp(connB1, tenantB, "disapprove_connection", "complete", "2026-11-22 09:30:00")},
			}
			for _, o := range ops {
				wantStatus(t, putICC(t, s, o.id, o.op, adminToken), 201)
			}
			// Replacing a5 does not move it in the recording order.
			wantStatus(t, putICC(t, s, "a5", iccOp(connA2, tenantA, "prepare_connection", "complete", "2026-11-20 10:00:00"), adminToken), 200)
			tests := []struct {
				name  string
				query string
				token string
				want  []string
			}{
				{"tenant sees only its own, by reception then recording order", "", tokenA, []string{"a0", "a1", "a2", "a3", "a5", "a4"}},
				{"other tenant", "", tokenB, []string{"b1", "b2"}},
				{"admin sees every tenant", "", adminToken, []string{"a0", "a1", "b1", "a2", "a3", "a5", "a4", "b2"}},
				{"connection_id", "?connection_id=" + connA2, tokenA, []string{"a3", "a5"}},
				{"connection_id in upper case", "?connection_id=" + strings.ToUpper(connA2), tokenA, []string{"a3", "a5"}},
				{"connection_id of another tenant", "?connection_id=" + connB1, tokenA, []string{}},
				{"order_type", "?order_type=Update", tokenA, []string{"a4"}},
				{"phase", "?phase=prepare_connection", tokenA, []string{"a1", "a3", "a5"}},
				{"operation_status", "?operation_status=complete", tokenA, []string{"a1", "a2", "a5"}},
				{"operation_status processing", "?operation_status=processing", tokenA, []string{"a0", "a4"}},
				{"combined", "?connection_id=" + connA1 + "&order_type=Create&operation_status=complete", tokenA, []string{"a1", "a2"}},
				{"combined with phase", "?order_type=Create&phase=prepare_connection&operation_status=error", tokenA, []string{"a3"}},
				{"latest", "?latest=true", tokenA, []string{"a5", "a4"}},
				{"latest, ties go to the one recorded last", "?latest=true&connection_id=" + connA2, tokenA, []string{"a5"}},
				{"latest among the matches", "?latest=true&operation_status=complete", tokenA, []string{"a2", "a5"}},
				{"latest with phase", "?latest=true&phase=prepare_connection", tokenA, []string{"a1", "a5"}},
				{"latest for admin", "?latest=true", adminToken, []string{"a5", "a4", "b2"}},
				{"no match", "?order_type=Delete&operation_status=complete", tokenA, []string{}},
				{"unknown parameters are ignored", "?color=blue", tokenB, []string{"b1", "b2"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if got := listICC(t, s, tt.query, tt.token); !reflect.DeepEqual(got, tt.want) {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
				})
			}
			t.Run("items carry the seed's fields and a null commit", func(t *testing.T) {
				r := s.do(t, "GET", "/v1.0/icc/operations?connection_id="+connA1+"&operation_status=processing&order_type=Delete", nil, "X-Auth-Token", tokenA)
				var l struct{ Operations []doc }
				_ = json.Unmarshal(r.body, &l)
				want := clone(iccOp(connA1, tenantA, "delete_connection", "processing", "2026-11-19 23:59:59"))
				delete(want, "tenant_id")
				want["commit_datetime"] = nil
				want["operation_id"] = "a0"
				if len(l.Operations) != 1 || !reflect.DeepEqual(l.Operations[0], want) {
					t.Fatalf("got %s", r.body)
				}
			})
			t.Run("no match answers an empty list", func(t *testing.T) {
				r := s.do(t, "GET", "/v1.0/icc/operations?phase=update_connection&operation_status=error", nil, "X-Auth-Token", tokenB)
				if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"operations":[]}` {
					t.Fatalf("got %s", r)
				}
			})
			t.Run("concurrent creates of one id: exactly one 201", func(t *testing.T) {
				const n = 20
				statuses := make([]int, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						st := "processing"
						if i%3 == 0 {
							st = "complete"
						}
						statuses[i] = putICC(t, s, "race", iccOp(connB1, tenantB, "update_connection", st, "2026-11-23 10:00:00"), adminToken).status
					}()
				}
				wg.Wait()
				created := 0
				for _, st := range statuses {
					switch st {
					case 201:
						created++
					case 200, 409:
					default:
						t.Fatalf("status %d", st)
					}
				}
				if created != 1 {
					t.Fatalf("%d creates answered 201: %v", created, statuses)
				}
			})
		})
	}
}

func TestICC_listRefusals(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	for _, q := range []struct{ query, param string }{
		{"connection_id=conn-1", "connection_id"},
		{"connection_id=", "connection_id"},
		{"order_type=create", "order_type"},
		{"order_type=", "order_type"},
		{"phase=approve", "phase"},
		{"operation_status=done", "operation_status"},
		{"latest=false", "latest"},
		{"latest=", "latest"},
		{"latest=TRUE", "latest"},
	} {
		t.Run(q.query, func(t *testing.T) {
			r := s.do(t, "GET", "/v1.0/icc/operations?"+q.query, nil, "X-Auth-Token", tokenA)
			wantICCError(t, r, 400, q.param)
		})
	}
}
