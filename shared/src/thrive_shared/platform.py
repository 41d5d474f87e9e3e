"""`make run`: the whole platform here — real Kafka and Postgres, four services, demo data.

python -m thrive_shared.platform run            # until Ctrl-C
python -m thrive_shared.platform run --smoke    # start, check, seed, stop cleanly, exit 0/1
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

from thrive_shared.contracts import topics
from thrive_shared.devstack import ensure_up

ROOT = Path(__file__).resolve().parents[3]
LOGS = ROOT / ".devstack" / "logs"

app = typer.Typer(add_completion=False, help=__doc__)


@dataclass(frozen=True)
class ServiceProc:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


NAMES = ("recognition", "leaderboard", "notifier", "gateway")
# The gateway owns nothing durable: no schema, nothing to migrate.
WITH_DATABASE = ("recognition", "leaderboard", "notifier")
DEFAULT_PORTS = {"recognition": 8101, "leaderboard": 8102, "notifier": 8103, "gateway": 8000}
SERVICES = tuple(ServiceProc(n, DEFAULT_PORTS[n]) for n in NAMES)


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / f"thrive-{name}"
    return str(candidate) if candidate.exists() else f"thrive-{name}"


@dataclass
class Platform:
    """The four services as real processes against one Kafka and one database.

    `topic_suffix` isolates the run on its own copies of every topic (see
    contracts.topics.physical), so tests can run a whole platform beside others.
    """

    kafka: str
    database: str
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    topic_suffix: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = LOGS
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def services(self) -> tuple[ServiceProc, ...]:
        return tuple(ServiceProc(n, self.ports[n]) for n in NAMES)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def env(self) -> dict[str, str]:
        """Environment for every service process: where things are, and local-dev switches."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "DATABASE_URL": self.database,
            "LOG_JSON": os.environ.get("LOG_JSON", "true"),
            "THRIVE_GATEWAY_DEV_ISSUER": "true",
            "THRIVE_GATEWAY_RECOGNITION_URL": self.url("recognition"),
            "THRIVE_GATEWAY_LEADERBOARD_URL": self.url("leaderboard"),
            "THRIVE_GATEWAY_NOTIFIER_URL": self.url("notifier"),
        }
        for svc in self.services:
            env[f"THRIVE_{svc.name.upper()}_PORT"] = str(svc.port)
            env[f"THRIVE_{svc.name.upper()}_HOST"] = "127.0.0.1"
        if self.topic_suffix:
            env[topics.SUFFIX_ENV] = self.topic_suffix
        env.update(self.extra_env)
        return env

    async def create_topics(self) -> None:
        """Create this run's suffixed copies of every topic (canonical ones exist already)."""
        if not self.topic_suffix:
            return
        from thrive_shared.devstack.probes import ensure_topics
        from thrive_shared.devstack.stack import CANONICAL_TOPICS

        copies = {f"{name}-{self.topic_suffix}": spec for name, spec in CANONICAL_TOPICS.items()}
        await ensure_topics(self.kafka, copies, deadline=time.monotonic() + 60)

    def migrate(self) -> None:
        """Apply every service's migrations (each into its own schema)."""
        env = self.env()
        for svc in self.services:
            if svc.name not in WITH_DATABASE:
                continue
            done = subprocess.run(
                [_bin(svc.name), "migrate"], env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise SystemExit(f"migrating {svc.name} failed:\n{done.stderr[-2000:]}")

    def start(self) -> None:
        """Start each service in its own process group, logging to <log_dir>/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.env()
        for svc in self.services:
            log = (self.log_dir / f"{svc.name}.log").open("ab")
            self.procs[svc.name] = subprocess.Popen(
                [_bin(svc.name), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, *, deadline_s: float, echo: bool = False) -> None:
        """Wait until every service answers /health and /ready with 200."""
        deadline = time.monotonic() + deadline_s
        pending = {svc.name: svc for svc in self.services}
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending:
                for name, svc in list(pending.items()):
                    proc = self.procs[name]
                    if proc.poll() is not None:
                        raise SystemExit(
                            f"{name} exited with {proc.returncode}; "
                            f"see {self.log_dir / (name + '.log')}"
                        )
                    try:
                        health = await client.get(svc.url + "/health")
                        ready = await client.get(svc.url + "/ready")
                    except httpx.HTTPError:
                        continue
                    if health.status_code == 200 and ready.status_code == 200:
                        if echo:
                            typer.echo(f"  {name} healthy and ready at {svc.url}")
                        del pending[name]
                if pending and time.monotonic() > deadline:
                    raise SystemExit(
                        f"not ready in {deadline_s:.0f}s: {', '.join(pending)}; "
                        f"logs in {self.log_dir}"
                    )
                await asyncio.sleep(0.25)

    def stop(self, *, grace_s: float = 20.0) -> dict[str, str]:
        """SIGTERM every service and wait for its graceful exit; SIGKILL stragglers.

        Returns each service's outcome: "stopped cleanly" (it shut down by itself: exit 0,
        or uvicorn re-raising the SIGTERM it handled), "killed" or "exit <code>".
        """
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        outcomes = {}
        deadline = time.monotonic() + grace_s
        for name, proc in self.procs.items():
            try:
                code = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                outcomes[name] = "killed"
                continue
            clean = code in (0, -signal.SIGTERM)
            outcomes[name] = "stopped cleanly" if clean else f"exit {code}"
        return outcomes


def banner() -> str:
    return "\n".join(
        [
            "",
            "Thrive is running:",
            "  demo intranet page   http://127.0.0.1:8000/demo",
            "  GraphQL (GraphiQL)   http://127.0.0.1:8000/graphql",
            '  dev tokens           POST http://127.0.0.1:8000/dev-oidc/token {"username": "ada"}',
            "  internal APIs        recognition :8101  leaderboard :8102  notifier :8103",
            "  metrics              http://127.0.0.1:<port>/metrics",
            f"  logs                 {LOGS}/<service>.log",
            "Ctrl-C stops the services (Kafka and Postgres keep running: make stack-down).",
            "",
        ]
    )


@app.callback()
def _main() -> None:
    """Thrive's whole platform on this machine."""


