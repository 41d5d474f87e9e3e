"""Tracing setup: stray database polls start no traces; queries inside an operation stay in it."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from thrive_shared.observability.tracing import (
    context_from_headers,
    inject_headers,
    sampler,
)

QUERY = {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}


def _tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_a_query_outside_any_operation_is_not_traced() -> None:
    tracer, exporter = _tracer()
    tracer.start_span("SELECT", kind=trace.SpanKind.CLIENT, attributes=QUERY).end()
    assert exporter.get_finished_spans() == ()


def test_queries_inside_an_operation_and_other_roots_are_traced() -> None:
    tracer, exporter = _tracer()
    with tracer.start_as_current_span("POST /x", kind=trace.SpanKind.SERVER) as server:
        tracer.start_span("INSERT", kind=trace.SpanKind.CLIENT, attributes=QUERY).end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /x", "INSERT"}
    assert spans["INSERT"].parent is not None
    assert spans["INSERT"].parent.span_id == server.get_span_context().span_id


def test_a_consumer_continues_the_producers_trace_through_headers() -> None:
    tracer, exporter = _tracer()
    with tracer.start_as_current_span("publish", kind=trace.SpanKind.PRODUCER) as producer:
        headers = inject_headers({"ce-id": "1"})
    assert headers["ce-id"] == "1" and "traceparent" in headers
    kafka_headers = [(k, v.encode()) for k, v in headers.items()]
    with tracer.start_as_current_span(
        "process", context=context_from_headers(kafka_headers), kind=trace.SpanKind.CONSUMER
    ):
        tracer.start_span("UPDATE", kind=trace.SpanKind.CLIENT, attributes=QUERY).end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {s.context.trace_id for s in spans.values()} == {producer.get_span_context().trace_id}
    assert spans["process"].parent.span_id == producer.get_span_context().span_id
    assert spans["UPDATE"].parent.span_id == spans["process"].context.span_id
