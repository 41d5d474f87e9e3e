"""Trace context for sends: a webhook or email continues the trace of the event behind it."""

from __future__ import annotations

from opentelemetry import context as otel_context
from thrive_shared.observability import context_from_headers

from thrive_notifier.service_layer.ports import ClaimedDelivery


def send_context(d: ClaimedDelivery) -> otel_context.Context | None:
    """The parent of a send's span: the consumed event's context, so the send joins its trace.

    None (the current context) for deliveries that come from no traced event (digests).
    """
    return context_from_headers(d.trace.headers()) if d.trace else None
