package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// listShape is one B1 or B3 request shape, measured through the service and
// beside its best plain-SQL query on the same data.
type listShape struct {
	name   string
	family string // "b1" or "b3"
	path   string
	// query is the query string that asks about connection conn.
	query func(conn string) string
	items func(d iccDataset) int
	// floors are plain-SQL ways to answer the same; the fastest is the ideal.
	floors []floorQuery
}

// floorQuery is one plain-SQL answer to a shape. Its single argument list is
// the tenant id, then the connection id when the query has a second ?.
type floorQuery struct {
	name    string
	sql     string // with %[1]s for the item columns
	useConn bool
}

const (
	// iccItemColumns are what a B1 item needs, in scan order.
	iccItemColumns = "o.seq, o.operation_id, o.tenant_id, o.connection_id, o.order_type, o.phase, o.operation_status, o.reception_datetime, o.commit_datetime, o.request_body"

	floorConnLatest = "SELECT %[1]s FROM icc_operations o WHERE o.tenant_id = ? AND o.connection_id = ? " +
		"ORDER BY o.reception_datetime DESC, o.seq DESC LIMIT 1"
	floorTenant = "SELECT %[1]s FROM icc_operations o WHERE o.tenant_id = ? ORDER BY o.reception_datetime, o.seq"
	// Of each connection, the row no other row of it follows in listing order.
	floorLatestNotExists = "SELECT %[1]s FROM icc_operations o WHERE o.tenant_id = ? AND NOT EXISTS (" +
		"SELECT 1 FROM icc_operations n WHERE n.tenant_id = o.tenant_id AND n.connection_id = o.connection_id " +
		"AND (n.reception_datetime > o.reception_datetime OR (n.reception_datetime = o.reception_datetime AND n.seq > o.seq))) " +
		"ORDER BY o.reception_datetime, o.seq"
	floorLatestWindow = "SELECT %[1]s FROM (SELECT o.*, ROW_NUMBER() OVER (PARTITION BY o.connection_id " +
		"ORDER BY o.reception_datetime DESC, o.seq DESC) AS rn FROM icc_operations o WHERE o.tenant_id = ?) o " +
		"WHERE o.rn = 1 ORDER BY o.reception_datetime, o.seq"
)

func listShapes(d iccDataset) []listShape {
	connLatest := []floorQuery{{name: "tenant+connection index, newest first, LIMIT 1", sql: floorConnLatest, useConn: true}}
	tenant := []floorQuery{{name: "tenant index, one query", sql: floorTenant}}
	latest := []floorQuery{
		{name: "NOT EXISTS a later row, one query", sql: floorLatestNotExists},
		{name: "ROW_NUMBER() window, one query", sql: floorLatestWindow},
	}
	one := func(d iccDataset) int { return 1 }
	all := func(d iccDataset) int { return d.connections * d.ops }
	page := func(d iccDataset) int { return min(100, all(d)) }
	conns := func(d iccDataset) int { return d.connections }
	return []listShape{
		{name: "B1 connection_id=X&latest=true p99", family: "b1", path: "/v1.0/icc/operations",
			query: func(c string) string { return "connection_id=" + c + "&latest=true" }, items: one, floors: connLatest},
		{name: fmt.Sprintf("B1 whole tenant (%d items) p99", all(d)), family: "b1", path: "/v1.0/icc/operations",
			query: func(string) string { return "" }, items: all, floors: tenant},
		{name: fmt.Sprintf("B1 latest=true whole tenant (%d items) p99", conns(d)), family: "b1", path: "/v1.0/icc/operations",
			query: func(string) string { return "latest=true" }, items: conns, floors: latest},
		{name: "B3 resource_id=X&latest=true p99", family: "b3", path: "/v2.0/operations",
			query: func(c string) string { return "resource_id=" + c + "&latest=true" }, items: one, floors: connLatest},
		{name: fmt.Sprintf("B3 whole tenant (%d items) p99", all(d)), family: "b3", path: "/v2.0/operations",
			query: func(string) string { return "" }, items: all, floors: tenant},
		{name: fmt.Sprintf("B3 latest=true whole tenant (%d items) p99", conns(d)), family: "b3", path: "/v2.0/operations",
			query: func(string) string { return "latest=true" }, items: conns, floors: latest},
		// Issue 9: one page (the first) of the whole tenant's list.
		{name: fmt.Sprintf("B3 page: limit=100 of the whole tenant (%d items) p99", page(d)), family: "b3", path: "/v2.0/operations",
			query: func(string) string { return "limit=100" }, items: page,
			floors: []floorQuery{{name: "tenant index, LIMIT 100", sql: floorTenant + " LIMIT 100"}}},
	}
}

