"""The runtime every service shares: pool, producer, outbox relay, consumers, HTTP app.

A service describes itself with a ServiceSpec (its routes, and a `setup` hook that adds
consumers and background tasks); the runtime wires the rest the same way everywhere, so
knowing one service means knowing all four.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from thrive_shared.contracts.topics import physical
from thrive_shared.db import create_pool
from thrive_shared.db import migrate as run_migrations
from thrive_shared.http import (
    ApiError,
    JSONResponse,
    api_error_handler,
    http_error_handler,
    unexpected_error_handler,
    validation_error_handler,
)
from thrive_shared.kafka import DeadLetters, EventConsumer, Publisher, make_broker
from thrive_shared.kafka.consumer import AfterCommit, BatchHandler, Handler
from thrive_shared.kafka.producer import security_from_settings
from thrive_shared.observability import metrics, setup_logging, setup_tracing
from thrive_shared.observability.tracing import shutdown_tracing
from thrive_shared.outbox import OutboxRelay
from thrive_shared.settings import CommonSettings

log = logging.getLogger(__name__)

TaskFactory = Callable[["Runtime"], Awaitable[None]]


@dataclass
class ServiceSpec:
    """What makes a service itself; the runtime does the rest."""

    name: str
    settings: CommonSettings
    migrations_dir: Path
    routes: Sequence[BaseRoute] = ()
    setup: Callable[[Runtime], Awaitable[None]] | None = None
    teardown: Callable[[Runtime], Awaitable[None]] | None = None
    schema: str | None = None
    relay_outbox: bool = True
    use_database: bool = True
    ready_checks: list[Callable[[Runtime], Awaitable[bool]]] = field(default_factory=list)
    # Wraps the finished ASGI app, e.g. with a lean fast path for a hot read route that must
    # not pay for routing, spans and metrics middleware (it should count itself).
    wrap_app: Callable[[ASGIApp, Runtime], ASGIApp] | None = None

    @property
    def db_schema(self) -> str:
        return self.schema or self.name


class Runtime:
    """Live resources of a running service, handed to its setup hook and routes."""

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = spec.settings
        self._pool: asyncpg.Pool | None = None
        security = security_from_settings(spec.settings)
        self.publisher = Publisher(
            spec.settings.kafka_bootstrap_servers,
            client_id=f"thrive-{spec.name}",
            security=security,
        )
        self.broker = make_broker(
            spec.settings.kafka_bootstrap_servers,
            client_id=f"thrive-{spec.name}-consumer",
            security=security,
        )
        self.dead_letters = DeadLetters(self.publisher, service=spec.name)
        self.relay: OutboxRelay | None = None
        self.consumers: list[EventConsumer] = []
        self.state: dict[str, Any] = {}
        self._task_factories: list[tuple[str, TaskFactory]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not started")
        return self._pool

    def add_consumer(
        self,
        name: str,
        *,
        topics: Sequence[str],
        handler: Handler,
        after_commit: AfterCommit | None = None,
        max_records: int | None = None,
        group_id: str | None = None,
        auto_offset_reset: Literal["latest", "earliest", "none"] = "earliest",
        batch_handler: BatchHandler | None = None,
    ) -> EventConsumer:
        """Consume `topics` into Postgres via `handler`: exactly-once effects, DLQ on poison."""
        consumer = EventConsumer(
            service=self.name,
            name=name,
            topics=[physical(t) for t in topics],
            handler=handler,
            pool=self.pool,
            dead_letters=self.dead_letters,
            group_id=group_id,
            max_records=max_records or self.settings.consumer_max_records,
            max_attempts=self.settings.consumer_max_attempts,
            after_commit=after_commit,
            auto_offset_reset=auto_offset_reset,
            batch_handler=batch_handler,
            batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
        )
        consumer.register(self.broker)
        self.consumers.append(consumer)
        return consumer

    def add_task(self, name: str, factory: TaskFactory) -> None:
        """Run a background loop for the life of the service (restarted if it crashes)."""
        self._task_factories.append((name, factory))

    async def _supervise(self, name: str, factory: TaskFactory) -> None:
        backoff = 0.5
        while True:
            try:
                await factory(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task crashed; restarting", extra={"task": name})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _relay_process(self, _rt: Runtime) -> None:
        from thrive_shared.relay_process import run_relay_process

        await run_relay_process(self.settings, service=self.name, schema=self.spec.db_schema)

    async def start(self) -> None:
        """Connect everything, run the setup hook, start consuming."""
        s = self.settings
        if self.spec.use_database:
            self._pool = await create_pool(
                s.database_url,
                schema=self.spec.db_schema,
                min_size=s.db_pool_min,
                max_size=s.db_pool_max,
            )
        await self.publisher.start()
        if self.spec.use_database and self.spec.relay_outbox and s.outbox_relay_process:
            # Its own process, started and restarted like any background task of the service.
            self.add_task("outbox-relay-process", self._relay_process)
        elif self.spec.use_database and self.spec.relay_outbox:
            self.relay = OutboxRelay(
                pool=self.pool,
                publisher=self.publisher,
                service=self.name,
                schema=self.spec.db_schema,
            )
            await self.relay.start()
        if self.spec.setup is not None:
            await self.spec.setup(self)
        if self.consumers or self.broker.subscribers:
            await self._start_broker()
        for name, factory in self._task_factories:
            self._tasks.append(asyncio.create_task(self._supervise(name, factory), name=name))
        self.started = True
        log.info("service started", extra={"consumers": [c.group_id for c in self.consumers]})

    async def _start_broker(self) -> None:
        """`broker.start()`, with the subscribers started together instead of in turn.

        faststream 0.7 awaits each subscriber's start, and aiokafka's `start()` of a group
        member returns only once the group has assigned it partitions. Started in turn, every
        member after the first joins a group that has just settled, so each join is one more
        rebalance the earlier members only notice at their next heartbeat (~3 s each: three
        leaderboard members took 6.2 s to start on an idle stack instead of 0.17 s for one).
        Joining together, they settle in one rebalance. The rest is what `broker.start()`
        does (faststream 0.7.8, pinned).
        """
        broker = self.broker
        await broker.connect()
        await asyncio.gather(*(sub.start() for sub in broker.subscribers))
        for pub in broker.publishers:
            await pub.start()
        broker.running = True

    async def stop(self) -> None:
        """Stop consuming first, then finish relaying, then close connections."""
        self.started = False
        with contextlib.suppress(Exception):
            await self.broker.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.spec.teardown is not None:
            with contextlib.suppress(Exception):
                await self.spec.teardown(self)
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.relay_once()
            await self.relay.stop()
        await self.publisher.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        log.info("service stopped")

    async def ready(self) -> dict[str, bool]:
        """Each dependency's readiness: the database answers, Kafka answers a metadata call."""
        checks: dict[str, bool] = {"started": self.started}
        if self.spec.use_database:
            try:
                async with self.pool.acquire(timeout=2.0) as conn:
                    checks["database"] = await conn.fetchval("SELECT 1") == 1
            except Exception:
                checks["database"] = False
        checks["kafka"] = await self.publisher.ping()
        for check in self.spec.ready_checks:
            try:
                checks[getattr(check, "__name__", "check")] = await check(self)
            except Exception:
                checks[getattr(check, "__name__", "check")] = False
        return checks


