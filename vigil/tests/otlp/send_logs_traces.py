"""Sends a nested trace and correlated log records with the real OpenTelemetry Python SDK.

Usage: send_logs_traces.py TRANSPORT ENDPOINT
  http: ENDPOINT like http://127.0.0.1:4318 (the exporters append /v1/traces and /v1/logs)
  grpc: ENDPOINT like 127.0.0.1:4317
Prints what it sent as JSON (ids in lower-case hex) and exits non-zero if any export failed.
"""
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

FAILED = []


def checked(exporter):
    """Remembers a failed export (the result enums differ per signal; both name success SUCCESS)."""
    original = exporter.export

    def export(batch, *args, **kwargs):
        result = original(batch, *args, **kwargs)
        if getattr(result, "name", None) != "SUCCESS":
            FAILED.append(str(result))
        return result

    exporter.export = export
    return exporter


def main() -> int:
    transport, endpoint = sys.argv[1], sys.argv[2]
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
        log_exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs")
    resource = Resource.create({"service.name": "frontend", "deployment.environment": "test"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(checked(span_exporter)))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(checked(log_exporter)))
    log = logging.getLogger("vigil.e2e")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

    tracer = tracer_provider.get_tracer("vigil.e2e")
    sent = {"spans": [], "logs": []}

    def remember(span, parent):
        ctx = span.get_span_context()
        sent["spans"].append(
            {
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_span_id": format(parent.get_span_context().span_id, "016x") if parent else None,
                "name": span.name,
            }
        )

    with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as root:
        with tracer.start_as_current_span("reserve-stock") as child:
            with tracer.start_as_current_span("db-query", attributes={"db.system": "postgresql"}) as grandchild:
                log.error("stock query failed for order 42")
                ctx = grandchild.get_span_context()
                sent["logs"].append(
                    {"body": "stock query failed for order 42", "level": "error",
                     "trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
                )
                remember(grandchild, child)
            remember(child, root)
        log.info("checkout finished")
        ctx = root.get_span_context()
        sent["logs"].append({"body": "checkout finished", "level": "info",
                             "trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")})
        remember(root, None)

    tracer_provider.shutdown()
    logger_provider.shutdown()
    print(json.dumps(sent))
    if FAILED:
        print("failed exports: " + ", ".join(FAILED), file=sys.stderr)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
