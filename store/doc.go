// Package store is the persistence layer of the Operations Service: it keeps MSF
// operation results and ICC connection operation history in MySQL 8, MariaDB 10.11+
// or an embedded pure-Go SQLite file, through GORM.
//
// On a MariaDB Galera cluster node (found once at Open: wsrep_on) it also
// checks the node's wsrep state in Ping, reads with wsrep_sync_wait=1, and
// retries certification conflicts; see README.md, Scaling out.
//
// It speaks in its own record types (Operation, ICCOperation) and sentinel errors
// (ErrNotFound, ErrConflict, ErrUnavailable, ErrOutcomeUnknown), so it can be used
// from a test or a one-off tool without HTTP. It must not import any other package
// of this module, nor echo or the generated API code; callers depend on it, never
// the reverse.
package store
