"""Sends a known set of metrics to an OTLP/HTTP endpoint with the real OpenTelemetry Python SDK.

Usage: send_metrics.py ENDPOINT [grpc]
  http (default): ENDPOINT like http://127.0.0.1:4318/v1/metrics
  grpc:           ENDPOINT like 127.0.0.1:4317
Exits non-zero if the SDK reports a failed export. Prints the trace and span id (hex) of the span inside
which the slowest request was recorded: the SDK attaches that measurement to its bucket as an exemplar.
"""
import sys

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


FAILED = []


def checked(exporter):
    """Wraps `export` to remember a failed export, so the test cannot pass on a silent drop."""
    original = exporter.export

    def export(metrics_data, *args, **kwargs):
        result = original(metrics_data, *args, **kwargs)
        if result != MetricExportResult.SUCCESS:
            FAILED.append(result)
        return result

    exporter.export = export
    return exporter


def main() -> int:
    endpoint = sys.argv[1]
    if len(sys.argv) > 2 and sys.argv[2] == "grpc":
        exporter = checked(GrpcExporter(endpoint=endpoint, insecure=True))
    else:
        exporter = checked(HttpExporter(endpoint=endpoint))
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": "checkout-1",
            "deployment.environment": "test",
        }
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("vigil.e2e", "1.2.3")

    requests = meter.create_counter("http.requests", unit="{request}", description="Requests served.")
    requests.add(3, {"http.method": "GET"})
    requests.add(2, {"http.method": "GET"})
    requests.add(7, {"http.method": "POST"})

    duration = meter.create_histogram("http.server.duration", unit="ms", description="Request duration.")
    for v in (3, 40, 40):
        duration.record(v, {"http.method": "GET"})
    # Recorded inside a sampled span, so the SDK's default (trace-based) exemplar filter keeps it.
    tracer = TracerProvider(resource=resource).get_tracer("vigil.e2e")
    with tracer.start_as_current_span("slow request") as span:
        duration.record(700, {"http.method": "GET"})
        context = span.get_span_context()
    print(f"{context.trace_id:032x} {context.span_id:016x}")

    queue = meter.create_up_down_counter("queue.size", unit="By")
    queue.add(100)
    queue.add(-30)

    provider.force_flush()
    provider.shutdown()
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
