package main

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// listV2 lists through B3 with a query and returns the operation ids in order.
func listV2(tb testing.TB, s *service, query, token string) []string {
	tb.Helper()
	return listIDs(tb, s, "/v2.0/operations"+query, "id", token)
}

func showV2(tb testing.TB, s *service, id, token string) result {
	tb.Helper()
	return s.do(tb, http.MethodGet, "/v2.0/operations/"+id, nil, "X-Auth-Token", token)
}

// withV2 adds B2's optional v2.0 fields to a B2 body.
func withV2(d doc, resourceType string, errObj any) doc {
	d = clone(d)
	if resourceType != "" {
		d["resource_type"] = resourceType
	}
	if errObj != nil {
		d["error"] = errObj
	}
	return d
}

func TestICCV2(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			// The records of TestICC_list, some with v2.0 fields.
			ops := []struct {
				id string
				op doc
			}{
				{"a1", iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-20 09:00:00")},
				{"a2", iccOp(connA1, tenantA, "approve_connection", "complete", "2026-11-20 10:00:00")},
				{"a3", withV2(iccOp(connA2, tenantA, "prepare_connection", "error", "2026-11-20 10:00:00"),
					"tenant_connection_request", doc{"code": "E001", "message": "quota <exceeded> & more"})},
				{"a4", iccOp(connA1, tenantA, "update_connection", "processing", "2026-11-21 08:00:00")},
				{"a5", withV2(iccOp(connA2, tenantA, "prepare_connection", "processing", "2026-11-20 10:00:00"), "tenant_connection_request", nil)},
				{"a0", withV2(iccOp(connA1, tenantA, "delete_connection", "processing", "2026-11-19 23:59:59"), "aws_connection", nil)},
				{"b1", withV2(iccOp(connB1, tenantB, "prepare_connection", "complete", "2026-11-20 09:30:00"), "tenant_connection", nil)},
				{"b2", iccOp(connB1, tenantB, "disapprove_connection", "complete", "2026-11-22 09:30:00")},
			}
			for _, o := range ops {
				wantStatus(t, putICC(t, s, o.id, o.op, adminToken), 201)
			}
			wantStatus(t, putICC(t, s, "a5", withV2(iccOp(connA2, tenantA, "prepare_connection", "complete", "2026-11-20 10:00:00"), "tenant_connection_request", nil), adminToken), 200)

			tests := []struct {
				name  string
				query string
				token string
				want  []string
			}{
				{"tenant sees only its own, in B1's order", "", tokenA, []string{"a0", "a1", "a2", "a3", "a5", "a4"}},
				{"other tenant", "", tokenB, []string{"b1", "b2"}},
				{"admin sees every tenant", "", adminToken, []string{"a0", "a1", "b1", "a2", "a3", "a5", "a4", "b2"}},
				{"id", "?id=a3", tokenA, []string{"a3"}},
				{"id of another tenant", "?id=b1", tokenA, []string{}},
				{"resource_id", "?resource_id=" + connA2, tokenA, []string{"a3", "a5"}},
				{"resource_id in upper case", "?resource_id=" + strings.ToUpper(connA2), tokenA, []string{"a3", "a5"}},
				{"resource_id of another tenant", "?resource_id=" + connB1, tokenA, []string{}},
				{"request_type", "?request_type=Update", tokenA, []string{"a4"}},
				{"resource_type", "?resource_type=tenant_connection_request", tokenA, []string{"a3", "a5"}},
				{"resource_type default", "?resource_type=aws_connection", tokenA, []string{"a0", "a1", "a2", "a4"}},
				{"service_type", "?service_type=ECL::SDExchange::TenantConnection", adminToken, []string{"b1"}},
				{"service_type and resource_type that disagree", "?service_type=ECL::SDExchange::TenantConnection&resource_type=aws_connection", adminToken, []string{}},
				{"phase", "?phase=prepare_connection", tokenA, []string{"a1", "a3", "a5"}},
				{"operation_status", "?operation_status=complete", tokenA, []string{"a1", "a2", "a5"}},
				{"combined", "?resource_id=" + connA1 + "&request_type=Create&operation_status=complete", tokenA, []string{"a1", "a2"}},
				{"latest per resource", "?latest=true", tokenA, []string{"a5", "a4"}},
				{"latest, ties go to the one recorded last", "?latest=true&resource_id=" + connA2, tokenA, []string{"a5"}},
				{"latest among the matches", "?latest=true&operation_status=complete", tokenA, []string{"a2", "a5"}},
				{"latest for admin", "?latest=true", adminToken, []string{"a5", "a4", "b2"}},
				{"no match", "?request_type=Delete&operation_status=complete", tokenA, []string{}},
				{"unknown parameters are ignored", "?color=blue", tokenB, []string{"b1", "b2"}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if got := listV2(t, s, tt.query, tt.token); !reflect.DeepEqual(got, tt.want) {
						t.Fatalf("got %v, want %v", got, tt.want)
					}
				})
			}

			a3 := doc{
				"id":                 "a3",
				"service_type":       "ECL::SDExchange::TenantConnectionRequest",
				"resource_type":      "tenant_connection_request",
				"resource_id":        connA2,
				"request_type":       "Create",
				"phase":              "prepare_connection",
				"operation_status":   "error",
				"reception_datetime": "2026-11-20 10:00:00",
				"commit_datetime":    "2026-11-20 10:00:00",
				"request_body":       iccOp(connA2, tenantA, "prepare_connection", "error", "2026-11-20 10:00:00")["request_body"],
				"error":              doc{"code": "E001", "message": "quota <exceeded> & more"},
				"tenant_id":          tenantA,
			}
			t.Run("show answers the v2.0 item", func(t *testing.T) {
				r := showV2(t, s, "a3", tokenA)
				wantStatus(t, r, 200)
				var got struct{ Operation doc }
				if err := json.Unmarshal(r.body, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got.Operation, clone(a3)) {
					t.Fatalf("got %s", r.body)
				}
			})
			t.Run("list items are the show's item", func(t *testing.T) {
				r := s.do(t, http.MethodGet, "/v2.0/operations?id=a3", nil, "X-Auth-Token", tokenA)
				var l struct{ Operations []doc }
				if err := json.Unmarshal(r.body, &l); err != nil || len(l.Operations) != 1 || !reflect.DeepEqual(l.Operations[0], clone(a3)) {
					t.Fatalf("got %s", r.body)
				}
			})
			t.Run("an item without an error has error {}, without a commit null", func(t *testing.T) {
				r := showV2(t, s, "a4", tokenA)
				var got struct{ Operation doc }
				_ = json.Unmarshal(r.body, &got)
				op := got.Operation
				if !reflect.DeepEqual(op["error"], doc{}) || op["commit_datetime"] != nil || op["resource_type"] != "aws_connection" ||
					op["service_type"] != "ECL::SDExchange::AWSConnection" {
					t.Fatalf("got %s", r.body)
				}
				if _, ok := op["commit_datetime"]; !ok {
					t.Fatalf("commit_datetime is absent, want null: %s", r.body)
				}
			})
			t.Run("request_body and error come back byte for byte", func(t *testing.T) {
				raw := `{"connection_id":"` + connB1 + `","tenant_id":"` + tenantB + `","order_type":"Delete","phase":"delete_connection",` +
					`"operation_status":"error","reception_datetime":"2026-11-23 10:00:00","commit_datetime":"2026-11-23 10:00:01",` +
					`"request_body":{"z":1,"a":[1.50,2e3],"s":"<&>\u2028"},"error":{"z":"y","a":{"n":10.0}}}`
				wantStatus(t, putICC(t, s, "raw1", raw, adminToken), 201)
				r := showV2(t, s, "raw1", tokenB)
				for _, want := range []string{`"request_body":{"z":1,"a":[1.50,2e3],"s":"<&>\u2028"}`, `"error":{"z":"y","a":{"n":10.0}}`} {
					if !strings.Contains(string(r.body), want) {
						t.Fatalf("want %s in %s", want, r.body)
					}
				}
			})
			t.Run("B1 keeps showing v1 fields only", func(t *testing.T) {
				r := s.do(t, http.MethodGet, "/v1.0/icc/operations?connection_id="+connA2, nil, "X-Auth-Token", tokenA)
				var l struct{ Operations []doc }
				_ = json.Unmarshal(r.body, &l)
				for _, op := range l.Operations {
					for _, k := range []string{"resource_type", "error", "id", "service_type"} {
						if _, ok := op[k]; ok {
							t.Fatalf("B1 item has %s: %s", k, r.body)
						}
					}
				}
			})

			shows := []struct {
				name   string
				id     string
				token  string
				status int
			}{
				{"own operation", "a1", tokenA, 200},
				{"another tenant's operation is not found", "b1", tokenA, 404},
				{"an unknown id is not found", "nope", tokenA, 404},
				{"admin sees any tenant's", "b1", adminToken, 200},
				{"no token", "a1", "", 401},
				{"unknown token", "a1", "nope", 401},
			}
			for _, tt := range shows {
				t.Run("show: "+tt.name, func(t *testing.T) {
					r := showV2(t, s, tt.id, tt.token)
					wantStatus(t, r, tt.status)
					if tt.status == 404 {
						wantICCError(t, r, 404, "operation_id")
						if strings.Contains(string(r.body), tenantB) {
							t.Fatalf("404 reveals the owner: %s", r.body)
						}
					}
				})
			}
			t.Run("an unknown id and another tenant's get the same answer", func(t *testing.T) {
				other, unknown := showV2(t, s, "b1", tokenA), showV2(t, s, "zz", tokenA)
				if !reflect.DeepEqual(other.body, unknown.body) {
					t.Fatalf("%s vs %s", other.body, unknown.body)
				}
			})
		})
	}
}

