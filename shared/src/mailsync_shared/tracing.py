"""OpenTelemetry traces across the services, exported over OTLP when an endpoint is configured.

The trace context travels in the RabbitMQ message headers (FastStream's telemetry
middleware), so one trace runs from ingest's publish through capture, associate and the
public event, and from an api request through send to the SMTP server's answer.

Off by default: without `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) no tracer
provider is installed, the middleware's spans cost next to nothing, and the api leaves out its
request instrumentation (`traces_recorded`). Everything else comes
from the standard `OTEL_*` variables (service name, resource attributes, sampler, headers).
"""

import os

from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def configure_tracing(service: str) -> None:
    """Install the OTLP-exporting tracer provider if the environment asks for one; called
    once by each service's entry point."""
    if not tracing_requested():
        return
    name = os.environ.get("OTEL_SERVICE_NAME") or f"mailsync-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def traces_recorded() -> bool:
    """Whether a tracer provider that records spans is installed (by `configure_tracing`, or a
    test's own); without one, instrumentation that only makes spans can be left out."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def tracer(component: str) -> Tracer:
    """A tracer for a service's own spans (an IMAP batch, an SMTP relay, a Sent append), which
    nest under the delivery or request span that is current when they start."""
    return trace.get_tracer(f"mailsync.{component}")


def broker_tracing() -> RabbitTelemetryMiddleware:
    """FastStream's middleware: a span per publish and per delivery, context in the headers."""
    return RabbitTelemetryMiddleware()