// pick is the tenant and connection of request i of a run: the service and
// the floor see the same sequence.
type pick struct {
	tenant int
	conn   string
}

func picks(d iccDataset, shape string, runIndex, n int) []pick {
	h := fnv.New64a()
	_, _ = h.Write([]byte(shape))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(runIndex)))
	out := make([]pick, n)
	for i := range out {
		t := r.IntN(d.tenants)
		out[i] = pick{tenant: t, conn: d.connectionID(t, r.IntN(d.connections))}
	}
	return out
}

// listClient asks the service for lists, over one keep-alive connection.
type listClient struct {
	svc    *process
	client *http.Client
	d      iccDataset
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // never: the load goes to 127.0.0.1 only
			DialContext:         loopbackDial,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
		Timeout: 2 * time.Minute,
	}
}

// get asks for shape's list as tenant p.tenant and reads the whole answer;
// with count set it decodes it and returns the number of items.
func (c listClient) get(ctx context.Context, s listShape, p pick, count bool) (status, items int, err error) {
	u := c.svc.url(s.path)
	if q := s.query(p.conn); q != "" {
		u += "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("X-Auth-Token", c.d.token(p.tenant))
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !count {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, 0, err
	}
	var list struct{ Operations []json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return resp.StatusCode, 0, err
	}
	return resp.StatusCode, len(list.Operations), nil
}

// probe checks what the service answers to shape once, before it is timed:
// "" when it is the expected list, otherwise why the row has no figure.
func (c listClient) probe(ctx context.Context, s listShape) (string, error) {
	p := picks(c.d, s.name, 0, 1)[0]
	status, items, err := c.get(ctx, s, p, true)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusNotFound && s.family == "b3":
		return "n/a (endpoint missing)", nil
	case status != http.StatusOK:
		return "", fmt.Errorf("%s: HTTP %d", s.path, status)
	case items != s.items(c.d):
		return "", fmt.Errorf("%s?%s: %d items, want %d", s.path, s.query(p.conn), items, s.items(c.d))
	}
	return "", nil
}

// serviceRun times shape through the service, one request at a time.
func (c listClient) serviceRun(ctx context.Context, s listShape, runIndex int, cfg Config) loadRun {
	ps := picks(c.d, s.name, runIndex, cfg.MaxReqs)
	return load(ctx, 1, cfg.Latency, cfg.MaxReqs, func(ctx context.Context, _, i int) error {
		status, _, err := c.get(ctx, s, ps[i], false)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("HTTP %d", status)
		}
		return err
	})
}

// floorLister answers shapes in plain SQL, reading the rows and encoding
// them as the service does: one JSON item at a time into a stream flushed
// every 64 KiB (to io.Discard).
type floorLister struct {
	db *sql.DB
	d  iccDataset
	// v2Columns selects resource_type and error for B3 items: the columns
	// when the table has them, their defaults until then.
	v2Columns string
}

func newFloorLister(ctx context.Context, db *sql.DB, dbName string, d iccDataset) (*floorLister, error) {
	f := &floorLister{db: db, d: d, v2Columns: "'aws_connection', NULL"}
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE table_schema = ? AND table_name = 'icc_operations' AND column_name IN ('resource_type', 'error')", dbName).Scan(&n)
	if err != nil {
		return nil, err
	}
	if n == 2 {
		f.v2Columns = "o.resource_type, o.`error`"
	}
	return f, nil
}

// The items as the service encodes them (gen.ICCOperation and the v2.0
// item), fields in the same order.
type (
	iccItem struct {
		CommitDatetime    *string         `json:"commit_datetime"`
		ConnectionID      string          `json:"connection_id"`
		OperationID       string          `json:"operation_id"`
		OperationStatus   string          `json:"operation_status"`
		OrderType         string          `json:"order_type"`
		Phase             string          `json:"phase"`
		ReceptionDatetime string          `json:"reception_datetime"`
		RequestBody       json.RawMessage `json:"request_body"`
	}
	v2Item struct {
		CommitDatetime    *string         `json:"commit_datetime"`
		Error             json.RawMessage `json:"error"`
		ID                string          `json:"id"`
		OperationStatus   string          `json:"operation_status"`
		Phase             string          `json:"phase"`
		ReceptionDatetime string          `json:"reception_datetime"`
		RequestBody       json.RawMessage `json:"request_body"`
		RequestType       string          `json:"request_type"`
		ResourceID        string          `json:"resource_id"`
		ResourceType      string          `json:"resource_type"`
		ServiceType       string          `json:"service_type"`
		TenantID          string          `json:"tenant_id"`
	}
)

