package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// The row structs mirror the tables that migrate.go creates; the DDL there, not
// these tags, decides column types, collations and indexes. Every column is named
// explicitly so that a renamed Go field cannot silently map to another column.
// Timestamps are stamped by the store from Options.Now, never by GORM.

// operationRow is one MSF operation in msf_operations, clusters included.
// Optional parts of Operation are kept apart from empty ones: a NULL column is an
// absent field, and the *_present flags tell a nil cluster list from an empty one.
type operationRow struct {
	ID             string    `gorm:"column:id;primaryKey"`
	OccurredTime   time.Time `gorm:"column:occurred_time"`
	LastUpdateTime time.Time `gorm:"column:last_update_time"`
	// ReservationTime and StartTime are NULL when the notification had none.
	ReservationTime *time.Time `gorm:"column:reservation_time"`
	StartTime       *time.Time `gorm:"column:start_time"`
	Status          string     `gorm:"column:status"`
	SubStatus       *string    `gorm:"column:sub_status"`

	RequestURI    string  `gorm:"column:request_uri"`
	RequestMethod string  `gorm:"column:request_method"`
	RequestBody   *string `gorm:"column:request_body"`

	// ResponsePresent tells an absent response from one sent empty ({}); the
	// status code and body are NULL when absent from the response.
	ResponsePresent    bool    `gorm:"column:response_present"`
	ResponseStatusCode *int    `gorm:"column:response_status_code"`
	ResponseBody       *string `gorm:"column:response_body"`

	TargetClustersPresent bool `gorm:"column:target_clusters_present"`

	// RollbackResult is NULL when the operation has no rollbacks.
	RollbackResult          *string    `gorm:"column:rollback_result"`
	RollbackOccurredTime    *time.Time `gorm:"column:rollback_occurred_time"`
	RollbackClustersPresent bool       `gorm:"column:rollback_clusters_present"`

	// Clusters and ClusterBodies hold both cluster lists (see clusterLists).
	Clusters      *string `gorm:"column:clusters"`
	ClusterBodies *string `gorm:"column:cluster_bodies"`

	// TerminalAt is when the store first recorded a terminal status, on its
	// own clock (Options.Now); NULL while not terminal. Retention counts
	// from it.
	TerminalAt *time.Time `gorm:"column:terminal_at"`

	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (operationRow) TableName() string { return "msf_operations" }

// An operation's clusters (target_clusters and rollbacks.target_clusters) are
// kept in its row, so that a notification is written in one statement:
// msf_operations.clusters holds them without bodies, as JSON (what the detail
// list reads), and cluster_bodies their bodies, in the same order. Both are
// NULL when the operation has no cluster in either list; the *_present
// columns tell an absent list from an empty one.

// clusterLists is the JSON of msf_operations.clusters.
type clusterLists struct {
	Target   []clusterJSON `json:"target,omitempty"`
	Rollback []clusterJSON `json:"rollback,omitempty"`
}

type clusterJSON struct {
	ClusterID     string `json:"cluster_id"`
	RequestURI    string `json:"uri"`
	RequestMethod string `json:"method"`
	// Response tells an absent response from one sent empty ({}).
	Response   bool `json:"response,omitempty"`
	StatusCode *int `json:"status_code,omitempty"`
}

// clusterBodyLists is the JSON of msf_operations.cluster_bodies.
type clusterBodyLists struct {
	Target   []clusterBodiesJSON `json:"target,omitempty"`
	Rollback []clusterBodiesJSON `json:"rollback,omitempty"`
}

// clusterBodiesJSON holds a cluster's request and response bodies; nil is
// absent.
type clusterBodiesJSON struct {
	Request  *string `json:"request,omitempty"`
	Response *string `json:"response,omitempty"`
}

// encodeClusters encodes the two cluster lists as the clusters and
// cluster_bodies columns.
func encodeClusters(target, rollback []Cluster) (clusters, bodies *string, err error) {
	if len(target) == 0 && len(rollback) == 0 {
		return nil, nil, nil
	}
	var l clusterLists
	var b clusterBodyLists
	if l.Target, b.Target, err = clustersToJSON(target); err != nil {
		return nil, nil, err
	}
	if l.Rollback, b.Rollback, err = clustersToJSON(rollback); err != nil {
		return nil, nil, err
	}
	lj, err := json.Marshal(l)
	if err != nil {
		return nil, nil, fmt.Errorf("encode clusters: %w", err)
	}
	bj, err := json.Marshal(b)
	if err != nil {
		return nil, nil, fmt.Errorf("encode cluster bodies: %w", err)
	}
	c, bs := string(lj), string(bj)
	return &c, &bs, nil
}

func clustersToJSON(cs []Cluster) ([]clusterJSON, []clusterBodiesJSON, error) {
	if len(cs) == 0 {
		return nil, nil, nil
	}
	meta := make([]clusterJSON, len(cs))
	bodies := make([]clusterBodiesJSON, len(cs))
	for i, c := range cs {
		if c.ClusterID == "" {
			return nil, nil, fmt.Errorf("cluster %d: empty cluster id", i)
		}
		meta[i] = clusterJSON{ClusterID: c.ClusterID, RequestURI: c.Request.URI, RequestMethod: c.Request.Method}
		bodies[i].Request = c.Request.Body
		if c.Response != nil {
			meta[i].Response = true
			meta[i].StatusCode = c.Response.StatusCode
			bodies[i].Response = c.Response.Body
		}
	}
	return meta, bodies, nil
}

// decodeClusters is encodeClusters backwards. bodies may be nil (the detail
// list does not read them): every body is then nil. The lists returned are
// never nil.
func decodeClusters(clusters, bodies *string) (target, rollback []Cluster, err error) {
	var l clusterLists
	var b clusterBodyLists
	if clusters != nil {
		if err := json.Unmarshal([]byte(*clusters), &l); err != nil {
			return nil, nil, fmt.Errorf("decode clusters: %w", err)
		}
	}
	if bodies != nil {
		if err := json.Unmarshal([]byte(*bodies), &b); err != nil {
			return nil, nil, fmt.Errorf("decode cluster bodies: %w", err)
		}
	}
	return clustersFromJSON(l.Target, b.Target), clustersFromJSON(l.Rollback, b.Rollback), nil
}

func clustersFromJSON(meta []clusterJSON, bodies []clusterBodiesJSON) []Cluster {
	cs := make([]Cluster, len(meta))
	for i, m := range meta {
		cs[i] = Cluster{ClusterID: m.ClusterID, Request: Request{URI: m.RequestURI, Method: m.RequestMethod}}
		if m.Response {
			cs[i].Response = &Response{StatusCode: m.StatusCode}
		}
		if i < len(bodies) {
			cs[i].Request.Body = bodies[i].Request
			if cs[i].Response != nil {
				cs[i].Response.Body = bodies[i].Response
			}
		}
	}
	return cs
}

// iccRow is one ICC connection operation. Seq is assigned by the database when
// the operation id is first recorded and never changes afterwards: it is the
// "order recorded" that breaks ties between equal reception times.
type iccRow struct {
	Seq               int64      `gorm:"column:seq;primaryKey;autoIncrement"`
	OperationID       string     `gorm:"column:operation_id"`
	TenantID          string     `gorm:"column:tenant_id"`
	ConnectionID      string     `gorm:"column:connection_id"`
	OrderType         string     `gorm:"column:order_type"`
	Phase             string     `gorm:"column:phase"`
	OperationStatus   string     `gorm:"column:operation_status"`
	ReceptionDatetime time.Time  `gorm:"column:reception_datetime"`
	CommitDatetime    *time.Time `gorm:"column:commit_datetime"`
	RequestBody       string     `gorm:"column:request_body"`
	ResourceType      string     `gorm:"column:resource_type"`
	// Error is NULL when the operation recorded no error object.
	Error *string `gorm:"column:error"`
	// TerminalAt is as in operationRow.
	TerminalAt *time.Time `gorm:"column:terminal_at"`

	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (iccRow) TableName() string { return "icc_operations" }

// latestRow marks the latest operation (greatest reception time, then seq)
// of one connection of one tenant, in icc_latest. Its reception time is a
// copy of the operation's, so that a tenant's latest list is read in order
// from an index.
type latestRow struct {
	TenantID          string    `gorm:"column:tenant_id;primaryKey"`
	ConnectionID      string    `gorm:"column:connection_id;primaryKey"`
	Seq               int64     `gorm:"column:seq"`
	ReceptionDatetime time.Time `gorm:"column:reception_datetime"`
}

func (latestRow) TableName() string { return "icc_latest" }

// schemaVersionRow records one applied migration step.
type schemaVersionRow struct {
	Version   int       `gorm:"column:version;primaryKey;autoIncrement:false"`
	AppliedAt time.Time `gorm:"column:applied_at"`
}

func (schemaVersionRow) TableName() string { return "schema_version" }

// subscriptionRow is one webhook subscription. Events is a comma-separated
// list of event types; Filter the JSON of a SubscriptionFilter, NULL when
// there is none. DisabledReason is NULL while the subscription is active.
type subscriptionRow struct {
	ID             string    `gorm:"column:id;primaryKey"`
	URL            string    `gorm:"column:url"`
	Secret         string    `gorm:"column:secret"`
	Events         string    `gorm:"column:events"`
	Filter         *string   `gorm:"column:filter"`
	CreatedAt      time.Time `gorm:"column:created_at;autoCreateTime:false"`
	DisabledReason *string   `gorm:"column:disabled_reason"`
}

func (subscriptionRow) TableName() string { return "webhook_subscriptions" }

// deliveryRow is one event for one subscription in the outbox,
// webhook_deliveries. Times are Unix milliseconds. Claim is the token of the
// dispatcher that holds the row until NextAttemptMS (its lease), NULL when
// none does.
type deliveryRow struct {
	Seq            int64   `gorm:"column:seq;primaryKey;autoIncrement"`
	MsgID          string  `gorm:"column:msg_id"`
	SubscriptionID string  `gorm:"column:subscription_id"`
	EventType      string  `gorm:"column:event_type"`
	Subject        string  `gorm:"column:subject"`
	Payload        string  `gorm:"column:payload"`
	State          string  `gorm:"column:state"`
	Attempts       int     `gorm:"column:attempts"`
	CreatedMS      int64   `gorm:"column:created_ms"`
	NextAttemptMS  int64   `gorm:"column:next_attempt_ms"`
	Claim          *string `gorm:"column:claim"`
	LastAttemptMS  *int64  `gorm:"column:last_attempt_ms"`
	LastStatus     *int    `gorm:"column:last_status"`
	LastError      *string `gorm:"column:last_error"`
}

func (deliveryRow) TableName() string { return "webhook_deliveries" }
