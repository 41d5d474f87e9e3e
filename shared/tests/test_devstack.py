"""The local stack and the pytest plugin, against the real Kafka broker and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from thrive_shared.contracts import topics
from thrive_shared.devstack import Endpoints, StackConfig, containers, ensure_up, status
from thrive_shared.devstack import kafka as devstack_kafka
from thrive_shared.devstack.errors import PrerequisiteError
from thrive_shared.devstack.kafka import LocalKafka, new_cluster_id
from thrive_shared.devstack.postgres import LocalPostgres
from thrive_shared.devstack.prereqs import require_java
from thrive_shared.devstack.probes import run_async
from thrive_shared.devstack.procs import port_open
from thrive_shared.testing import unique_name, wait_for

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
JAVA_SENTENCE = (
    "Java 17+ is required to run Kafka: install it with "
    "`apt-get install -y openjdk-17-jre-headless`."
)

local_only = pytest.mark.skipif(
    any(os.environ.get(name) for name in OVERRIDES)
    or os.environ.get("THRIVE_DEVSTACK_BACKEND") == "docker",
    reason="checks the locally started processes; this run uses external servers",
)


def devstack(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrive_shared.devstack", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def second_stack_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for an independent stack in tmp_path, on ports nobody uses."""
    env = {k: v for k, v in os.environ.items() if k not in (*OVERRIDES, "JAVA_HOME")}
    env.update(
        THRIVE_DEVSTACK_DIR=str(tmp_path / "stack"),
        THRIVE_DEVSTACK_BACKEND="local",
        THRIVE_DEVSTACK_KAFKA_PORT=str(free_port()),
        THRIVE_DEVSTACK_CONTROLLER_PORT=str(free_port()),
        THRIVE_DEVSTACK_POSTGRES_PORT=str(free_port()),
        KAFKA_HEAP_OPTS="-Xmx384m -Xms128m",
    )
    env.update(extra)
    return env


def local_pids() -> tuple[int | None, int | None]:
    cfg = StackConfig.from_env()
    return LocalKafka(cfg).pid(), LocalPostgres(cfg).pid()


# -- wait_for (no stack needed) ---------------------------------------------------------------
async def test_wait_for_returns_the_first_truthy_value_of_a_sync_condition() -> None:
    calls = iter([0, None, "", "ready"])
    assert await wait_for(lambda: next(calls), timeout=2, interval=0) == "ready"


async def test_wait_for_awaits_async_conditions_and_retries_failed_assertions() -> None:
    attempts = []

    async def cond() -> bool:
        attempts.append(1)
        assert len(attempts) >= 3, "not yet"
        return True

    assert await wait_for(cond, timeout=2, interval=0) is True
    assert len(attempts) == 3


async def test_wait_for_raises_with_the_message_when_the_deadline_passes() -> None:
    with pytest.raises(
        AssertionError, match=r"greeting never arrived \(waited 0.1s; last result: 0\)"
    ):
        await wait_for(lambda: 0, timeout=0.1, message="greeting never arrived")


# -- prerequisites ----------------------------------------------------------------------------
def test_a_missing_java_yields_one_clear_sentence(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = second_stack_env(tmp_path, PATH=str(empty_bin))

    result = devstack("up", env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == JAVA_SENTENCE
    assert not (tmp_path / "stack" / "postgres").exists(), "nothing should start without Java"


def test_a_too_old_java_is_named_with_its_version(tmp_path: Path) -> None:
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.20\" 2023-07-18' >&2\n")
    fake.chmod(0o755)

    with pytest.raises(PrerequisiteError) as caught:
        require_java({"PATH": str(tmp_path)})

    assert "Java 17+ is required to run Kafka" in str(caught.value)
    assert "is Java 11" in str(caught.value)
    assert "openjdk-17-jre-headless" in str(caught.value)


def test_the_jar_cache_is_valid_only_for_the_current_pom(tmp_path: Path) -> None:
    kafka = LocalKafka(StackConfig.from_env(second_stack_env(tmp_path)))
    assert not kafka.jars_current(), "no jars fetched yet"

    kafka.cfg.kafka_libs.mkdir(parents=True)
    (kafka.cfg.kafka_libs / ".pom.sha256").write_text("hash-of-an-older-pom\n")
    assert not kafka.jars_current(), "a changed pom.xml must trigger a re-fetch"

    (kafka.cfg.kafka_libs / ".pom.sha256").write_text(kafka.pom_hash() + "\n")
    assert kafka.jars_current()


def test_forcing_docker_without_an_engine_says_so(tmp_path: Path) -> None:
    env = second_stack_env(tmp_path, THRIVE_DEVSTACK_BACKEND="docker")
    if containers.engine_reachable():
        pytest.skip("a Docker engine is reachable here")

    result = devstack("up", env=env)

    assert result.returncode == 1
    assert "reaches no Docker engine" in result.stderr
    assert not (tmp_path / "stack" / "kafka").exists()


# -- the shared stack -------------------------------------------------------------------------
@pytest.mark.stack
@local_only
def test_a_second_up_is_a_no_op(stack: Endpoints) -> None:
    before = local_pids()
    assert None not in before

    result = devstack("up")

    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert local_pids() == before
    assert ensure_up() == stack


@pytest.mark.stack
@local_only
def test_status_reports_both_servers_running_with_their_pids(stack: Endpoints) -> None:
    kafka_pid, postgres_pid = local_pids()

    result = devstack("status")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()}
    assert lines["kafka"][1] == "running"
    assert stack.kafka_bootstrap in lines["kafka"]
    assert str(kafka_pid) in lines["kafka"]
    assert lines["postgres"][1] == "running"
    assert str(postgres_pid) in lines["postgres"]


