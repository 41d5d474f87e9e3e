"""CLI: `uv run python -m thrive_shared.devstack up|down|status|env|logs`."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from thrive_shared.devstack import procs
from thrive_shared.devstack.config import StackConfig
from thrive_shared.devstack.errors import PrerequisiteError, StackError
from thrive_shared.devstack.stack import down as stack_down
from thrive_shared.devstack.stack import endpoints, ensure_up
from thrive_shared.devstack.stack import status as stack_status

app = typer.Typer(
    help="Local Kafka + PostgreSQL for Thrive (KRaft broker on 127.0.0.1:19092, "
    "PostgreSQL on 127.0.0.1:15432).",
    no_args_is_help=True,
    add_completion=False,
)


class Component(StrEnum):
    """Which server's log to show."""

    kafka = "kafka"
    postgres = "postgres"


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("thrive_shared.devstack")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _fail(exc: StackError) -> typer.Exit:
    typer.echo(str(exc), err=True)
    return typer.Exit(2 if isinstance(exc, PrerequisiteError) else 1)


@app.command()
def up(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 180.0,
) -> None:
    """Start Kafka and PostgreSQL unless running, wait until they answer, create topics."""
    _setup_logging()
    t0 = time.monotonic()
    try:
        ep = ensure_up(timeout=timeout)
    except StackError as exc:
        raise _fail(exc) from None
    typer.echo(f"Stack ready in {time.monotonic() - t0:.1f}s")
    typer.echo(f"  KAFKA_BOOTSTRAP_SERVERS={ep.kafka_bootstrap}")
    typer.echo(f"  DATABASE_URL={ep.database_url}")


@app.command()
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also wipe Kafka and PostgreSQL data (jars stay).")
    ] = False,
) -> None:
    """Stop Kafka and PostgreSQL cleanly; data stays unless --purge."""
    _setup_logging()
    try:
        for line in stack_down(purge=purge):
            typer.echo(line)
    except StackError as exc:
        raise _fail(exc) from None


@app.command()
def status() -> None:
    """Show what runs where (exit code 1 unless both servers answer)."""
    try:
        components = stack_status()
    except StackError as exc:
        raise _fail(exc) from None
    for c in components:
        pid = f"pid {c.pid}" if c.pid is not None else ""
        typer.echo(f"{c.name:<9} {c.state:<10} {c.address:<55} {pid:<11} {c.detail}".rstrip())
    if not all(c.state in ("running", "external") for c in components):
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print `export ...` lines for the endpoints: eval "$(... devstack env)"."""
    try:
        ep = endpoints()
    except StackError as exc:
        raise _fail(exc) from None
    typer.echo(
        f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(ep.kafka_bootstrap)} "
        f"DATABASE_URL={shlex.quote(ep.database_url)}"
    )


@app.command()
def logs(
    component: Annotated[Component, typer.Argument(help="kafka or postgres")] = Component.kafka,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 40,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """Show the end of a server's log file."""
    try:
        cfg = StackConfig.from_env()
    except StackError as exc:
        raise _fail(exc) from None
    path = cfg.kafka_log_file if component is Component.kafka else cfg.postgres_log_file
    if not path.exists():
        typer.echo(f"No log yet at {path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"==> {path} <==", err=True)
    text = procs.tail(path, lines)
    if text:
        typer.echo(text)
    if follow:
        _follow(path)


def _follow(path: Path) -> None:
    with path.open("rb") as fh:
        fh.seek(0, 2)
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    app()
