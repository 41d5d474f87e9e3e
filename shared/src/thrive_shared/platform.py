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
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer

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


SERVICES = (
    ServiceProc("recognition", 8101),
    ServiceProc("leaderboard", 8102),
    ServiceProc("notifier", 8103),
    ServiceProc("gateway", 8000),
)


def service_env(kafka: str, database: str) -> dict[str, str]:
    """Environment for every service process: where things are, and local-dev switches."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": database,
        "LOG_JSON": os.environ.get("LOG_JSON", "true"),
        "THRIVE_GATEWAY_DEV_ISSUER": "true",
        "THRIVE_GATEWAY_RECOGNITION_URL": "http://127.0.0.1:8101",
        "THRIVE_GATEWAY_LEADERBOARD_URL": "http://127.0.0.1:8102",
        "THRIVE_GATEWAY_NOTIFIER_URL": "http://127.0.0.1:8103",
    }
    for svc in SERVICES:
        env[f"THRIVE_{svc.name.upper()}_PORT"] = str(svc.port)
        env[f"THRIVE_{svc.name.upper()}_HOST"] = "127.0.0.1"
    return env


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / f"thrive-{name}"
    return str(candidate) if candidate.exists() else f"thrive-{name}"


def migrate_all(env: dict[str, str]) -> None:
    """Apply every service's migrations (each into its own schema)."""
    for svc in SERVICES:
        done = subprocess.run([_bin(svc.name), "migrate"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"migrating {svc.name} failed:\n{done.stderr[-2000:]}")
        typer.echo(f"  migrated {svc.name}")


def start_all(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    """Start each service in its own process group, logging to .devstack/logs/<name>.log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    procs = {}
    for svc in SERVICES:
        log = (LOGS / f"{svc.name}.log").open("ab")
        procs[svc.name] = subprocess.Popen(
            [_bin(svc.name), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return procs


async def wait_healthy(procs: dict[str, subprocess.Popen[bytes]], *, deadline_s: float) -> None:
    """Wait until every service answers /health and /ready with 200."""
    deadline = time.monotonic() + deadline_s
    pending = {svc.name: svc for svc in SERVICES}
    async with httpx.AsyncClient(timeout=2.0) as client:
        while pending:
            for name, svc in list(pending.items()):
                if procs[name].poll() is not None:
                    raise SystemExit(
                        f"{name} exited with {procs[name].returncode}; see {LOGS / (name + '.log')}"
                    )
                try:
                    health = await client.get(svc.url + "/health")
                    ready = await client.get(svc.url + "/ready")
                except httpx.HTTPError:
                    continue
                if health.status_code == 200 and ready.status_code == 200:
                    typer.echo(f"  {name} healthy and ready at {svc.url}")
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise SystemExit(
                    f"not ready in {deadline_s:.0f}s: {', '.join(pending)}; logs in {LOGS}"
                )
            await asyncio.sleep(0.25)


def stop_all(procs: dict[str, subprocess.Popen[bytes]], *, grace_s: float = 20.0) -> dict[str, int]:
    """SIGTERM every service, wait for a graceful exit, SIGKILL stragglers; return exit codes."""
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    codes = {}
    deadline = time.monotonic() + grace_s
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            codes[name] = proc.wait()
    return codes


def banner() -> str:
    return "\n".join(
        [
            "",
            "Thrive is running:",
            "  demo intranet page   http://127.0.0.1:8000/demo",
            "  GraphQL (GraphiQL)   http://127.0.0.1:8000/graphql",
            "  dev token issuer     http://127.0.0.1:8000/dev-oidc/token?user=ada",
            "  internal APIs        recognition :8101  leaderboard :8102  notifier :8103",
            "  metrics              http://127.0.0.1:<port>/metrics",
            f"  logs                 {LOGS}/<service>.log",
            "Ctrl-C stops the services (Kafka and Postgres keep running: make stack-down).",
            "",
        ]
    )


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
    env = service_env(ep.kafka_bootstrap, ep.database_url)
    typer.echo("Migrating ...")
    migrate_all(env)
    typer.echo("Starting services ...")
    procs = start_all(env)
    stopping = asyncio.Event()
    try:
        asyncio.run(wait_healthy(procs, deadline_s=ready_timeout))
        if seed:
            typer.echo("Seeding demo data ...")
            summary = asyncio.run(demo.seed(kafka=ep.kafka_bootstrap))
            typer.echo(f"  {summary}")
        if smoke:
            return
        typer.echo(banner())
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        try:
            while all(p.poll() is None for p in procs.values()):
                time.sleep(0.5)
                if stopping.is_set():
                    break
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                typer.echo(f"{', '.join(dead)} stopped unexpectedly; see {LOGS}", err=True)
        except KeyboardInterrupt:
            pass
    finally:
        typer.echo("Stopping services ...")
        codes = stop_all(procs)
        typer.echo("  " + ", ".join(f"{n}: exit {c}" for n, c in codes.items()))
        if smoke and any(c != 0 for c in codes.values()):
            raise SystemExit(1)


if __name__ == "__main__":
    app()
