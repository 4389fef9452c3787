// An openapi-fetch client of the Operations Service, typed by src/api.ts
// (openapi-typescript, from ../openapi.yaml). `make ts-check` type-checks it
// and runs it against a fresh service at OPSVC_URL; it exits 1 on the first
// answer that is not the expected one.
import createClient from "openapi-fetch";
import type { components, paths } from "./api.js";

type Operation = components["schemas"]["Operation"];
type ICCOperationWrite = components["schemas"]["ICCOperationWrite"];

const baseUrl = process.env.OPSVC_URL ?? "http://localhost:8080";
let checks = 0;

function check(ok: boolean, what: string, got?: unknown): asserts ok {
  if (!ok) {
    throw new Error(`${what}: got ${JSON.stringify(got)}`);
  }
  checks++;
}

// The types refuse what the spec refuses: tsc fails if these compile.
// @ts-expect-error "done" is not a status
const badStatus: Operation["status"] = "done";
// @ts-expect-error order_type is required
const missing: ICCOperationWrite = { connection_id: "x", tenant_id: "t", phase: "prepare_connection", operation_status: "processing", reception_datetime: "2026-11-20 10:00:00", request_body: {} };
void badStatus;
void missing;

// MSF: no token from 127.0.0.1 (MSF_ALLOWED_CIDRS).
const msf = createClient<paths>({ baseUrl });

const op: Operation = {
  operation_id: "ts-0001",
  occurred_time: "20261123_101500",
  last_update_time: "20261123_101512",
  status: "completed",
  request: { uri: "/v1/slices/l2vpn", method: "POST", body: '{"slice_id":"slice-1","remark":"¥ 接続テスト 🚀"}' },
  response: { status_code: 201, body: '{"slice_id":"slice-1"}' },
};
const path = { operation_id: op.operation_id };

const put = await msf.PUT("/v1/operations/{operation_id}", { params: { path }, body: op });
check(put.response.status === 200, "PUT /v1/operations/{id}", put.response.status);

const got = await msf.GET("/v1/operations/{operation_id}", { params: { path } });
check(got.data !== undefined, "GET /v1/operations/{id}", got.error);
check(got.data.status === "completed" && got.data.request.body === op.request.body, "the stored operation, byte for byte", got.data);

// A2 is a oneOf: narrow by the member the requested format answers.
const ids = await msf.GET("/v1/operations", { params: { query: { format: "list" } } });
check(ids.data !== undefined && "operation_ids" in ids.data, "format=list answers operation_ids", ids.data);
check(ids.data.operation_ids.includes(op.operation_id), "the id is listed", ids.data);
const details = await msf.GET("/v1/operations", { params: { query: { format: "detail-list" } } });
check(details.data !== undefined && "operations" in details.data, "format=detail-list answers operations", details.data);
check(details.data.operations[0]?.response?.status_code === 201, "the detail item", details.data);

// Refusals are typed by the spec's error responses.
const back = await msf.PUT("/v1/operations/{operation_id}", {
  params: { path },
  body: { ...op, status: "executing", last_update_time: "20261123_101600" },
});
check(back.response.status === 409 && back.error?.error_code === "030007", "a notification going backwards is 409 030007", back.error);
const none = await msf.GET("/v1/operations/{operation_id}", { params: { path: { operation_id: "ts-none" } } });
check(none.response.status === 404 && none.error?.error_code === "030001", "an unknown id is 404 030001", none.error);

// ICC: the admin records, a tenant reads.
const admin = createClient<paths>({ baseUrl, headers: { "X-Auth-Token": "admin-token" } });
const tenantA = createClient<paths>({ baseUrl, headers: { "X-Auth-Token": "tenant-a-token" } });
const tenantB = createClient<paths>({ baseUrl, headers: { "X-Auth-Token": "tenant-b-token" } });
const connection = "a80c1728-cc0c-11e6-8080-525400060300";
const record: ICCOperationWrite = {
  connection_id: connection,
  tenant_id: "39852f6f42a74d2b82f7099f78d0393a",
  order_type: "Create",
  phase: "approve_connection",
  operation_status: "complete",
  reception_datetime: "2016-12-27 08:15:41",
  commit_datetime: "2016-12-27 08:39:55",
  request_body: { connection: { name: "hoge", bandwidth: "100" } },
};
const created = await admin.PUT("/v1.0/icc/operations/{operation_id}", {
  params: { path: { operation_id: "ts-icc-1" } },
  body: record,
});
check(created.response.status === 201 && created.data?.operation_status === "complete", "PUT /v1.0/icc/operations/{id} creates", created.data);

const v1 = await tenantA.GET("/v1.0/icc/operations", { params: { query: { connection_id: connection, latest: "true" } } });
check(v1.data?.operations.length === 1 && v1.data.operations[0]?.operation_id === "ts-icc-1", "GET /v1.0/icc/operations, filtered", v1.data);

const v2 = await tenantA.GET("/v2.0/operations", { params: { query: { resource_id: connection, request_type: "Create" } } });
check(v2.data?.operations[0]?.resource_type === "aws_connection", "GET /v2.0/operations, filtered", v2.data);

const show = await tenantA.GET("/v2.0/operations/{operation_id}", { params: { path: { operation_id: "ts-icc-1" } } });
check(show.data?.operation.id === "ts-icc-1" && show.data.operation.request_type === "Create", "GET /v2.0/operations/{id}", show.data);
const hidden = await tenantB.GET("/v2.0/operations/{operation_id}", { params: { path: { operation_id: "ts-icc-1" } } });
check(hidden.response.status === 404 && hidden.error?.cause === "operation_id: no such operation", "another tenant's is 404", hidden.error);
const noToken = await msf.GET("/v1.0/icc/operations");
check(noToken.response.status === 401 && noToken.error?.cause === "Unauthorized", "no token is 401", noToken.error);

// The description itself, and the docs page.
const spec = await msf.GET("/openapi.yaml", { parseAs: "text" });
check(typeof spec.data === "string" && spec.data.startsWith("openapi: 3."), "GET /openapi.yaml", spec.data?.slice(0, 40));

console.log(`ts-example: ${checks} passed, 0 failed`);
