package store

import (
	"errors"
	"fmt"
)

// Callers tell failures apart with errors.Is. Store methods wrap these sentinels
// with the operation and id concerned; any other error they return is a database
// failure, or a caller's mistake the store refuses (an empty id, an ICC filter
// without a tenant).
var (
	// ErrNotFound means no record has the requested id.
	ErrNotFound = errors.New("not found")

	// ErrConflict means a write was refused because it would move a record
	// backwards (030007 for MSF operations); nothing was changed.
	ErrConflict = errors.New("conflict")

	// ErrUnavailable means the database could not be reached: the connection was
	// refused or broken, the server is down or did not answer within
	// Options.Timeout, or the store is closed; a Galera node outside the
	// primary component or not synced (errors 1047 and 1180); or a write kept
	// losing to concurrent writers until its retries ran out. A write that
	// fails with it was rolled back, unless the error is also ErrOutcomeUnknown.
	ErrUnavailable = errors.New("database unavailable")

	// ErrOutcomeUnknown means the connection broke, or the database stopped
	// answering, after a write that commits (a COMMIT, or a statement that
	// commits on its own) was sent: the write may or may not have been
	// committed. It matches ErrUnavailable too.
	ErrOutcomeUnknown = fmt.Errorf("%w after the write was sent: it may have been committed", ErrUnavailable)
)

// ConflictError is a write refused because it would move a record backwards
// (030007 for MSF operations, 409 for ICC ones). It matches ErrConflict with
// errors.Is. Field names what would have gone backwards and Reason says how,
// in words fit for the caller's error message.
type ConflictError struct {
	Field  string
	Reason string
}

// Error reads "conflict: FIELD: REASON".
func (e *ConflictError) Error() string {
	return ErrConflict.Error() + ": " + e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