@app.command()
def run(
    smoke: bool = typer.Option(False, help="Start, check health, seed, then stop and exit."),
    seed: bool = typer.Option(True, help="Load the demo people, asks and thanks."),
    ready_timeout: float = typer.Option(90.0, help="Seconds to wait for services to be ready."),
) -> None:
    """Start Kafka, Postgres and the four services, seed demo data, print the URLs."""
    from thrive_shared import demo

    typer.echo("Starting Kafka and PostgreSQL ...")
    ep = ensure_up()
    plat = Platform(kafka=ep.kafka_bootstrap, database=ep.database_url)
    typer.echo("Migrating ...")
    plat.migrate()
    typer.echo("Starting services ...")
    plat.start()
    stopping = asyncio.Event()
    try:
        asyncio.run(plat.wait_ready(deadline_s=ready_timeout, echo=True))
        if seed:
            typer.echo("Seeding demo data ...")
            summary = asyncio.run(
                demo.seed(kafka=ep.kafka_bootstrap, recognition=plat.url("recognition"))
            )
            typer.echo(f"  {summary}")
        if smoke:
            return
        typer.echo(banner())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        try:
            while all(p.poll() is None for p in plat.procs.values()):
                time.sleep(0.5)
                if stopping.is_set():
                    break
            dead = [n for n, p in plat.procs.items() if p.poll() is not None]
            if dead:
                typer.echo(f"{', '.join(dead)} stopped unexpectedly; see {LOGS}", err=True)
        except KeyboardInterrupt:
            pass
    finally:
        typer.echo("Stopping services ...")
        outcomes = plat.stop()
        typer.echo("  " + ", ".join(f"{n}: {o}" for n, o in outcomes.items()))
        if smoke and any(o != "stopped cleanly" for o in outcomes.values()):
            raise SystemExit(1)


if __name__ == "__main__":
    app()
