"""Readiness probes and idempotent set-up calls against real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from thrive_shared.devstack.errors import StackError
from thrive_shared.devstack.procs import port_open

T = TypeVar("T")

# Kafka error codes the set-up tolerates.
TOPIC_ALREADY_EXISTS = 36
UNKNOWN_TOPIC_OR_PARTITION = 3

# Raised while a server is (re)starting or not listening yet: worth retrying until a deadline.
_PG_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, on its own loop in a worker thread.

    A thread keeps this safe to call while the caller owns an event loop (pytest-asyncio's
    session loop, a notebook): asyncio.run() here would clobber the caller's loop policy.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True)
class TopicSpec:
    """Partitions and topic-level configs of a topic to create."""

    partitions: int = 3
    config: Mapping[str, str] = field(default_factory=dict)


def admin_client(bootstrap: str, *, timeout: float = 10.0) -> AIOKafkaAdminClient:
    """An admin client with a bounded request timeout (callers start and close it)."""
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="thrive-devstack",
        request_timeout_ms=int(timeout * 1000),
    )


async def kafka_brokers(bootstrap: str, *, seconds: float = 5.0) -> int:
    """Number of brokers in the cluster; raises if the metadata call does not succeed."""
    admin = admin_client(bootstrap, timeout=seconds)
    try:
        await asyncio.wait_for(admin.start(), seconds)
        await asyncio.wait_for(admin.list_topics(), seconds)
        cluster = await asyncio.wait_for(admin.describe_cluster(), seconds)
        return len(cluster.get("brokers", []))
    finally:
        await admin.close()


async def wait_kafka(
    bootstrap: str,
    *,
    deadline: float,
    failed: Callable[[], str | None] | None = None,
    what: str,
) -> int:
    """Poll a real metadata call until it succeeds; StackError naming `what` after the deadline.

    `failed` is asked between attempts; a message from it (e.g. "the JVM exited") aborts at once.
    """
    last: BaseException | None = None
    while True:
        # A plain TCP check first: aiokafka logs every refused connection as an error.
        if await asyncio.to_thread(any_port_open, bootstrap):
            try:
                return await kafka_brokers(bootstrap, seconds=max(1.0, min(5.0, _left(deadline))))
            except (KafkaError, OSError, TimeoutError) as exc:
                last = exc
        else:
            last = ConnectionRefusedError(f"nothing listens at {bootstrap}")
        if failed is not None and (reason := failed()):
            raise StackError(reason)
        if time.monotonic() >= deadline:
            raise StackError(f"{what} (last error: {_describe(last)}).")
        await asyncio.sleep(0.25)


async def ensure_topics(
    bootstrap: str, topics: Mapping[str, TopicSpec], *, deadline: float
) -> list[str]:
    """Create the topics that do not exist yet and wait until every partition has a leader."""
    admin = admin_client(bootstrap)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing:
            brokers = len((await admin.describe_cluster()).get("brokers", [])) or 1
            await create_topics(
                admin,
                [
                    NewTopic(
                        name,
                        num_partitions=topics[name].partitions,
                        replication_factor=min(3, brokers),
                        topic_configs=dict(topics[name].config),
                    )
                    for name in missing
                ],
            )
        # Topics someone created earlier keep their partition count; only leaders matter.
        expected = {
            name: spec if name in missing else TopicSpec(partitions=1)
            for name, spec in topics.items()
        }
        await wait_topics_ready(admin, expected, deadline=deadline)
        return missing
    finally:
        await admin.close()


async def create_topics(admin: AIOKafkaAdminClient, new_topics: list[NewTopic]) -> None:
    """CreateTopics that reports per-topic errors (aiokafka returns them silently)."""
    response = await admin.create_topics(new_topics)
    problems = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code not in (0, TOPIC_ALREADY_EXISTS):
            problems.append(f"{name}: error {code} {message or ''}".strip())
    if problems:
        raise StackError(f"Kafka refused to create topics: {'; '.join(problems)}.")


async def wait_topics_ready(
    admin: AIOKafkaAdminClient, topics: Mapping[str, TopicSpec], *, deadline: float
) -> None:
    """Wait until each topic reports its partitions, all with a leader."""
    pending = dict(topics)
    while True:
        described = await admin.describe_topics(list(pending))
        for topic in described:
            partitions = topic.get("partitions") or []
            if (
                topic.get("error_code") == 0
                and len(partitions) >= pending[topic["topic"]].partitions
                and all(p.get("leader", -1) >= 0 for p in partitions)
            ):
                pending.pop(topic["topic"], None)
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise StackError(f"Topics never got partition leaders: {', '.join(sorted(pending))}.")
        await asyncio.sleep(0.05)


async def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Delete topics, ignoring ones that are already gone."""
    names = list(names)
    if not names:
        return
    admin = admin_client(bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(names)
    finally:
        await admin.close()


async def warm_group_coordinator(bootstrap: str, *, deadline: float) -> None:
    """Make the broker create __consumer_offsets now, so the first test's group join is quick."""
    admin = admin_client(bootstrap)
    try:
        await admin.start()
        while True:
            try:
                await admin.find_coordinator("thrive-devstack-warmup")
                return
            except KafkaError:
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def postgres_select_one(url: str, *, seconds: float = 5.0) -> None:
    """Connect and run a real SELECT 1."""
    conn = await asyncpg.connect(url, timeout=seconds)
    try:
        if await conn.fetchval("SELECT 1") != 1:
            raise StackError("SELECT 1 did not return 1.")
    finally:
        await conn.close()


async def wait_postgres(
    url: str,
    *,
    deadline: float,
    failed: Callable[[], str | None] | None = None,
    what: str,
) -> None:
    """Poll SELECT 1 until it succeeds; StackError naming `what` after the deadline."""
    last: BaseException | None = None
    while True:
        try:
            await postgres_select_one(url, seconds=max(1.0, min(5.0, _left(deadline))))
            return
        except _PG_TRANSIENT as exc:
            last = exc
        except asyncpg.InvalidAuthorizationSpecificationError as exc:
            raise StackError(f"{what}: the server refused the login ({exc}).") from exc
        except asyncpg.PostgresError as exc:  # e.g. the database does not exist: not transient
            raise StackError(f"{what}: {_describe(exc)}.") from exc
        if failed is not None and (reason := failed()):
            raise StackError(reason)
        if time.monotonic() >= deadline:
            raise StackError(f"{what} (last error: {_describe(last)}).")
        await asyncio.sleep(0.1)


async def ensure_database(admin_url: str, name: str) -> bool:
    """CREATE DATABASE if it does not exist yet; True if it was created."""
    conn = await asyncpg.connect(admin_url)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False  # created concurrently by another process
        return True
    finally:
        await conn.close()


def quote_ident(name: str) -> str:
    """Quote a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def any_port_open(bootstrap: str) -> bool:
    """True if any host:port of a bootstrap list accepts TCP connections."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isdigit() and port_open(host.strip("[]") or "localhost", int(port)):
            return True
    return False


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "none"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
