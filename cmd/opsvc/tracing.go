package main

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// newTracer exports spans over OTLP/HTTP (protobuf) to endpoint, in batches.
// Only run calls it, and only when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: otherwise there is no tracer at
// all, and the server and store skip their spans. The exporter reads the
// other OTEL_EXPORTER_OTLP_* variables itself (headers, timeout,
// compression); OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the
// service (default opsvc). shutdown flushes what is left.
func newTracer(ctx context.Context, endpoint string) (trace.Tracer, func(context.Context) error, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	bi := buildInfo()
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName("opsvc"), semconv.ServiceVersion(bi.Version)),
		resource.Environment(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp.Tracer("example.com/opsvc"), tp.Shutdown, nil
}

// traceHandler adds trace_id and span_id to every log line written with a
// context that holds a span, so that logs and traces can be matched. It is
// installed only with tracing.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