@pytest.mark.stack
def test_env_prints_exports_for_the_endpoints(stack: Endpoints) -> None:
    result = devstack("env")

    assert result.returncode == 0
    assert result.stdout.strip() == (
        f"export KAFKA_BOOTSTRAP_SERVERS={stack.kafka_bootstrap} DATABASE_URL={stack.database_url}"
    )


@pytest.mark.stack
def test_env_overrides_use_the_external_servers_and_start_nothing(
    stack: Endpoints, tmp_path: Path
) -> None:
    env = second_stack_env(
        tmp_path,
        KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap,
        DATABASE_URL=stack.database_url,
    )
    before = local_pids()

    endpoints = ensure_up(env, timeout=60)

    assert endpoints == Endpoints(stack.kafka_bootstrap, stack.database_url)
    assert not (tmp_path / "stack").exists(), "no local stack may be prepared"
    cfg = StackConfig.from_env(env)
    for port in (cfg.kafka_port, cfg.controller_port, cfg.postgres_port):
        assert not port_open("127.0.0.1", port), f"something was started on port {port}"
    assert local_pids() == before
    assert [c.state for c in status(env)] == ["external", "external"]


@pytest.mark.stack
async def test_canonical_topics_exist_with_three_partitions(stack: Endpoints) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics(list(topics.ALL_TOPICS))}
        policies = {
            name: await cleanup_policy(admin, name)
            for name in (topics.DIRECTORY_PERSON, topics.HELP_RECEIVED)
        }
    finally:
        await admin.close()

    for name in topics.ALL_TOPICS:
        assert described[name]["error_code"] == 0, name
        assert len(described[name]["partitions"]) == 3, name
    assert policies == {topics.DIRECTORY_PERSON: "compact", topics.HELP_RECEIVED: "delete"}


async def cleanup_policy(admin: AIOKafkaAdminClient, topic: str) -> str:
    [response] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
    )
    entries = {entry[0]: entry[1] for entry in response.resources[0][4]}
    return str(entries["cleanup.policy"])


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # Uuid bytes starting 0xF8 encode to "-...", which kafka-storage's parser reads as an option.
    import uuid

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))])
    monkeypatch.setattr(devstack_kafka.uuid, "uuid4", lambda: next(draws))

    cluster_id = new_cluster_id()

    assert cluster_id == "EAAAAAAAAAAAAAAAAAAAAA"
    assert len(cluster_id) == 22


@pytest.mark.stack
def test_a_broker_that_cannot_start_is_reported_with_its_log(
    stack: Endpoints, tmp_path: Path
) -> None:
    # The shared PostgreSQL stands in (DATABASE_URL), so only this broken Kafka is started.
    env = second_stack_env(tmp_path, KAFKA_HEAP_OPTS="-Xmx1m", DATABASE_URL=stack.database_url)
    cfg = StackConfig.from_env(env)
    shared_libs = StackConfig.from_env().kafka_libs
    if shared_libs.is_dir():  # spare a Maven run
        shutil.copytree(shared_libs, cfg.kafka_libs)

    result = devstack("up", "--timeout", "60", env=env)

    assert result.returncode == 1
    assert "Kafka exited during start-up with exit code 1" in result.stderr
    assert str(cfg.kafka_log_file) in result.stderr
    assert "Too small maximum heap" in result.stderr
    assert LocalKafka(cfg).pid() is None


