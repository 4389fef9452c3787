package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The A1 workload: each worker owns its ids and sends, for each, a new
// notification (executing) and then an update of it (completed, one second
// later), so half the PUTs create and half replace, and none goes backwards
// (no 409). Every notification carries 3,300 bytes of body strings: the
// operation's request (1,000) and response (500), two target clusters
// (500 + 150 each) and a rollback with one cluster (400 + 100).

type (
	a1Notification struct {
		OperationID    string      `json:"operation_id"`
		OccurredTime   string      `json:"occurred_time"`
		LastUpdateTime string      `json:"last_update_time"`
		Status         string      `json:"status"`
		Request        a1Request   `json:"request"`
		Response       a1Response  `json:"response"`
		TargetClusters []a1Cluster `json:"target_clusters"`
		Rollbacks      a1Rollbacks `json:"rollbacks"`
	}
	a1Request struct {
		URI    string `json:"uri"`
		Method string `json:"method"`
		Body   string `json:"body"`
	}
	a1Response struct {
		StatusCode int    `json:"status_code"`
		Body       string `json:"body"`
	}
	a1Cluster struct {
		ClusterID string     `json:"cluster_id"`
		Request   a1Request  `json:"request"`
		Response  a1Response `json:"response"`
	}
	a1Rollbacks struct {
		Result         string      `json:"result"`
		OccurredTime   string      `json:"occurred_time"`
		TargetClusters []a1Cluster `json:"target_clusters"`
	}
)

const msfTimeLayout = "20060102_150405"

var a1Occurred = time.Date(2026, 11, 23, 10, 15, 0, 0, time.UTC)

// a1Bodies are the body strings, made once.
var a1Bodies = struct{ req, resp, creq, cresp, rreq, rresp string }{
	bodyText(1000, 1), bodyText(500, 2), bodyText(500, 3), bodyText(150, 4), bodyText(400, 5), bodyText(100, 6),
}

// a1Step is call i of worker w in the run tagged tag: the id, and whether it
// updates (the second notification of the id) rather than creates.
func a1Step(tag string, w, i int) (id string, update bool) {
	return fmt.Sprintf("a1-%s-w%03d-%07d", tag, w, i/2), i%2 == 1
}

func a1Notify(id string, update bool) a1Notification {
	status, last := "executing", a1Occurred
	if update {
		status, last = "completed", a1Occurred.Add(time.Second)
	}
	b := a1Bodies
	cluster := func(n string) a1Cluster {
		return a1Cluster{
			ClusterID: n,
			Request:   a1Request{URI: "/v1/clusters/" + n + "/slices/l2vpn/" + id, Method: "PUT", Body: b.creq},
			Response:  a1Response{StatusCode: 202, Body: b.cresp},
		}
	}
	rollback := a1Cluster{
		ClusterID: "1",
		Request:   a1Request{URI: "/v1/clusters/1/slices/l2vpn/" + id, Method: "DELETE", Body: b.rreq},
		Response:  a1Response{StatusCode: 200, Body: b.rresp},
	}
	return a1Notification{
		OperationID:    id,
		OccurredTime:   a1Occurred.Format(msfTimeLayout),
		LastUpdateTime: last.Format(msfTimeLayout),
		Status:         status,
		Request:        a1Request{URI: "/v1/slices/l2vpn/" + id, Method: "POST", Body: b.req},
		Response:       a1Response{StatusCode: 201, Body: b.resp},
		TargetClusters: []a1Cluster{cluster("1"), cluster("2")},
		Rollbacks: a1Rollbacks{
			Result:         "completed",
			OccurredTime:   a1Occurred.Add(500 * time.Millisecond).Format(msfTimeLayout),
			TargetClusters: []a1Cluster{rollback},
		},
	}
}

// a1Templates are the two notifications' JSON text (create, update), cut
// where the id goes, so that the load generator, which shares the machine's
// two cores with the service and the database, spends almost nothing per
// request building it (json.Marshal of a fresh notification cost as much as
// a sixth of the service's own CPU per request).
var a1Templates = func() (t [2][][]byte) {
	const placeholder = "\x00id\x00" // no id holds it; json.Marshal keeps it as \u0000id\u0000
	for i, update := range []bool{false, true} {
		b, err := json.Marshal(a1Notify(placeholder, update))
		if err != nil {
			panic(err)
		}
		t[i] = bytes.Split(b, []byte(`\u0000id\u0000`))
	}
	return t
}()

// a1Body is json.Marshal(a1Notify(id, update)) for an id that needs no
// escaping in JSON, as a1Step's ids.
func a1Body(id string, update bool) []byte {
	parts := a1Templates[0]
	if update {
		parts = a1Templates[1]
	}
	n := len(id) * (len(parts) - 1)
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			b = append(b, id...)
		}
		b = append(b, p...)
	}
	return b
}

// maxCallsPerWorker bounds every throughput loop in count, beside its time.
const maxCallsPerWorker = 1_000_000

// a1ServiceRun sends the workload to the service over conns connections.
func a1ServiceRun(ctx context.Context, svc *process, client *http.Client, tag string, conns int, d time.Duration) loadRun {
	return load(ctx, conns, d, maxCallsPerWorker, func(ctx context.Context, w, i int) error {
		id, update := a1Step(tag, w, i)
		body := a1Body(id, update)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, svc.url("/v1/operations/"+id), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("PUT %s: HTTP %d %s", id, resp.StatusCode, answer)
		}
		return nil
	})
}

