"""Metrics, traces and logs shared by every service."""

from thrive_shared.observability import metrics
from thrive_shared.observability.logging import setup_logging
from thrive_shared.observability.tracing import (
    context_from_headers,
    current_trace_id,
    inject_headers,
    setup_tracing,
)

__all__ = [
    "context_from_headers",
    "current_trace_id",
    "inject_headers",
    "metrics",
    "setup_logging",
    "setup_tracing",
]
