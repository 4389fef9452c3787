package store

import "time"

// The row structs mirror the tables that migrate.go creates; the DDL there, not
// these tags, decides column types, collations and indexes. Every column is named
// explicitly so that a renamed Go field cannot silently map to another column.
// Timestamps are stamped by the store from Options.Now, never by GORM.

// operationRow is one MSF operation in msf_operations, without its clusters.
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

	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (operationRow) TableName() string { return "msf_operations" }

// Cluster kinds in msf_clusters.kind.
const (
	kindTarget   = "target"
	kindRollback = "rollback"
)

// clusterRow is one entry of an operation's target_clusters or
// rollbacks.target_clusters, at its position in that list.
type clusterRow struct {
	OperationID string `gorm:"column:operation_id;primaryKey"`
	Kind        string `gorm:"column:kind;primaryKey"`
	Pos         int    `gorm:"column:pos;primaryKey;autoIncrement:false"`
	ClusterID   string `gorm:"column:cluster_id"`

	RequestURI    string  `gorm:"column:request_uri"`
	RequestMethod string  `gorm:"column:request_method"`
	RequestBody   *string `gorm:"column:request_body"`

	// As in operationRow.
	ResponsePresent    bool    `gorm:"column:response_present"`
	ResponseStatusCode *int    `gorm:"column:response_status_code"`
	ResponseBody       *string `gorm:"column:response_body"`
}

func (clusterRow) TableName() string { return "msf_clusters" }

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

	CreatedAt time.Time `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (iccRow) TableName() string { return "icc_operations" }

// schemaVersionRow records one applied migration step.
type schemaVersionRow struct {
	Version   int       `gorm:"column:version;primaryKey;autoIncrement:false"`
	AppliedAt time.Time `gorm:"column:applied_at"`
}

func (schemaVersionRow) TableName() string { return "schema_version" }
