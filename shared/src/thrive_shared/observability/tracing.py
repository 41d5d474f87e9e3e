"""OpenTelemetry setup and W3C trace-context propagation through Kafka headers."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

log = logging.getLogger(__name__)
_configured = False
_exporting = False


class NoRootQueries(Sampler):
    """Drops a database query that would start a trace of its own; samples every other root.

    Background loops (the outbox relay, delivery workers, schedulers) poll Postgres all the
    time outside any request or event: a one-span trace per poll would bury the traces of
    user actions. Queries made inside a request or an event handler follow their parent.
    """

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if attributes and "db.system.name" in attributes:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "NoRootQueries"


def sampler() -> Sampler:
    """Follow the parent's decision; for roots, everything but stray database queries."""
    return ParentBased(root=NoRootQueries())


def exporting() -> bool:
    """True when spans go somewhere (an exporter is installed): then DB queries get spans too."""
    return _exporting


def setup_tracing(
    service_name: str,
    *,
    otlp_endpoint: str | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Install a tracer provider once per process; export via OTLP/HTTP if an endpoint is set."""
    global _configured, _exporting
    if _configured:
        provider = trace.get_tracer_provider()
        return provider if isinstance(provider, TracerProvider) else None
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces")
    _configured = True
    # Outgoing HTTP (the gateway's calls to the services, webhooks) carries traceparent.
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument()
    if exporter is None:
        # Nothing would receive spans: keep OpenTelemetry's no-op tracer, so no span is
        # recorded per event for nothing. Incoming trace context still passes through.
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), sampler=sampler()
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    _exporting = True
    trace.set_tracer_provider(provider)
    return provider


def shutdown_tracing() -> None:
    """Flush spans still buffered (on graceful shutdown)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(5_000)


def inject_headers(
    headers: dict[str, str] | None = None, *, context: otel_context.Context | None = None
) -> dict[str, str]:
    """Trace context (current, or `context`) as W3C headers for a Kafka record or a ledger row."""
    carrier: dict[str, str] = dict(headers or {})
    propagate.inject(carrier, context=context)
    return carrier


def context_from_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, bytes]] | None,
) -> otel_context.Context:
    """The trace context a producer put in a record's headers (or an empty one)."""
    if headers is None:
        return otel_context.Context()
    if isinstance(headers, Mapping):
        carrier = dict(headers)
    else:
        carrier = {k: (v.decode("utf-8", "replace") if v is not None else "") for k, v in headers}
    return propagate.extract(carrier)


def current_trace_id() -> str | None:
    """Hex trace id of the active span, for logs."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