var serviceTypes = map[string]string{
	"aws_connection":            "ECL::SDExchange::AWSConnection",
	"tenant_connection_request": "ECL::SDExchange::TenantConnectionRequest",
	"tenant_connection":         "ECL::SDExchange::TenantConnection",
}

const iccTimeLayout = "2006-01-02 15:04:05"

// list answers shape s for p with query q and returns the number of items.
func (f *floorLister) list(ctx context.Context, s listShape, q floorQuery, p pick) (int, error) {
	cols := iccItemColumns
	if s.family == "b3" {
		cols += ", " + f.v2Columns
	}
	args := []any{f.d.tenantID(p.tenant)}
	if q.useConn {
		args = append(args, p.conn)
	}
	rows, err := f.db.QueryContext(ctx, fmt.Sprintf(q.sql, cols), args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_, _ = w.WriteString(`{"operations":[`)
	n := 0
	for rows.Next() {
		var (
			seq                                      int64
			opID, tenant, conn, order, phase, status string
			reception                                time.Time
			commit                                   sql.NullTime
			body, errBody                            sql.RawBytes
			resourceType                             sql.NullString
		)
		dest := []any{&seq, &opID, &tenant, &conn, &order, &phase, &status, &reception, &commit, &body}
		if s.family == "b3" {
			dest = append(dest, &resourceType, &errBody)
		}
		if err := rows.Scan(dest...); err != nil {
			return n, err
		}
		var commitText *string
		if commit.Valid {
			c := commit.Time.UTC().Format(iccTimeLayout)
			commitText = &c
		}
		if n > 0 {
			_ = w.WriteByte(',')
		}
		n++
		if s.family == "b1" {
			err = enc.Encode(iccItem{
				CommitDatetime: commitText, ConnectionID: conn, OperationID: opID, OperationStatus: status,
				OrderType: order, Phase: phase, ReceptionDatetime: reception.UTC().Format(iccTimeLayout),
				RequestBody: json.RawMessage(body),
			})
		} else {
			if len(errBody) == 0 {
				errBody = sql.RawBytes("{}")
			}
			err = enc.Encode(v2Item{
				CommitDatetime: commitText, Error: json.RawMessage(errBody), ID: opID, OperationStatus: status,
				Phase: phase, ReceptionDatetime: reception.UTC().Format(iccTimeLayout), RequestBody: json.RawMessage(body),
				RequestType: order, ResourceID: conn, ResourceType: resourceType.String,
				ServiceType: serviceTypes[resourceType.String], TenantID: tenant,
			})
		}
		if err != nil {
			return n, err
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	_, _ = w.WriteString("]}\n")
	return n, w.Flush()
}

// choose checks every floor query of s and returns the fastest, timed over
// a few calls, with the number of items as a check.
func (f *floorLister) choose(ctx context.Context, s listShape) (floorQuery, error) {
	ps := picks(f.d, s.name, 0, 3)
	best, bestTime := floorQuery{}, time.Duration(1<<62)
	for _, q := range s.floors {
		start := time.Now()
		for _, p := range ps {
			n, err := f.list(ctx, s, q, p)
			if err != nil {
				return floorQuery{}, fmt.Errorf("floor %q: %w", q.name, err)
			}
			if n != s.items(f.d) {
				return floorQuery{}, fmt.Errorf("floor %q: %d items, want %d", q.name, n, s.items(f.d))
			}
		}
		if t := time.Since(start); t < bestTime {
			best, bestTime = q, t
		}
	}
	if best.sql == "" {
		return floorQuery{}, errors.New("no floor query")
	}
	return best, nil
}

// floorRun times shape s through query q, one call at a time.
func (f *floorLister) floorRun(ctx context.Context, s listShape, q floorQuery, runIndex int, cfg Config) loadRun {
	ps := picks(f.d, s.name, runIndex, cfg.MaxReqs)
	return load(ctx, 1, cfg.Latency, cfg.MaxReqs, func(ctx context.Context, _, i int) error {
		_, err := f.list(ctx, s, q, ps[i])
		return err
	})
}
