"""ASGI fast path: answer repeated shared queries from cached bytes, without running GraphQL.

It sits after authentication (it needs the principal) and before everything else. For a POST
of a JSON GraphQL request by a signed-in caller whose document `sharing.judge` accepts, the
key is (viewer, document, operation name, variables, extensions), where the viewer is the
role class (employee / admin) for shared documents and the person for personal ones. A hit
is written straight to the socket. A miss runs the normal stack (protection, permissions,
resolvers) and stores the body if it has no errors, tagged with what the resolvers read, so
the live events drop it (see LiveState.apply). Anonymous callers, other content types and
every other document take the normal path untouched.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import orjson
from graphql import GraphQLError, GraphQLSchema, parse
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from thrive_shared.observability import metrics

from thrive_gateway.auth.principal import ANONYMOUS, Principal
from thrive_gateway.live.responses import ResponseCache
from thrive_gateway.metrics import OPERATION_SECONDS, OPERATIONS
from thrive_gateway.schema.sharing import NOT_CACHEABLE, Sharing, Verdict, judge

PRINCIPAL_KEY = "thrive.principal"  # set by AuthMiddleware
TAGS_KEY = "thrive.cache_tags"  # a set the resolvers add tags to (GatewayContext.cache_tags)
MAX_DOCUMENT_CHARS = 20_000

RESPONSE_CACHE = Counter(
    "thrive_gateway_response_cache_total",
    "Shared-query response cache lookups and stores.",
    ["result"],  # hit | miss | stored | bypass
)
_HIT = RESPONSE_CACHE.labels("hit")
_MISS = RESPONSE_CACHE.labels("miss")
_STORED = RESPONSE_CACHE.labels("stored")
_BYPASS = RESPONSE_CACHE.labels("bypass")


def viewer_key(principal: Principal, sharing: Sharing) -> Hashable:
    """What of the caller a cached response may depend on: role class, or the person."""
    roles = principal.role_header()
    if sharing is Sharing.PERSON:
        return ("person", principal.person_id, roles)
    return ("class", roles)


class SharedResponses:
    """The response-cache middleware (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: ResponseCache,
        schema: GraphQLSchema,
        allow_list: Mapping[str, str] | None = None,
        max_tokens: int | None = None,
        path: str = "/graphql",
        service: str = "gateway",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.cache = cache
        self.schema = schema
        self.allow_list = dict(allow_list or {})
        self.max_tokens = max_tokens
        self.path = path
        self.clock = clock
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()
        self._http_ok = metrics.HTTP_REQUESTS.labels(service, path, "POST", "200")
        self._http_seconds = metrics.HTTP_DURATION.labels(service, path)
        self._ops: dict[str, tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or not self.cache.enabled
        ):
            await self.app(scope, receive, send)
            return
        principal: Principal = scope.get(PRINCIPAL_KEY, ANONYMOUS)
        if not principal.authenticated or not _plain_json(scope):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        body, more = await _read_body(receive)
        replay = _replay(body, more, receive)
        if more:  # client went away mid-body; let the normal path deal with it
            await self.app(scope, replay, send)
            return
        found = self._lookup(body)
        if found is None:
            _BYPASS.inc()
            await self.app(scope, replay, send)
            return
        verdict, request_key = found
        key = (viewer_key(principal, verdict.sharing), *request_key)
        cached = self.cache.get(key)
        if cached is not None:
            _HIT.inc()
            await _send_json(send, cached)
            elapsed = self.clock() - started
            self._http_ok.inc()
            self._http_seconds.observe(elapsed)
            count, seconds = self._operation_metrics(verdict.operation)
            count.inc()
            seconds.observe(elapsed)
            return
        _MISS.inc()
        await self._run_and_store(scope, replay, send, key=key)

    async def _run_and_store(self, scope: Scope, receive: Receive, send: Send, *, key: Any) -> None:
        tags: set[str] = set()
        scope[TAGS_KEY] = tags
        token = self.cache.begin()
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if status != 200:
            return
        body = b"".join(chunks)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        # Errors (refusals, outages, partial data) are never shared.
        if not isinstance(parsed, dict) or "errors" in parsed or parsed.get("data") is None:
            return
        if self.cache.put(key, body, tags=tags, started=token):
            _STORED.inc()

    def _lookup(self, body: bytes) -> tuple[Verdict, tuple[Hashable, ...]] | None:
        """(verdict, request part of the key) for a cacheable request, else None."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict):
            return None  # batched operations and garbage: the normal path refuses them
        query = request.get("query")
        variables = request.get("variables")
        operation_name = request.get("operationName")
        extensions = request.get("extensions")
        if query is None and isinstance(extensions, dict):
            persisted = extensions.get("persistedQuery")
            digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
            query = self.allow_list.get(digest) if isinstance(digest, str) else None
        if (
            not isinstance(query, str)
            or not isinstance(variables, dict | None)
            or not isinstance(operation_name, str | None)
            or not isinstance(extensions, dict | None)
        ):
            return None
        verdict = self._verdict(query)
        if verdict.sharing is Sharing.NONE or verdict.subscription:
            return None
        try:
            request_key = (
                query,
                operation_name,
                orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b"",
                orjson.dumps(extensions, option=orjson.OPT_SORT_KEYS) if extensions else b"",
            )
        except TypeError:
            return None
        return verdict, request_key

    def _verdict(self, query: str) -> Verdict:
        verdict = self._verdicts.get(query)
        if verdict is not None:
            self._verdicts.move_to_end(query)
            return verdict
        if len(query) > MAX_DOCUMENT_CHARS:
            return NOT_CACHEABLE
        try:
            document = parse(query, no_location=True, max_tokens=self.max_tokens)
            verdict = judge(self.schema, document)
        except GraphQLError:
            verdict = NOT_CACHEABLE
        self._verdicts[query] = verdict
        if len(self._verdicts) > 512:
            self._verdicts.popitem(last=False)
        return verdict

    def _operation_metrics(self, name: str) -> tuple[Any, Any]:
        bound = self._ops.get(name)
        if bound is None:
            label = name[:64]
            bound = (
                OPERATIONS.labels(operation=label, outcome="ok"),
                OPERATION_SECONDS.labels(operation=label),
            )
            self._ops[name] = bound
        return bound


class DirectWebSocket:
    """GraphQL WebSockets go straight to the GraphQL app, past routing, HTTP metrics and the
    ASGI tracing wrapper: that wrapper would hold one server span open for the connection's
    whole life and update it on every message sent, a cost paid per socket per event."""

    def __init__(self, app: ASGIApp, *, endpoint: ASGIApp, path: str = "/graphql") -> None:
        self.app = app
        self.endpoint = endpoint
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await self.endpoint(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _plain_json(scope: Scope) -> bool:
    """A JSON request that wants a plain JSON answer (no multipart, no incremental delivery)."""
    content_type = b""
    accept = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json" and (
        b"multipart" not in accept
    )


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole request body; `more` is True if the client disconnected before its end."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, truncated: bool, receive: Receive) -> Receive:
    """A receive that hands the already read body to the app, then defers to the server."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if truncated:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-thrive-cache", b"hit"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
