"""pytest plugin for Thrive: the shared real stack, a fresh database and unique topics per test.

Loaded by the repository's root conftest.py (`pytest_plugins = ["thrive_shared.testing"]`).

Fixtures:
    stack          (session)  Endpoints of real Kafka + PostgreSQL; starts them if needed.
    database_url   (function) URL of a new, empty database just for this test; dropped after.
    topic_factory  (function) `await topic_factory("name", partitions=3, config={...})` creates
                              a uniquely suffixed topic, returns its name, deletes it after.
Helpers:
    wait_for(cond, *, timeout=10.0, ...)  poll a sync or async condition with a deadline.
    unique_name(prefix)                   e.g. consumer group ids that no other run shares.
    fresh_database(server_url, prefix)    async context: a new empty database, dropped after.
    isolated_platform(stack, ...)         async context: the four services as real processes
                                          on a fresh database, own topic copies, free ports.

Tests marked `stack` get the stack started automatically, even without asking for a fixture.
Many people share one stack: isolate by these fixtures, never stop the stack from a test.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from thrive_shared.devstack import Endpoints, ensure_up, probes
from thrive_shared.devstack.probes import TopicSpec, quote_ident
from thrive_shared.platform import NAMES, Platform

__all__ = [
    "TopicFactory",
    "free_port",
    "fresh_database",
    "isolated_platform",
    "unique_name",
    "wait_for",
    "with_database",
]

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
# Kafka caps topic names at 249 characters; leave room for the suffix.
_TOPIC_PREFIX_MAX = 200
# PostgreSQL truncates identifiers at 63 bytes.
_DB_SLUG_MAX = 40


class TopicFactory(Protocol):
    """Signature of the `topic_factory` fixture."""

    async def __call__(
        self, name: str, partitions: int = 3, *, config: Mapping[str, str] | None = None
    ) -> str:
        """Create a uniquely suffixed topic and return its full name."""
        ...


def unique_name(prefix: str) -> str:
    """prefix + a random suffix: for group ids, keys and other names no other run may share."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def fresh_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """URL of a new, empty database on `server_url`'s server; dropped on exit, even if in use."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_url)
    try:
        # template0: always empty, and nobody can be connected to it (template1 may be busy).
        await admin.execute(f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0")
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        finally:
            await admin.close()


@asynccontextmanager
async def isolated_platform(
    stack: Endpoints,
    *,
    label: str,
    log_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    ready_deadline_s: float = 120.0,
) -> AsyncIterator[Platform]:
    """recognition, leaderboard, notifier and gateway as real processes, on a fresh database,
    on their own copies of every topic and on free ports, so nothing else on the machine
    interferes; stopped and their database dropped on exit."""
    async with fresh_database(stack.database_url, f"thrive_{label}") as database:
        plat = Platform(
            kafka=stack.kafka_bootstrap,
            database=database,
            ports={n: free_port() for n in NAMES},
            topic_suffix=uuid.uuid4().hex[:10],
            log_dir=log_dir,
            extra_env={"LOG_LEVEL": "INFO", **(extra_env or {})},
        )
        await plat.create_topics()
        plat.migrate()
        plat.start()
        try:
            await plat.wait_ready(deadline_s=ready_deadline_s)
            yield plat
        finally:
            plat.stop()


async def wait_for(
    cond: Callable[[], Any],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - the brief's contract; a deadline, not a cancel
    interval: float = 0.02,
    message: str = "condition was not met",
) -> Any:
    """Poll `cond` (sync, or returning an awaitable) until truthy; return that value.

    An AssertionError raised by `cond` counts as "not yet" (so cond may assert). After
    `timeout` seconds, raises AssertionError with `message`, the last result or assertion.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        failure: AssertionError | None = None
        value: Any = None
        try:
            value = cond()
            if inspect.isawaitable(value):
                value = await value
        except AssertionError as exc:
            failure = exc
        if failure is None and value:
            return value
        if loop.time() >= deadline:
            last = (
                f"last assertion: {failure}" if failure is not None else f"last result: {value!r}"
            )
            raise AssertionError(f"{message} (waited {timeout:g}s; {last})")
        await asyncio.sleep(interval)


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def stack() -> Endpoints:
    """Real Kafka + PostgreSQL, started if not running (env overrides honoured)."""
    return ensure_up()


@pytest.fixture(autouse=True)
def _thrive_stack_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """A test marked `stack` gets the stack, whichever fixtures it asks for."""
    if request.node.get_closest_marker("stack") is not None:
        request.getfixturevalue("stack")


@pytest.fixture
async def database_url(stack: Endpoints, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, empty database for this test only (dropped afterwards, even if still in use)."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:_DB_SLUG_MAX]
    async with fresh_database(stack.database_url, f"t_{slug}") as url:
        yield url


@pytest.fixture
async def topic_factory(stack: Endpoints) -> AsyncIterator[TopicFactory]:
    """`await topic_factory("name", partitions=3, config={...})` -> unique topic name."""
    admin = probes.admin_client(stack.kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(
        name: str, partitions: int = 3, *, config: Mapping[str, str] | None = None
    ) -> str:
        if not _TOPIC_NAME.match(name) or len(name) > _TOPIC_PREFIX_MAX:
            raise ValueError(
                f"Topic name {name!r} must be 1-{_TOPIC_PREFIX_MAX} of A-Z a-z 0-9 . _ -"
            )
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        full = unique_name(name)
        await probes.create_topics(
            admin, [NewTopic(full, partitions, 1, topic_configs=dict(config or {}))]
        )
        created.append(full)
        await probes.wait_topics_ready(
            admin, {full: TopicSpec(partitions=partitions)}, deadline=time.monotonic() + 30
        )
        return full

    try:
        yield create
    finally:
        try:
            if created:
                await admin.delete_topics(created)
        except KafkaError as exc:
            # A leaked topic is harmless (unique name); failing the test for it would mislead.
            warnings.warn(f"could not delete test topics {created}: {exc!r}", stacklevel=1)
        finally:
            await admin.close()


@pytest.fixture(name="wait_for")
def _wait_for_fixture() -> Callable[..., Awaitable[Any]]:
    """The wait_for helper, for tests that prefer to receive it as a fixture."""
    return wait_for
