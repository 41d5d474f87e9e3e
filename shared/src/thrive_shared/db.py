"""Postgres helpers: pools bound to a service's schema, and migrations through yoyo."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson
from opentelemetry import trace

from thrive_shared.observability.tracing import exporting

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_schema(schema: str) -> str:
    if not _IDENT.match(schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    return schema


_db_tracer = trace.get_tracer("thrive.db")


def _query_span(record: Any) -> None:
    """A span per query, timed by asyncpg itself, as a child of whatever span is current."""
    end = time.time_ns()
    start = end - int(record.elapsed * 1e9)
    statement = " ".join(record.query.split())[:300]
    span = _db_tracer.start_span(
        statement.split(" ", 1)[0].upper() if statement else "SQL",
        kind=trace.SpanKind.CLIENT,
        start_time=start,
        attributes={"db.system.name": "postgresql", "db.query.text": statement},
    )
    if record.exception is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(record.exception).__name__))
    span.end(end_time=end)


async def _init_connection(conn: asyncpg.Connection) -> None:
    if exporting():
        conn.add_query_logger(_query_span)
    # jsonb in and out as Python objects, through orjson.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def create_pool(
    database_url: str,
    *,
    schema: str,
    min_size: int = 2,
    max_size: int = 10,
    **kwargs: Any,
) -> asyncpg.Pool:
    """An asyncpg pool whose connections see only `schema` (plus pg_catalog)."""
    settings = dict(kwargs.pop("server_settings", {}) or {})
    settings.setdefault("search_path", _check_schema(schema))
    settings.setdefault("application_name", f"thrive-{schema}")
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        server_settings=settings,
        init=_init_connection,
        **kwargs,
    )
    assert pool is not None
    return pool


def yoyo_url(database_url: str, *, schema: str) -> str:
    """Turn a postgresql:// URL into yoyo's psycopg 3 URL pinned to `schema`."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    query["schema"] = _check_schema(schema)
    return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), ""))


def migrate(database_url: str, *, schema: str, migrations_dir: Path | str) -> list[str]:
    """Create `schema` if needed and apply the shared, then the service's, pending migrations."""
    import psycopg
    from yoyo import get_backend, read_migrations

    _check_schema(schema)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    backend = get_backend(yoyo_url(database_url, schema=schema))
    migrations = read_migrations(str(SHARED_MIGRATIONS), str(migrations_dir))
    applied: list[str] = []
    with backend.lock():
        pending = backend.to_apply(migrations)
        for migration in pending:
            applied.append(migration.id)
        backend.apply_migrations(pending)
    for mid in applied:
        log.info("migration applied", extra={"schema": schema, "migration": mid})
    return applied
