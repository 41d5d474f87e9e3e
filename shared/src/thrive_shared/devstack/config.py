"""Where the devstack keeps its files and which addresses it serves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from thrive_shared.devstack.errors import StackError

HOST = "127.0.0.1"
KAFKA_PORT = 19092
CONTROLLER_PORT = 19093
POSTGRES_PORT = 15432
PG_USER = "thrive"
PG_PASSWORD = "thrive"  # noqa: S105 - the documented password of the local dev database
PG_DATABASE = "thrive"
# 2-core box shared with four services, tests and a browser: keep the JVM small.
KAFKA_HEAP = "-Xmx768m -Xms256m"

Backend = Literal["auto", "local", "docker"]
PostgresFlavor = Literal["auto", "system", "embedded"]

_BACKENDS: tuple[Backend, ...] = ("auto", "local", "docker")
_FLAVORS: tuple[PostgresFlavor, ...] = ("auto", "system", "embedded")


def find_repo_root() -> Path:
    """The checkout holding deploy/local/pom.xml: this package's own, else the working dir's."""
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "deploy" / "local" / "pom.xml").is_file():
                return candidate
    raise StackError(
        "Cannot find deploy/local/pom.xml above this package or the working directory: "
        "run the devstack from a Thrive checkout."
    )


@dataclass(frozen=True)
class StackConfig:
    """Settings of the local stack; defaults are the addresses in the team brief."""

    repo_root: Path
    state_dir: Path
    host: str = HOST
    kafka_port: int = KAFKA_PORT
    controller_port: int = CONTROLLER_PORT
    postgres_port: int = POSTGRES_PORT
    backend: Backend = "auto"
    postgres_flavor: PostgresFlavor = "auto"
    kafka_heap: str = KAFKA_HEAP

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        """Defaults, adjusted by THRIVE_DEVSTACK_* variables (so tests can run a second stack)."""
        env = os.environ if env is None else env
        root = find_repo_root()
        state_dir = Path(env.get("THRIVE_DEVSTACK_DIR") or root / ".devstack").resolve()
        backend = env.get("THRIVE_DEVSTACK_BACKEND", "auto")
        if backend not in _BACKENDS:
            raise StackError(f"THRIVE_DEVSTACK_BACKEND must be one of {', '.join(_BACKENDS)}.")
        flavor = env.get("THRIVE_DEVSTACK_POSTGRES", "auto")
        if flavor not in _FLAVORS:
            raise StackError(f"THRIVE_DEVSTACK_POSTGRES must be one of {', '.join(_FLAVORS)}.")
        return cls(
            repo_root=root,
            state_dir=state_dir,
            kafka_port=_port(env, "THRIVE_DEVSTACK_KAFKA_PORT", KAFKA_PORT),
            controller_port=_port(env, "THRIVE_DEVSTACK_CONTROLLER_PORT", CONTROLLER_PORT),
            postgres_port=_port(env, "THRIVE_DEVSTACK_POSTGRES_PORT", POSTGRES_PORT),
            backend=backend,
            postgres_flavor=flavor,
            kafka_heap=env.get("KAFKA_HEAP_OPTS") or KAFKA_HEAP,
        )

    # -- addresses ---------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap address of the local broker."""
        return f"{self.host}:{self.kafka_port}"

    def database_url(self, database: str = PG_DATABASE) -> str:
        """postgresql:// URL of a database on the local server."""
        return (
            f"postgresql://{PG_USER}:{quote(PG_PASSWORD, safe='')}@{self.host}:"
            f"{self.postgres_port}/{quote(database, safe='')}"
        )

    # -- files -------------------------------------------------------------------------------
    @property
    def deploy_dir(self) -> Path:
        """deploy/local: pom.xml and the config templates."""
        return self.repo_root / "deploy" / "local"

    @property
    def lock_file(self) -> Path:
        """Serialises up/down across processes (several test sessions share one stack)."""
        return self.state_dir / "devstack.lock"

    @property
    def kafka_dir(self) -> Path:
        """.devstack/kafka."""
        return self.state_dir / "kafka"

    @property
    def kafka_libs(self) -> Path:
        """Kafka jars copied by Maven (cached across `down --purge`)."""
        return self.kafka_dir / "libs"

    @property
    def kafka_data(self) -> Path:
        """KRaft metadata and topic logs."""
        return self.kafka_dir / "data"

    @property
    def kafka_logs(self) -> Path:
        """Broker log files (log4j2)."""
        return self.kafka_dir / "logs"

    @property
    def kafka_log_file(self) -> Path:
        """The broker's main log."""
        return self.kafka_logs / "server.log"

    @property
    def kafka_console_file(self) -> Path:
        """JVM stdout/stderr: start-up failures that happen before logging works."""
        return self.kafka_logs / "console.out"

    @property
    def kafka_pid_file(self) -> Path:
        """Process id of the broker JVM."""
        return self.kafka_dir / "kafka.pid"

    @property
    def kafka_properties(self) -> Path:
        """Rendered server.properties."""
        return self.kafka_dir / "server.properties"

    @property
    def postgres_dir(self) -> Path:
        """.devstack/postgres (owned by the user the server runs as)."""
        return self.state_dir / "postgres"

    @property
    def postgres_data(self) -> Path:
        """PGDATA."""
        return self.postgres_dir / "data"

    @property
    def postgres_log_file(self) -> Path:
        """Server log written by pg_ctl -l."""
        return self.postgres_dir / "postgres.log"

    @property
    def docker_state_file(self) -> Path:
        """Which containers the Docker backend started."""
        return self.state_dir / "docker.json"


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name} must be a TCP port number, got {raw!r}.") from None
    if not 0 < port < 65536:
        raise StackError(f"{name} must be between 1 and 65535, got {port}.")
    return port
