"""The gateway's ASGI app: GraphQL over HTTP and WebSocket, health, metrics, widgets, dev issuer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from thrive_shared.service import Runtime, ServiceSpec, build_app

from thrive_gateway.auth import ANONYMOUS, InvalidToken, JwksCache, Principal, TokenVerifier
from thrive_gateway.auth.dev_issuer import DevIssuer
from thrive_gateway.auth.jwks import JwksFetcher, http_fetcher
from thrive_gateway.clients.api import Services
from thrive_gateway.clients.http import http_services
from thrive_gateway.fastpath import PRINCIPAL_KEY, TAGS_KEY, DirectWebSocket, SharedResponses
from thrive_gateway.live.cache import TtlCache
from thrive_gateway.live.consumer import (
    LIVE_TOPICS,
    live_consumer_positioned,
    register_live_consumer,
)
from thrive_gateway.live.events import LiveState
from thrive_gateway.live.responses import ResponseCache
from thrive_gateway.metrics import WEBSOCKETS, OperationMetrics
from thrive_gateway.protection.body_limit import BodySizeLimit
from thrive_gateway.protection.persisted import allow_list_of_operations, load_allow_list
from thrive_gateway.protection.rate_limit import RateLimiter
from thrive_gateway.schema import build_schema
from thrive_gateway.schema.context import GatewayContext
from thrive_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
WIDGETS_DIR = Path(__file__).parent / "widgets"
WIDGET_OPERATIONS = WIDGETS_DIR / "static" / "operations.json"
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@dataclass
class Gateway:
    """What the app is made of; tests build one with fakes."""

    settings: GatewaySettings
    services: Services
    verifier: TokenVerifier
    live: LiveState
    rate_limiter: RateLimiter
    dev_issuer: DevIssuer | None = None
    http_clients: list[httpx.AsyncClient] = field(default_factory=list)
    live_topics: Sequence[str] = LIVE_TOPICS
    ready: bool = True


def bearer_token(value: str | None) -> str | None:
    """The token in an `Authorization: Bearer <token>` value, if any."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class AuthMiddleware:
    """Validates the bearer token of HTTP requests; 401 for a bad one, anonymous for none."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        principal: Principal = ANONYMOUS
        if header is not None:
            token = bearer_token(header)
            try:
                if token is None:
                    raise InvalidToken("use an `Authorization: Bearer <token>` header")
                principal = await self.verifier.verify(token)
            except InvalidToken as exc:
                response = JSONResponse(
                    {"errors": [{"message": str(exc), "extensions": {"code": "UNAUTHENTICATED"}}]},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                await response(scope, receive, send)
                return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)


class GatewayGraphQL(GraphQL[GatewayContext, None]):
    """Strawberry's ASGI view with the gateway's context and connection_init authentication."""

    def __init__(self, gateway: Gateway, **kwargs: Any) -> None:
        self.gateway = gateway
        super().__init__(**kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            WEBSOCKETS.inc()
            try:
                await super().__call__(scope, receive, send)
            finally:
                WEBSOCKETS.dec()
            return
        await super().__call__(scope, receive, send)

    def encode_json(self, data: object) -> str:
        # A str, not bytes: strawberry sends bytes as binary WebSocket frames.
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    async def get_context(self, request: Request | WebSocket, response: Any) -> GatewayContext:
        gw = self.gateway
        principal = request.scope.get(PRINCIPAL_KEY, ANONYMOUS)
        return GatewayContext(
            services=gw.services,
            live=gw.live,
            settings=gw.settings,
            rate_limiter=gw.rate_limiter,
            principal=principal,
            request=request,
            response=response,
            cache_tags=request.scope.get(TAGS_KEY),
        )

    async def on_ws_connect(self, context: GatewayContext) -> dict[str, object] | None:
        params = context.connection_params or {}
        raw = params.get("authorization") or params.get("Authorization")
        token = bearer_token(raw) if isinstance(raw, str) else None
        if token is None and isinstance(params.get("token"), str):
            token = params["token"]
        if not token:
            raise ConnectionRejectionError({"reason": "send a bearer token in connection_init"})
        try:
            context.principal = await self.gateway.verifier.verify(token)
        except InvalidToken as exc:
            raise ConnectionRejectionError({"reason": str(exc)}) from exc
        context.fresh_loaders()
        return {"person": context.principal.person_id}


def build_gateway(
    settings: GatewaySettings,
    *,
    services: Services | None = None,
    jwks_fetcher: JwksFetcher | None = None,
    live: LiveState | None = None,
) -> Gateway:
    """Wire the gateway's parts from settings; pass fakes to replace any of them."""
    dev = None
    if settings.dev_issuer and not settings.production:
        dev = DevIssuer(issuer=settings.oidc_issuer, audience=settings.oidc_audience)
    if jwks_fetcher is None:
        if dev is not None:
            dev_jwks = dev.jwks()

            async def fetch_dev() -> dict[str, Any]:
                return dev_jwks

            jwks_fetcher = fetch_dev
        else:
            jwks_fetcher = http_fetcher(settings.jwks_url, timeout=settings.service_timeout_seconds)
    verifier = TokenVerifier(
        JwksCache(
            jwks_fetcher,
            max_age=settings.jwks_max_age_seconds,
            cooldown=settings.jwks_refetch_cooldown_seconds,
        ),
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        algorithms=settings.jwt_algorithms,
        leeway=settings.jwt_leeway_seconds,
    )
    clients: list[httpx.AsyncClient] = []
    if services is None:
        services, clients = http_services(
            recognition_url=settings.recognition_url,
            leaderboard_url=settings.leaderboard_url,
            notifier_url=settings.notifier_url,
            timeout=settings.service_timeout_seconds,
        )
    if live is None:
        live = LiveState(
            feed_cache=TtlCache(ttl=settings.feed_cache_ttl_seconds, max_entries=2_000),
            board_cache=TtlCache(ttl=settings.board_cache_ttl_seconds, max_entries=2_000),
            responses=ResponseCache(
                ttl=settings.response_cache_ttl_seconds,
                max_entries=settings.response_cache_max_entries,
            ),
        )
    return Gateway(
        settings=settings,
        services=services,
        verifier=verifier,
        live=live,
        rate_limiter=RateLimiter(
            rate_per_minute=settings.mutation_rate_per_minute, burst=settings.mutation_burst
        ),
        dev_issuer=dev,
        http_clients=clients,
    )