// a1FloorParams make the floor's connections the best plain database/sql
// can do: statements interpolated by the driver (one round trip each,
// rather than prepare, execute, close) and READ COMMITTED, the isolation of
// the service's writes, set once per connection rather than per transaction.
var a1FloorParams = map[string]string{
	"interpolateParams": "true",
	"tx_isolation":      "'READ-COMMITTED'",
}

// a1FloorSchema is the floor's own tables: the relational design the service
// started from (schema version 2), an operation row and a row per cluster.
var a1FloorSchema = []string{
	`CREATE TABLE msf_operations (
		id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
		occurred_time DATETIME NOT NULL,
		last_update_time DATETIME NOT NULL,
		status VARCHAR(16) NOT NULL,
		sub_status VARCHAR(255) NULL,
		request_uri VARCHAR(2048) NOT NULL,
		request_method VARCHAR(8) NOT NULL,
		request_body LONGTEXT NULL,
		response_status_code INT NULL,
		response_body LONGTEXT NULL,
		target_clusters_present BOOLEAN NOT NULL,
		rollback_result VARCHAR(16) NULL,
		rollback_occurred_time DATETIME NULL,
		rollback_clusters_present BOOLEAN NOT NULL,
		created_at DATETIME NOT NULL,
		updated_at DATETIME NOT NULL,
		KEY msf_operations_listing (occurred_time, id)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	`CREATE TABLE msf_clusters (
		operation_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		kind VARCHAR(8) NOT NULL,
		pos INT NOT NULL,
		cluster_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		request_uri VARCHAR(2048) NOT NULL,
		request_method VARCHAR(8) NOT NULL,
		request_body LONGTEXT NULL,
		response_status_code INT NULL,
		response_body LONGTEXT NULL,
		PRIMARY KEY (operation_id, kind, pos)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
}

// a1Floor is the A1 transaction written directly in database/sql on
// a1FloorSchema: lock the row, check the transition, insert or update it,
// replace its clusters with one multi-row INSERT, commit.
type a1Floor struct{ db *sql.DB }

var errBackwards = errors.New("floor: notification would go backwards")

var msfRank = map[string]int{"unexecuted": 0, "executing": 1, "completed": 2, "failed": 2, "canceled": 2}

func (f a1Floor) put(ctx context.Context, n a1Notification) error {
	occurred, err := time.Parse(msfTimeLayout, n.OccurredTime)
	if err != nil {
		return err
	}
	last, err := time.Parse(msfTimeLayout, n.LastUpdateTime)
	if err != nil {
		return err
	}
	rbTime, err := time.Parse(msfTimeLayout, n.Rollbacks.OccurredTime)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)

	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var oldStatus string
	var oldLast time.Time
	err = tx.QueryRowContext(ctx, "SELECT status, last_update_time FROM msf_operations WHERE id = ? FOR UPDATE", n.OperationID).
		Scan(&oldStatus, &oldLast)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, "INSERT INTO msf_operations (id, occurred_time, last_update_time, status, sub_status, "+
			"request_uri, request_method, request_body, response_status_code, response_body, target_clusters_present, "+
			"rollback_result, rollback_occurred_time, rollback_clusters_present, created_at, updated_at) "+
			"VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, TRUE, ?, ?, TRUE, ?, ?)",
			n.OperationID, occurred, last, n.Status, n.Request.URI, n.Request.Method, n.Request.Body,
			n.Response.StatusCode, n.Response.Body, n.Rollbacks.Result, rbTime, now, now)
		if err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if last.Before(oldLast) || msfRank[n.Status] < msfRank[oldStatus] || (msfRank[oldStatus] == 2 && n.Status != oldStatus) {
			return errBackwards
		}
		_, err = tx.ExecContext(ctx, "UPDATE msf_operations SET occurred_time = ?, last_update_time = ?, status = ?, "+
			"sub_status = NULL, request_uri = ?, request_method = ?, request_body = ?, response_status_code = ?, "+
			"response_body = ?, target_clusters_present = TRUE, rollback_result = ?, rollback_occurred_time = ?, "+
			"rollback_clusters_present = TRUE, updated_at = ? WHERE id = ?",
			occurred, last, n.Status, n.Request.URI, n.Request.Method, n.Request.Body, n.Response.StatusCode,
			n.Response.Body, n.Rollbacks.Result, rbTime, now, n.OperationID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM msf_clusters WHERE operation_id = ?", n.OperationID); err != nil {
			return err
		}
	}
	args := make([]any, 0, 27)
	add := func(kind string, pos int, c a1Cluster) {
		args = append(args, n.OperationID, kind, pos, c.ClusterID, c.Request.URI, c.Request.Method,
			c.Request.Body, c.Response.StatusCode, c.Response.Body)
	}
	for i, c := range n.TargetClusters {
		add("target", i, c)
	}
	for i, c := range n.Rollbacks.TargetClusters {
		add("rollback", i, c)
	}
	const one = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
	_, err = tx.ExecContext(ctx, "INSERT INTO msf_clusters (operation_id, kind, pos, cluster_id, request_uri, "+
		"request_method, request_body, response_status_code, response_body) VALUES "+
		one+strings.Repeat(", "+one, len(args)/9-1), args...)
	if err != nil {
		return err
	}
	return tx.Commit()
}

// a1FloorRun runs the workload as floor transactions from conns goroutines.
func a1FloorRun(ctx context.Context, f a1Floor, tag string, conns int, d time.Duration) loadRun {
	return load(ctx, conns, d, maxCallsPerWorker, func(ctx context.Context, w, i int) error {
		return f.put(ctx, a1Notify(a1Step(tag, w, i)))
	})
}