# -- fixtures ---------------------------------------------------------------------------------
@pytest.mark.stack
async def test_a_message_produced_on_a_factory_topic_is_consumed_back(
    stack: Endpoints, topic_factory
) -> None:
    topic = await topic_factory("devstack.roundtrip", partitions=3)
    assert topic.startswith("devstack.roundtrip-")

    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"thank you, Grace", key=b"grace")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=unique_name("devstack-test"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[tuple[bytes | None, bytes | None]] = []
    try:

        async def got_it() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            received.extend((r.key, r.value) for rs in batches.values() for r in rs)
            return bool(received)

        await wait_for(got_it, timeout=30, message="the produced message never came back")
        assert len(consumer.partitions_for_topic(topic) or ()) == 3
    finally:
        await consumer.stop()
    assert received == [(b"grace", b"thank you, Grace")]


@pytest.mark.stack
async def test_topic_factory_applies_topic_config(stack: Endpoints, topic_factory) -> None:
    topic = await topic_factory(
        "devstack.compacted", partitions=1, config={"cleanup.policy": "compact"}
    )

    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        assert await cleanup_policy(admin, topic) == "compact"
    finally:
        await admin.close()


@pytest.mark.stack
@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_a_fresh_empty_database(
    stack: Endpoints, database_url: str, run: int
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        user_tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        # Both parametrised runs create the same table: this only works in separate databases.
        await conn.execute("CREATE TABLE probe (run int)")
        await conn.execute("INSERT INTO probe VALUES ($1)", run)
    finally:
        await conn.close()

    assert name != "thrive"
    assert user_tables == 0

    main = await asyncpg.connect(stack.database_url)
    try:
        assert await main.fetchval("SELECT to_regclass('public.probe')") is None
    finally:
        await main.close()


@pytest.mark.stack
def test_fixtures_drop_their_database_and_delete_their_topics(
    stack: Endpoints, tmp_path: Path
) -> None:
    record = tmp_path / "names.txt"
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib

            import asyncpg


            async def test_inner(database_url, topic_factory):
                topic = await topic_factory("devstack.cleanup", partitions=1)
                conn = await asyncpg.connect(database_url)
                name = await conn.fetchval("SELECT current_database()")
                await conn.close()
                pathlib.Path({str(record)!r}).write_text(name + "\\n" + topic)
            """
        )
    )
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = stack.kafka_bootstrap
    env["DATABASE_URL"] = stack.database_url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "thrive_shared.testing",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=session",
            "-o",
            "asyncio_default_test_loop_scope=session",
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    database, topic = record.read_text().splitlines()

    async def leftovers() -> tuple[bool, bool]:
        conn = await asyncpg.connect(stack.database_url)
        try:
            db_exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", database
            )
        finally:
            await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            topic_exists = topic in await admin.list_topics()
        finally:
            await admin.close()
        return bool(db_exists), topic_exists

    assert database.startswith("t_test_inner_")
    assert run_async(leftovers()) == (False, False)


# -- a second, independent stack: full life cycle -----------------------------------------------
@pytest.mark.stack
@pytest.mark.slow
def test_a_second_stack_goes_up_down_and_keeps_its_data(tmp_path: Path) -> None:
    # Embedded PostgreSQL here, so both server flavours are exercised on this machine.
    env = second_stack_env(tmp_path, THRIVE_DEVSTACK_POSTGRES="embedded")
    cfg = StackConfig.from_env(env)

    up = devstack("up", env=env)
    assert up.returncode == 0, up.stderr
    assert f"KAFKA_BOOTSTRAP_SERVERS={cfg.kafka_bootstrap}" in up.stdout
    kafka_pid, pg_pid = LocalKafka(cfg).pid(), LocalPostgres(cfg).pid()
    assert kafka_pid and pg_pid
    try:
        run_async(_create_marker_table(cfg.database_url()))

        down = devstack("down", env=env)
        assert down.returncode == 0, down.stderr
        assert "Kafka stopped" in down.stdout and "PostgreSQL stopped" in down.stdout
        stopped = devstack("status", env=env)
        assert stopped.returncode == 1
        assert [line.split()[1] for line in stopped.stdout.splitlines()] == ["stopped", "stopped"]

        again = devstack("up", env=env)
        assert again.returncode == 0, again.stderr
        assert "fetching jars" not in again.stderr, "the jar cache must be reused"
        assert "initdb" not in again.stderr
        assert "Topics: created" not in again.stderr, "Kafka must keep its topics"
        assert run_async(_marker_rows(cfg.database_url())) == 1
    finally:
        purge = devstack("down", "--purge", env=env)
    assert purge.returncode == 0, purge.stderr
    assert not cfg.postgres_dir.exists() and not cfg.kafka_data.exists()
    assert (cfg.kafka_libs / ".pom.sha256").exists()


async def _create_marker_table(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE marker (id int); INSERT INTO marker VALUES (1)")
    finally:
        await conn.close()


async def _marker_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM marker"))
    finally:
        await conn.close()