def _allow_list(settings: GatewaySettings) -> Mapping[str, str]:
    """Documents known by hash: the widgets' operations always (so widgets can send hashes
    alone), plus an operator's file. `persisted_queries_only` makes it the only way in."""
    known = allow_list_of_operations(WIDGET_OPERATIONS)
    if settings.persisted_queries_file is not None:
        known.update(load_allow_list(settings.persisted_queries_file))
    return known


def create_app(
    gateway: Gateway,
    *,
    extra_extensions: Sequence[Callable[[], SchemaExtension]] = (),
    with_runtime: bool | None = None,
) -> Starlette:
    """The Starlette app for a wired gateway.

    With the shared runtime (the default when live consumers are on) /health, /ready,
    /metrics, HTTP metrics and the lifespan come from thrive_shared.service, and the live
    topics are consumed through its broker. Without it (unit tests) the same routes are
    served by a plain Starlette app.
    """
    settings = gateway.settings
    allow_list = _allow_list(settings)
    schema = build_schema(
        settings,
        allow_list=allow_list,
        extra_extensions=[OperationMetrics, *extra_extensions],
    )
    graphql = GatewayGraphQL(
        gateway,
        schema=schema,
        graphql_ide=None if settings.production else "graphiql",
        allow_queries_via_get=False,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        keep_alive=True,
        keep_alive_interval=15,
    )

    async def demo(_: Request) -> Response:
        return FileResponse(WIDGETS_DIR / "demo.html", media_type="text/html")

    routes: list[BaseRoute] = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/demo", demo, methods=["GET"]),
        Mount("/widgets", app=StaticFiles(directory=WIDGETS_DIR / "static"), name="widgets"),
    ]
    if gateway.dev_issuer is not None:
        routes += gateway.dev_issuer.routes("/dev-oidc")

    async def close_clients() -> None:
        for client in gateway.http_clients:
            await client.aclose()

    if with_runtime is None:
        with_runtime = settings.live_consumers
    if with_runtime:
        app = _runtime_app(gateway, routes, close_clients)
    else:
        app = _plain_app(gateway, routes, close_clients)
    app.state.gateway = gateway
    # Innermost first: the response cache needs the principal, and a hit skips the rest.
    app.add_middleware(DirectWebSocket, endpoint=graphql)
    app.add_middleware(
        SharedResponses,
        cache=gateway.live.responses,
        schema=schema._schema,
        allow_list=allow_list,
        max_tokens=settings.max_tokens,
    )
    app.add_middleware(AuthMiddleware, verifier=gateway.verifier)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app


def _runtime_app(
    gateway: Gateway, routes: list[BaseRoute], close: Callable[[], Awaitable[None]]
) -> Starlette:
    subscriber: Any = None

    async def setup(runtime: Runtime) -> None:
        nonlocal subscriber
        subscriber = register_live_consumer(
            runtime.broker, gateway.live, topic_names=gateway.live_topics
        )

    async def live_topics_positioned(_: Runtime) -> bool:
        return subscriber is not None and await live_consumer_positioned(subscriber)

    async def teardown(_: Runtime) -> None:
        await close()

    spec = ServiceSpec(
        name="gateway",
        settings=gateway.settings,
        migrations_dir=MIGRATIONS_DIR,
        routes=routes,
        setup=setup,
        teardown=teardown,
        relay_outbox=False,
        use_database=False,
        ready_checks=[live_topics_positioned],
    )
    # thrive_shared has no py.typed yet: mypy sees build_app as returning Any.
    app: Starlette = build_app(spec)
    return app


def _plain_app(
    gateway: Gateway, routes: list[BaseRoute], close: Callable[[], Awaitable[None]]
) -> Starlette:
    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "gateway"})

    async def ready(_: Request) -> Response:
        if not gateway.ready:
            return JSONResponse({"status": "not_ready"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await close()

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *routes,
        ],
        lifespan=lifespan,
    )
