"""The local Kafka broker: jars from Maven Central, KRaft storage, one detached JVM."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from string import Template

from thrive_shared.devstack import procs
from thrive_shared.devstack.config import StackConfig
from thrive_shared.devstack.errors import StackError

log = logging.getLogger("thrive_shared.devstack")

_POM_HASH = ".pom.sha256"
_MAIN_CLASS = "kafka.Kafka"


class LocalKafka:
    """Controls the broker+controller JVM described by a StackConfig."""

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg

    # -- state -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of our running broker JVM (verified by its command line), else None."""
        pid = procs.read_pid(self.cfg.kafka_pid_file)
        if pid is None or not procs.pid_alive(pid):
            return None
        args = procs.cmdline(pid)
        if args and not (_MAIN_CLASS in args and str(self.cfg.kafka_properties) in args):
            return None  # the pid was recycled by an unrelated process
        return pid

    def exit_reason(self, pid: int) -> str | None:
        """If the JVM we started has died, a sentence saying so and where to look."""
        code = procs.exit_status(pid)
        if code is None and procs.pid_alive(pid):
            return None
        status = f" with exit code {code}" if code is not None else ""
        return (
            f"Kafka exited during start-up{status}; see {self.cfg.kafka_log_file} "
            f"and {self.cfg.kafka_console_file}.\n{self._failure_excerpt()}"
        ).rstrip()

    def _failure_excerpt(self) -> str:
        """JVM output (crashes, OOM) and the broker's last ERROR lines, whichever exist."""
        parts = []
        console = procs.tail(self.cfg.kafka_console_file, 10)
        if console:
            parts.append(console)
        log_tail = procs.tail(self.cfg.kafka_log_file, 400).splitlines()
        errors = [line for line in log_tail if " ERROR " in line or " FATAL " in line]
        if errors:
            parts.append("\n".join(errors[-10:]))
        elif not console:
            parts.append("\n".join(log_tail[-10:]))
        return "\n".join(parts)

    # -- jars --------------------------------------------------------------------------------
    def pom_hash(self) -> str:
        """sha256 of deploy/local/pom.xml: the jar cache is valid for exactly this pom."""
        return hashlib.sha256((self.cfg.deploy_dir / "pom.xml").read_bytes()).hexdigest()

    def jars_current(self) -> bool:
        """True if the cached jars were fetched for the current pom.xml."""
        marker = self.cfg.kafka_libs / _POM_HASH
        return marker.is_file() and marker.read_text().strip() == self.pom_hash()

    def fetch_jars(self, mvn: Path) -> int:
        """Copy Kafka and its runtime dependencies into .devstack/kafka/libs; returns jar count."""
        self.cfg.kafka_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=self.cfg.kafka_dir))
        try:
            result = subprocess.run(
                [
                    str(mvn),
                    "-q",
                    "-B",
                    "-Dstyle.color=never",
                    "-f",
                    str(self.cfg.deploy_dir / "pom.xml"),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            jars = sorted(staging.glob("*.jar"))
            if result.returncode != 0 or not jars:
                output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
                raise StackError(
                    f"Maven could not fetch the Kafka jars from {self.cfg.deploy_dir / 'pom.xml'} "
                    f"(exit code {result.returncode}):\n{output}"
                )
            (staging / _POM_HASH).write_text(self.pom_hash() + "\n")
            shutil.rmtree(self.cfg.kafka_libs, ignore_errors=True)
            staging.rename(self.cfg.kafka_libs)
            return len(jars)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- configuration and storage -----------------------------------------------------------
    def write_properties(self) -> None:
        """Render deploy/local/server.properties.template into .devstack/kafka."""
        template = Template((self.cfg.deploy_dir / "server.properties.template").read_text())
        text = template.substitute(
            host=self.cfg.host,
            kafka_port=self.cfg.kafka_port,
            controller_port=self.cfg.controller_port,
            data_dir=self.cfg.kafka_data,
        )
        self.cfg.kafka_dir.mkdir(parents=True, exist_ok=True)
        self.cfg.kafka_properties.write_text(text)

    def formatted(self) -> bool:
        """True if KRaft storage has been formatted."""
        return (self.cfg.kafka_data / "meta.properties").is_file()

    def format_storage(self, java: Path) -> None:
        """kafka.tools.StorageTool format with a fresh cluster id (once per data directory)."""
        self.cfg.kafka_logs.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                *self._java_base(java, heap="-Xmx256m"),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                new_cluster_id(),
                "-c",
                str(self.cfg.kafka_properties),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise StackError(f"Formatting Kafka storage failed:\n{output}")

    # -- process -----------------------------------------------------------------------------
    def start(self, java: Path) -> int:
        """Start kafka.Kafka detached (own session, pid file, log files); returns its pid."""
        self.cfg.kafka_logs.mkdir(parents=True, exist_ok=True)
        argv = [
            *self._java_base(java, heap=self.cfg.kafka_heap),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent",
            _MAIN_CLASS,
            str(self.cfg.kafka_properties),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_OPTS", "CLASSPATH")}
        pid = procs.spawn_detached(
            argv, cwd=self.cfg.kafka_dir, output=self.cfg.kafka_console_file, env=env
        )
        self.cfg.kafka_pid_file.write_text(f"{pid}\n")
        return pid

    def stop(self, *, timeout: float = 60.0) -> bool:
        """SIGTERM the broker (controlled shutdown), SIGKILL after timeout; True if it ran."""
        pid = self.pid()
        if pid is None:
            self.cfg.kafka_pid_file.unlink(missing_ok=True)
            return False
        graceful = procs.stop_group(pid, timeout=timeout)
        if not graceful:
            log.warning("Kafka did not stop within %.0fs and was killed", timeout)
        self.cfg.kafka_pid_file.unlink(missing_ok=True)
        return True

    def _java_base(self, java: Path, *, heap: str) -> list[str]:
        return [
            str(java),
            *heap.split(),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.cfg.deploy_dir / 'log4j2.properties'}",
            f"-Dthrive.kafka.logdir={self.cfg.kafka_logs}",
            "-cp",
            f"{self.cfg.kafka_libs}/*",
        ]


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding (as Uuid.toString).

    Like Kafka's own ``Uuid.randomUuid``, an id starting with ``-`` is drawn again: the storage
    tool's argument parser would take it for an option (one id in 64 did, and format failed).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