func TestICCV2_refusals(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	for _, q := range []struct{ query, param string }{
		{"id=op/1", "id"},
		{"id=", "id"},
		{"service_type=AWSConnection", "service_type"},
		{"resource_type=connection", "resource_type"},
		{"resource_type=", "resource_type"},
		{"resource_id=conn-1", "resource_id"},
		{"resource_id=", "resource_id"},
		{"request_type=create", "request_type"},
		{"operation_status=done", "operation_status"},
		{"phase=approve", "phase"},
		{"latest=false", "latest"},
		{"latest=", "latest"},
		{"phase=approve_connection&phase=update_connection", "phase"},
	} {
		t.Run(q.query, func(t *testing.T) {
			r := s.do(t, http.MethodGet, "/v2.0/operations?"+q.query, nil, "X-Auth-Token", tokenA)
			wantICCError(t, r, 400, q.param)
		})
	}
	t.Run("list without a token", func(t *testing.T) {
		wantICCError(t, s.do(t, http.MethodGet, "/v2.0/operations", nil), 401, "Unauthorized")
	})
	t.Run("show with a bad id", func(t *testing.T) {
		wantICCError(t, showV2(t, s, "op~1%20", tokenA), 400, "operation_id")
	})

	// B2's v2.0 fields.
	base := iccOp(connA1, tenantA, "prepare_connection", "error", "2026-11-23 10:00:00")
	for _, tt := range []struct {
		name  string
		body  any
		cause string
	}{
		{"error while processing", withV2(iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "", doc{"m": "x"}), "error"},
		{"error while complete", withV2(iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-23 10:00:00"), "", doc{"m": "x"}), "error"},
		{"error not an object", withV2(base, "", "boom"), "error"},
		{"error null", edit(base, "error", nil), "error"},
		{"resource_type not in enum", withV2(base, "vpn", nil), "resource_type"},
		{"resource_type as number", edit(base, "resource_type", 3), "resource_type: must be a string"},
		// A wrong JSON type is named as such, even where the field also has
		// an enum, a pattern or a length.
		{"order_type as number", edit(base, "order_type", 1), "order_type: must be a string"},
		{"phase as boolean", edit(base, "phase", true), "phase: must be a string"},
		{"connection_id as number", edit(base, "connection_id", 12), "connection_id: must be a string"},
		{"tenant_id as object", edit(base, "tenant_id", doc{}), "tenant_id: must be a string"},
		{"reception_datetime as number", edit(base, "reception_datetime", 20161227), "reception_datetime: must be a string"},
		{"commit_datetime as array", edit(base, "commit_datetime", []any{}), "commit_datetime: must be a string"},
		{"request_body as string", edit(base, "request_body", "{}"), "request_body: must be an object"},
		{"type error beside a bad enum", edit(edit(base, "phase", "approve"), "operation_status", 2), "operation_status: must be a string"},
	} {
		t.Run("B2 "+tt.name, func(t *testing.T) {
			wantICCError(t, putICC(t, s, "v2-refused", tt.body, adminToken), 400, tt.cause)
		})
	}
	t.Run("nothing refused was stored", func(t *testing.T) {
		wantStatus(t, showV2(t, s, "v2-refused", adminToken), 404)
	})
}
