package store

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// Tracing: with Options.Tracer set, every statement gets a client span, a
// child of the span in the caller's ctx: GORM's statements through the
// callbacks below, the two written straight to database/sql (the MSF upsert,
// the ICC list queries) through startSpan. The SQL text carries placeholders,
// never the values (bodies, tenants). Without a Tracer nothing is registered
// and nothing runs.

// spanKey is where a GORM statement keeps its span between the callbacks.
const spanKey = "opsvc:span"

// registerTracing adds the span callbacks to db.
func (s *Store) registerTracing(db *gorm.DB) error {
	before := func(op string) func(*gorm.DB) {
		return func(tx *gorm.DB) {
			name := op
			if tx.Statement.Table != "" {
				name += " " + tx.Statement.Table
			}
			_, span := s.tracer.Start(tx.Statement.Context, name, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.system.name", s.dialect.String())))
			tx.InstanceSet(spanKey, span)
		}
	}
	after := func(tx *gorm.DB) {
		v, ok := tx.InstanceGet(spanKey)
		if !ok {
			return
		}
		span := v.(trace.Span)
		span.SetAttributes(attribute.String("db.query.text", tx.Statement.SQL.String()),
			attribute.Int64("db.response.returned_rows", tx.Statement.RowsAffected))
		if err := tx.Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			span.RecordError(err)
			span.SetStatus(codes.Error, "statement failed")
		}
		span.End()
	}
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().Before("gorm:create").Register("opsvc:span_create", before("INSERT")),
		cb.Create().After("gorm:create").Register("opsvc:span_create_end", after),
		cb.Query().Before("gorm:query").Register("opsvc:span_query", before("SELECT")),
		cb.Query().After("gorm:query").Register("opsvc:span_query_end", after),
		cb.Update().Before("gorm:update").Register("opsvc:span_update", before("UPDATE")),
		cb.Update().After("gorm:update").Register("opsvc:span_update_end", after),
		cb.Delete().Before("gorm:delete").Register("opsvc:span_delete", before("DELETE")),
		cb.Delete().After("gorm:delete").Register("opsvc:span_delete_end", after),
		cb.Row().Before("gorm:row").Register("opsvc:span_row", before("SQL")),
		cb.Row().After("gorm:row").Register("opsvc:span_row_end", after),
		cb.Raw().Before("gorm:raw").Register("opsvc:span_raw", before("SQL")),
		cb.Raw().After("gorm:raw").Register("opsvc:span_raw_end", after),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// startSpan starts a span for a statement sent straight to database/sql.
// end records err and ends it. Without a Tracer both do nothing.
func (s *Store) startSpan(ctx context.Context, name, query string) (end func(err error)) {
	if s.tracer == nil {
		return noEnd
	}
	_, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", s.dialect.String()), attribute.String("db.query.text", query)))
	return func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "statement failed")
		}
		span.End()
	}
}

func noEnd(error) {}
