"""Postgres helpers: pools bound to a service's schema, and migrations through yoyo."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _check_schema(schema: str) -> str:
    if not _IDENT.match(schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    return schema


async def _init_connection(conn: asyncpg.Connection) -> None:
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