class _MetricsMiddleware:
    """Counts and times every HTTP request by route template (not raw path: no ids in labels)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template in ("/metrics", "/health", "/ready"):
                pass
            else:
                metrics.HTTP_REQUESTS.labels(
                    self.service, template, scope.get("method", ""), str(status["code"])
                ).inc()
                metrics.HTTP_DURATION.labels(self.service, template).observe(
                    time.perf_counter() - started
                )


def build_app(spec: ServiceSpec, *, runtime: Runtime | None = None) -> Starlette:
    """The service's ASGI app: its routes plus /health, /ready, /metrics and the lifespan."""
    rt = runtime or Runtime(spec)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": spec.name})

    async def ready(request: Request) -> Response:
        checks = await rt.ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics_endpoint(request: Request) -> Response:
        if rt._pool is not None:
            p = rt._pool
            metrics.DB_POOL_CONNECTIONS.labels(spec.name, "used").set(
                p.get_size() - p.get_idle_size()
            )
            metrics.DB_POOL_CONNECTIONS.labels(spec.name, "idle").set(p.get_idle_size())
            metrics.DB_POOL_CONNECTIONS.labels(spec.name, "max").set(p.get_max_size())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.runtime = rt
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()
            shutdown_tracing()

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics_endpoint),
            *spec.routes,
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(_MetricsMiddleware, service=spec.name),
            # A server span per request, continuing the caller's traceparent.
            Middleware(
                OpenTelemetryMiddleware,
                excluded_urls="health,ready,metrics",
                exclude_spans=["receive", "send"],
            ),
        ],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            ValidationError: validation_error_handler,
            Exception: unexpected_error_handler,
        },
    )
    app.state.runtime = rt
    return app


def runtime_of(request: Request) -> Runtime:
    """The Runtime serving this request (for route handlers)."""
    rt: Runtime = request.app.state.runtime
    return rt


def build_asgi(spec: ServiceSpec) -> ASGIApp:
    """build_app plus the service's own wrapper, if any: what uvicorn serves."""
    app = build_app(spec)
    if spec.wrap_app is None:
        return app
    return spec.wrap_app(app, app.state.runtime)


def serve(spec: ServiceSpec) -> None:
    """Run the service with uvicorn until SIGTERM/SIGINT (graceful: lifespan shutdown runs)."""
    import uvicorn

    s = spec.settings
    setup_logging(spec.name, level=s.log_level, json=s.log_json)
    setup_tracing(f"thrive-{spec.name}", otlp_endpoint=s.otel_exporter_otlp_endpoint)
    app = build_asgi(spec)
    uvicorn.run(app, host=s.host, port=s.port, log_config=None, access_log=False, lifespan="on")


def migrate(spec: ServiceSpec) -> list[str]:
    """Apply the shared and the service's migrations to its schema."""
    setup_logging(spec.name, level=spec.settings.log_level, json=spec.settings.log_json)
    return run_migrations(
        spec.settings.database_url, schema=spec.db_schema, migrations_dir=spec.migrations_dir
    )
