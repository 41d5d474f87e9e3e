"""Bring the stack up and down and report on it: local processes, Docker, or external servers."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from thrive_shared.contracts import topics
from thrive_shared.devstack import containers, probes, procs
from thrive_shared.devstack.config import PG_DATABASE, StackConfig
from thrive_shared.devstack.errors import StackError
from thrive_shared.devstack.kafka import LocalKafka
from thrive_shared.devstack.postgres import LocalPostgres
from thrive_shared.devstack.prereqs import require_java, require_maven
from thrive_shared.devstack.probes import TopicSpec, run_async

log = logging.getLogger("thrive_shared.devstack")

DEFAULT_TIMEOUT = 180.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_FOREIGN = "something else listens there, not started by this devstack"

CANONICAL_TOPICS: dict[str, TopicSpec] = {
    name: TopicSpec(
        partitions=3,
        config={"cleanup.policy": "compact"} if name == topics.DIRECTORY_PERSON else {},
    )
    for name in topics.ALL_TOPICS
}


@dataclass(frozen=True)
class Endpoints:
    """Where the stack answers."""

    kafka_bootstrap: str
    database_url: str


State = Literal["running", "not ready", "stopped", "external", "foreign"]


@dataclass(frozen=True)
class ComponentStatus:
    """What runs where, for one of kafka / postgres."""

    name: str
    state: State
    address: str
    pid: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class _Plan:
    cfg: StackConfig
    kafka_bootstrap: str
    database_url: str
    manage_kafka: bool  # False: KAFKA_BOOTSTRAP_SERVERS points elsewhere
    manage_postgres: bool  # False: DATABASE_URL points elsewhere


def _plan(env: Mapping[str, str]) -> _Plan:
    cfg = StackConfig.from_env(env)
    kafka_env = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
    db_env = env.get("DATABASE_URL", "").strip() or None
    return _Plan(
        cfg=cfg,
        kafka_bootstrap=kafka_env or cfg.kafka_bootstrap,
        database_url=db_env or cfg.database_url(),
        # An override that names our own address still means "this devstack": start it if needed.
        manage_kafka=kafka_env is None or _is_ours_kafka(kafka_env, cfg),
        manage_postgres=db_env is None or _is_ours_postgres(db_env, cfg),
    )


def endpoints(env: Mapping[str, str] | None = None) -> Endpoints:
    """The endpoints ensure_up() would return, without starting or checking anything."""
    plan = _plan(os.environ if env is None else env)
    return Endpoints(plan.kafka_bootstrap, plan.database_url)


def ensure_up(
    env: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> Endpoints:
    """Start whatever is not running yet, wait until both servers really answer, return them.

    Idempotent and safe to call from several processes at once. KAFKA_BOOTSTRAP_SERVERS /
    DATABASE_URL in `env` (default: os.environ) select external servers, which are only
    waited for. The canonical topics are created if missing.
    """
    plan = _plan(os.environ if env is None else env)
    cfg = plan.cfg
    deadline = time.monotonic() + timeout
    if plan.manage_kafka or plan.manage_postgres:
        with procs.file_lock(cfg.lock_file, timeout=timeout, what="starting the stack"):
            if _backend(cfg) == "docker":
                _up_docker(plan, deadline=deadline)
            else:
                _up_local(plan, env=os.environ if env is None else env, deadline=deadline)
    if not plan.manage_kafka:
        run_async(
            probes.wait_kafka(
                plan.kafka_bootstrap,
                deadline=deadline,
                what=f"KAFKA_BOOTSTRAP_SERVERS={plan.kafka_bootstrap} is set, but no Kafka "
                f"broker answered there within {timeout:.0f}s",
            )
        )
    if not plan.manage_postgres:
        run_async(
            probes.wait_postgres(
                plan.database_url,
                deadline=deadline,
                what=f"DATABASE_URL is set ({_redact(plan.database_url)}), but no PostgreSQL "
                f"answered SELECT 1 there within {timeout:.0f}s",
            )
        )
    created = run_async(
        probes.ensure_topics(plan.kafka_bootstrap, CANONICAL_TOPICS, deadline=deadline)
    )
    if created:
        log.info("Topics: created %s", ", ".join(created))
    return Endpoints(plan.kafka_bootstrap, plan.database_url)


# -- local processes -------------------------------------------------------------------------
def _up_local(plan: _Plan, *, env: Mapping[str, str], deadline: float) -> None:
    cfg = plan.cfg
    kafka = LocalKafka(cfg)
    started_pid: int | None = None
    if plan.manage_kafka:
        started_pid = _start_kafka(kafka, env=env)
    if plan.manage_postgres:
        _up_postgres(plan, deadline=deadline)
    if plan.manage_kafka:
        t0 = time.monotonic()

        def failed() -> str | None:
            return kafka.exit_reason(started_pid) if started_pid is not None else None

        run_async(
            probes.wait_kafka(
                cfg.kafka_bootstrap,
                deadline=deadline,
                failed=failed,
                what=f"Kafka did not answer a metadata request at {cfg.kafka_bootstrap} in time; "
                f"see {cfg.kafka_log_file}",
            )
        )
        if started_pid is not None:
            run_async(probes.warm_group_coordinator(cfg.kafka_bootstrap, deadline=deadline))
            log.info("Kafka: ready at %s (%.1fs)", cfg.kafka_bootstrap, time.monotonic() - t0)


def _start_kafka(kafka: LocalKafka, *, env: Mapping[str, str]) -> int | None:
    """Start the broker unless it runs; the pid if we started it."""
    cfg = kafka.cfg
    pid = kafka.pid()
    if pid is not None:
        log.info("Kafka: already running (pid %d) at %s", pid, cfg.kafka_bootstrap)
        if not kafka.jars_current():
            log.warning(
                "Kafka: %s changed since its jars were fetched; `down` then `up` to use it",
                cfg.deploy_dir / "pom.xml",
            )
        return None
    for port in (cfg.kafka_port, cfg.controller_port):
        if procs.port_open(cfg.host, port):
            _foreign_listener("Kafka", cfg.host, port, "THRIVE_DEVSTACK_KAFKA_PORT")
    java = require_java(env)
    if not kafka.jars_current():
        mvn = require_maven(env)
        t0 = time.monotonic()
        log.info("Kafka: fetching jars with Maven (first run, or pom.xml changed)")
        count = kafka.fetch_jars(mvn)
        log.info("Kafka: %d jars in %s (%.1fs)", count, cfg.kafka_libs, time.monotonic() - t0)
    kafka.write_properties()
    if not kafka.formatted():
        t0 = time.monotonic()
        kafka.format_storage(java)
        log.info("Kafka: formatted storage in %s (%.1fs)", cfg.kafka_data, time.monotonic() - t0)
    pid = kafka.start(java)
    log.info("Kafka: started pid %d, log %s", pid, cfg.kafka_log_file)
    return pid


def _up_postgres(plan: _Plan, *, deadline: float) -> None:
    cfg = plan.cfg
    pg = LocalPostgres(cfg)
    pid = pg.pid()
    if pid is not None:
        log.info("PostgreSQL: already running (pid %d) at %s:%d", pid, cfg.host, cfg.postgres_port)
    else:
        if procs.port_open(cfg.host, cfg.postgres_port):
            _foreign_listener(
                "PostgreSQL", cfg.host, cfg.postgres_port, "THRIVE_DEVSTACK_POSTGRES_PORT"
            )
        binaries = pg.binaries()
        t0 = time.monotonic()
        if not pg.initialised():
            log.info("PostgreSQL: initdb with %s", binaries.describe())
            pg.initialise(binaries)
        else:
            pg.check_version(binaries)
        pg.start(binaries)
        log.info(
            "PostgreSQL: started pid %s in %.1fs, log %s",
            pg.pid(),
            time.monotonic() - t0,
            cfg.postgres_log_file,
        )
    run_async(
        probes.wait_postgres(
            cfg.database_url("postgres"),
            deadline=deadline,
            what=f"PostgreSQL did not answer SELECT 1 at {cfg.host}:{cfg.postgres_port} in "
            f"time; see {cfg.postgres_log_file}",
        )
    )
    _ensure_databases(plan)


def _ensure_databases(plan: _Plan) -> None:
    cfg = plan.cfg
    wanted = {PG_DATABASE, _database_name(plan.database_url)}
    for name in sorted(n for n in wanted if n):
        if run_async(probes.ensure_database(cfg.database_url("postgres"), name)):
            log.info("PostgreSQL: created database %s", name)


def _foreign_listener(what: str, host: str, port: int, variable: str) -> None:
    raise StackError(
        f"{host}:{port} is already taken by a process this devstack did not start, so {what} "
        f"cannot listen there: stop that process, or set {variable} (and its clients' "
        "environment) to another port."
    )


# -- docker ----------------------------------------------------------------------------------
def _backend(cfg: StackConfig) -> Literal["local", "docker"]:
    if cfg.backend == "docker":
        if not containers.engine_reachable():
            raise StackError(
                "THRIVE_DEVSTACK_BACKEND=docker, but `docker info` reaches no Docker engine: "
                "start the engine or unset the variable."
            )
        return "docker"
    if cfg.backend == "local":
        return "local"
    # auto: never switch backends under a running local stack.
    if LocalKafka(cfg).pid() is not None or LocalPostgres(cfg).pid() is not None:
        return "local"
    return "docker" if containers.engine_reachable() else "local"


def _up_docker(plan: _Plan, *, deadline: float) -> None:
    cfg = plan.cfg
    if plan.manage_kafka:
        if not procs.port_open(cfg.host, cfg.kafka_port):
            containers.start_kafka(cfg)
        run_async(
            probes.wait_kafka(
                cfg.kafka_bootstrap,
                deadline=deadline,
                what=f"The Kafka container {containers.KAFKA_CONTAINER} did not answer at "
                f"{cfg.kafka_bootstrap} in time; see `docker logs {containers.KAFKA_CONTAINER}`",
            )
        )
    if plan.manage_postgres:
        if not procs.port_open(cfg.host, cfg.postgres_port):
            containers.start_postgres(cfg)
        run_async(
            probes.wait_postgres(
                cfg.database_url("postgres"),
                deadline=deadline,
                what=f"The PostgreSQL container {containers.POSTGRES_CONTAINER} did not answer "
                f"SELECT 1 in time; see `docker logs {containers.POSTGRES_CONTAINER}`",
            )
        )
        _ensure_databases(plan)


# -- down ------------------------------------------------------------------------------------
def down(env: Mapping[str, str] | None = None, *, purge: bool = False) -> list[str]:
    """Stop the local stack (data kept; purge also wipes Kafka and PostgreSQL data)."""
    cfg = StackConfig.from_env(os.environ if env is None else env)
    done: list[str] = []
    if not cfg.state_dir.exists():
        return ["Nothing to stop: no local stack under " + str(cfg.state_dir)]
    with procs.file_lock(cfg.lock_file, timeout=DEFAULT_TIMEOUT, what="stopping the stack"):
        if LocalKafka(cfg).stop():
            done.append("Kafka stopped")
        if LocalPostgres(cfg).stop():
            done.append("PostgreSQL stopped")
        for name in containers.stop(purge=purge):
            done.append(f"container {name} {'removed' if purge else 'stopped'}")
        if purge:
            for path in (cfg.kafka_data, cfg.kafka_logs, cfg.kafka_properties, cfg.postgres_dir):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            done.append(f"data under {cfg.state_dir} wiped (Kafka jar cache kept)")
    for port in (cfg.kafka_port, cfg.postgres_port):
        if procs.port_open(cfg.host, port):
            done.append(f"note: {cfg.host}:{port} still answers; this devstack did not start it")
    return done or ["Nothing was running"]


# -- status ----------------------------------------------------------------------------------
def status(env: Mapping[str, str] | None = None) -> list[ComponentStatus]:
    """What runs where; probes each server with a real request."""
    plan = _plan(os.environ if env is None else env)
    return [_kafka_status(plan), _postgres_status(plan)]


def _kafka_status(plan: _Plan) -> ComponentStatus:
    cfg = plan.cfg
    address = plan.kafka_bootstrap
    ready = _kafka_answers(address)
    if not plan.manage_kafka:
        return ComponentStatus(
            "kafka", "external" if ready else "not ready", address, detail="KAFKA_BOOTSTRAP_SERVERS"
        )
    pid = LocalKafka(cfg).pid()
    if pid is not None:
        return ComponentStatus(
            "kafka", "running" if ready else "not ready", address, pid, f"log {cfg.kafka_log_file}"
        )
    if _container_running(containers.KAFKA_CONTAINER):
        return ComponentStatus(
            "kafka",
            "running" if ready else "not ready",
            address,
            None,
            f"container {containers.KAFKA_CONTAINER}",
        )
    if procs.port_open(cfg.host, cfg.kafka_port):
        return ComponentStatus("kafka", "foreign", address, detail=_FOREIGN)
    return ComponentStatus("kafka", "stopped", address, detail=f"data {cfg.kafka_data}")


def _postgres_status(plan: _Plan) -> ComponentStatus:
    cfg = plan.cfg
    address = _redact(plan.database_url)
    ready = _postgres_answers(plan.database_url)
    if not plan.manage_postgres:
        return ComponentStatus(
            "postgres", "external" if ready else "not ready", address, detail="DATABASE_URL"
        )
    pg = LocalPostgres(cfg)
    pid = pg.pid()
    if pid is not None:
        return ComponentStatus(
            "postgres",
            "running" if ready else "not ready",
            address,
            pid,
            f"log {cfg.postgres_log_file}",
        )
    if _container_running(containers.POSTGRES_CONTAINER):
        return ComponentStatus(
            "postgres",
            "running" if ready else "not ready",
            address,
            None,
            f"container {containers.POSTGRES_CONTAINER}",
        )
    if procs.port_open(cfg.host, cfg.postgres_port):
        return ComponentStatus("postgres", "foreign", address, detail=_FOREIGN)
    return ComponentStatus("postgres", "stopped", address, detail=f"data {cfg.postgres_data}")


def _container_running(name: str) -> bool:
    return containers.engine_reachable() and containers.container_status(name) == "running"


def _kafka_answers(bootstrap: str) -> bool:
    if not probes.any_port_open(bootstrap):  # spares aiokafka's connection-refused log line
        return False
    try:
        run_async(probes.kafka_brokers(bootstrap, seconds=3.0))
    except Exception:
        return False
    return True


def _postgres_answers(url: str) -> bool:
    try:
        run_async(probes.postgres_select_one(url, seconds=3.0))
    except Exception:
        return False
    return True


# -- helpers ---------------------------------------------------------------------------------
def _is_ours_kafka(bootstrap: str, cfg: StackConfig) -> bool:
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if len(servers) != 1:
        return False
    host, _, port = servers[0].rpartition(":")
    return host.strip("[]") in _LOOPBACK and port == str(cfg.kafka_port)


def _is_ours_postgres(url: str, cfg: StackConfig) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError:
        return False
    return parts.hostname in _LOOPBACK and port == cfg.postgres_port


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
