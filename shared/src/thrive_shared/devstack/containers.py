"""Docker backend: the same two servers as testcontainers, when a Docker engine is reachable.

Containers get fixed names and the devstack's usual loopback ports, and outlive the process
that starts them (Ryuk is disabled for them), so `up`/`down`/`status` behave as for local
processes. This cannot be exercised on machines without a Docker engine.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from typing import Any

from thrive_shared.devstack.config import PG_DATABASE, PG_PASSWORD, PG_USER, StackConfig

log = logging.getLogger("thrive_shared.devstack")

KAFKA_IMAGE = "apache/kafka:4.2.0"
POSTGRES_IMAGE = "postgres:17"
KAFKA_CONTAINER = "thrive-devstack-kafka"
POSTGRES_CONTAINER = "thrive-devstack-postgres"


@functools.cache
def engine_reachable(timeout: float = 3.0) -> bool:
    """True if `docker info` reaches an engine quickly (a CLI without an engine does not count)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def _client() -> Any:
    import docker

    return docker.from_env()


def container_status(name: str) -> str | None:
    """'running', 'exited', ... or None if no such container."""
    import docker.errors

    try:
        return str(_client().containers.get(name).status)
    except docker.errors.NotFound:
        return None


def start_kafka(cfg: StackConfig) -> None:
    """Start (or restart) the Kafka container; readiness is checked by the caller."""
    if _restart_existing(KAFKA_CONTAINER):
        return
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(KAFKA_IMAGE).with_name(KAFKA_CONTAINER)
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{cfg.kafka_bootstrap}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_NUM_PARTITIONS": "3",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "10",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_HEAP_OPTS": cfg.kafka_heap,
    }
    for key, value in env.items():
        container.with_env(key, value)
    # Loopback only; with_bind_ports() would publish on every interface.
    container.ports["9092/tcp"] = (cfg.host, cfg.kafka_port)  # type: ignore[assignment]
    _start_persistent(container)


def start_postgres(cfg: StackConfig) -> None:
    """Start (or restart) the PostgreSQL container; readiness is checked by the caller."""
    if _restart_existing(POSTGRES_CONTAINER):
        return
    from testcontainers.core.container import DockerContainer

    container = (
        DockerContainer(POSTGRES_IMAGE)
        .with_name(POSTGRES_CONTAINER)
        .with_env("POSTGRES_USER", PG_USER)
        .with_env("POSTGRES_PASSWORD", PG_PASSWORD)
        .with_env("POSTGRES_DB", PG_DATABASE)
        # DEV ONLY durability trade-offs, as deploy/local/postgresql.conf.template explains.
        .with_command(
            "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=400"
        )
    )
    container.ports["5432/tcp"] = (cfg.host, cfg.postgres_port)  # type: ignore[assignment]
    _start_persistent(container)


def stop(*, purge: bool) -> list[str]:
    """Stop the containers (remove them and their volumes with purge); names acted on."""
    if not engine_reachable():
        return []
    import docker.errors

    client = _client()
    done = []
    for name in (KAFKA_CONTAINER, POSTGRES_CONTAINER):
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            continue
        if purge:
            container.remove(force=True, v=True)
        else:
            container.stop(timeout=30)
        done.append(name)
    return done


def _restart_existing(name: str) -> bool:
    import docker.errors

    try:
        container = _client().containers.get(name)
    except docker.errors.NotFound:
        return False
    if container.status != "running":
        log.info("Starting existing container %s", name)
        container.start()
    return True


def _start_persistent(container: Any) -> None:
    from testcontainers.core.config import testcontainers_config

    # The stack outlives this process (like the local one); `down` removes it, not Ryuk.
    testcontainers_config.ryuk_disabled = True
    log.info("Starting container from %s", container.image)
    container.start()
