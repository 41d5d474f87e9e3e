"""Tiny HTTP receivers on 127.0.0.1 that the services under test send to.

`OtlpCollector` is an OTLP/HTTP trace endpoint (POST /v1/traces, protobuf) keeping every span in
memory; `WebhookSink` records webhook POSTs. Both serve from a background thread, so they keep
answering while the test's event loop is busy or idle (exporters flush whenever they like).
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    Span.SPAN_KIND_INTERNAL: "INTERNAL",
    Span.SPAN_KIND_SERVER: "SERVER",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_PRODUCER: "PRODUCER",
    Span.SPAN_KIND_CONSUMER: "CONSUMER",
}


@dataclass(frozen=True)
class Received:
    """One HTTP request a receiver got."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class _Receiver:
    """A threaded HTTP server on a free loopback port; subclasses decide what to answer."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, content_type, reply = owner.handle(
                    Received(path=self.path, headers=headers, body=body)
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet: pytest output is for failures

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=type(self).__name__, daemon=True
        )
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> _Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, request: Received) -> tuple[int, str, bytes]:
        """(status, content type, body) to answer `request` with."""
        raise NotImplementedError


# --- traces ----------------------------------------------------------------------------------


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, which)


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


@dataclass(frozen=True)
class CollectedSpan:
    """A span as an OTLP exporter sent it, flattened for assertions."""

    service: str  # the resource's service.name
    scope: str  # the instrumentation scope (tracer name)
    name: str
    kind: str  # SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0  # 0 unset, 1 ok, 2 error

    def describe(self) -> str:
        parent = self.parent_span_id or "-"
        return f"{self.service} {self.kind} {self.name!r} {self.span_id}<-{parent}"


def decode_spans(body: bytes) -> list[CollectedSpan]:
    """Every span in one OTLP/HTTP protobuf export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for rs in request.resource_spans:
        service = str(_attributes(rs.resource.attributes).get("service.name", "?"))
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(
                    CollectedSpan(
                        service=service,
                        scope=ss.scope.name,
                        name=s.name,
                        kind=_KINDS.get(s.kind, str(s.kind)),
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex() or None,
                        attributes=_attributes(s.attributes),
                        status_code=s.status.code,
                    )
                )
    return spans


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class OtlpCollector(_Receiver):
    """An OTLP/HTTP trace receiver: point OTEL_EXPORTER_OTLP_ENDPOINT at `url`."""

    def __init__(self) -> None:
        super().__init__()
        self._spans: list[CollectedSpan] = []
        self.rejected: list[str] = []  # requests it could not decode (a test may assert on it)

    def handle(self, request: Received) -> tuple[int, str, bytes]:
        if request.path.rstrip("/") != "/v1/traces":
            return 404, "text/plain", b"only /v1/traces here"
        try:
            body = _decompress(request.body, request.headers.get("content-encoding"))
            spans = decode_spans(body)
        except Exception as exc:  # a broken export must show up in the test, not crash here
            with self._lock:
                self.rejected.append(f"{type(exc).__name__}: {exc}")
            return 400, "text/plain", b"undecodable export"
        with self._lock:
            self._spans.extend(spans)
        return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()

    def spans(self) -> list[CollectedSpan]:
        """Every span received so far."""
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[CollectedSpan]:
        """The spans of one trace received so far."""
        return [s for s in self.spans() if s.trace_id == trace_id]


def tree_problems(spans: list[CollectedSpan]) -> list[str]:
    """Why `spans` are not one connected tree (empty when they are): roots and orphans."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id is None]
    orphans = [s for s in spans if s.parent_span_id is not None and s.parent_span_id not in ids]
    problems = []
    if len(roots) != 1:
        problems.append(f"{len(roots)} roots: {[s.describe() for s in roots]}")
    problems += [f"parent not in trace: {s.describe()}" for s in orphans]
    if len({s.trace_id for s in spans}) > 1:
        problems.append("spans of several traces")
    return problems


def render_tree(spans: list[CollectedSpan]) -> str:
    """The trace as an indented tree, for failure messages."""
    children: dict[str | None, list[CollectedSpan]] = {}
    ids = {s.span_id for s in spans}
    for s in spans:
        parent = s.parent_span_id if s.parent_span_id in ids else None
        children.setdefault(parent, []).append(s)

    def walk(parent: str | None, depth: int) -> Iterator[str]:
        for s in children.get(parent, []):
            yield "  " * depth + s.describe()
            yield from walk(s.span_id, depth + 1)

    return "\n".join(walk(None, 0))


# --- webhooks --------------------------------------------------------------------------------


class WebhookSink(_Receiver):
    """Accepts every webhook POST with 200 and keeps it."""

    def __init__(self) -> None:
        super().__init__()
        self._received: list[Received] = []

    def handle(self, request: Received) -> tuple[int, str, bytes]:
        with self._lock:
            self._received.append(request)
        return 200, "application/json", b'{"ok":true}'

    def received(self) -> list[Received]:
        """Every request received so far."""
        with self._lock:
            return list(self._received)
