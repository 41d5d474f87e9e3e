"""The gateway's Prometheus metrics (names from the team brief) and a timing extension."""

from __future__ import annotations

import time
from collections.abc import Iterator

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

# HTTP and event metrics come from thrive_shared.observability.metrics; these are the
# gateway's own, on the same default registry.
OPERATIONS = Counter(
    "thrive_graphql_operations_total",
    "GraphQL operations by name and outcome.",
    ["operation", "outcome"],
)
OPERATION_SECONDS = Histogram(
    "thrive_graphql_operation_duration_seconds",
    "GraphQL operation latency.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RESOLVER_SECONDS = Histogram(
    "thrive_graphql_resolver_duration_seconds",
    "Latency of root resolvers (which call the services).",
    ["field"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
WEBSOCKETS = Gauge("thrive_websocket_connections", "Open GraphQL WebSocket connections.")


tracer = trace.get_tracer("thrive.gateway")


class OperationMetrics(SchemaExtension):
    """Counts operations by name and outcome (ok, error, rejected), times them, and opens a
    span per operation that service calls continue (traceparent on the internal API)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        with tracer.start_as_current_span("graphql.operation") as span:
            yield
            self._record(started, span)

    def _record(self, started: float, span: trace.Span) -> None:
        ctx = self.execution_context
        name = ctx.operation_name or "anonymous"
        if len(name) > 64:
            name = name[:64]
        result = ctx.result
        errors = getattr(result, "errors", None) or ctx.pre_execution_errors
        if ctx.graphql_document is None or (errors and getattr(result, "data", None) is None):
            outcome = (
                "rejected" if ctx.graphql_document is None or ctx.pre_execution_errors else "error"
            )
        elif errors:
            outcome = "error"
        else:
            outcome = "ok"
        if ctx.graphql_document is not None:
            try:
                if ctx.operation_type == OperationType.SUBSCRIPTION:
                    return
            except RuntimeError:
                pass
        span.set_attribute("graphql.operation.name", name)
        span.set_attribute("graphql.outcome", outcome)
        OPERATIONS.labels(operation=name, outcome=outcome).inc()
        OPERATION_SECONDS.labels(operation=name).observe(time.perf_counter() - started)
