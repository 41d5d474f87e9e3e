"""Child processes of a service, and the outbox relay in a process of its own.

A serving process whose one thread is busy (recognition's consumer applies a batch while it
decodes the next) gains a core by moving work that needs no shared memory into a child: the
outbox relay only reads committed rows, so it can run anywhere (its advisory lock keeps one
relay per schema, so order per key holds). The child is started and restarted by the serving
process (a supervised task of the runtime), gets its settings through the environment, and
reports its metrics to its parent through a pipe, one JSON object per line, so the service's
one /metrics endpoint still counts every relayed event. It stops when its parent is gone
(SIGTERM from the kernel on Linux, and a parent check every second), so a killed service
leaves no orphan relaying on its own. The notifier's delivery processes use the same pipe.

A relay killed between producing and deleting its rows produces them again when restarted:
consumers deduplicate on (source, id), as for any crash of an in-process relay.

    python -m thrive_shared.relay_process --service recognition --schema recognition
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from thrive_shared.observability import metrics as shared_metrics

log = logging.getLogger(__name__)

METRICS_FD_ENV = "THRIVE_CHILD_METRICS_FD"  # the pipe a child writes its reports to
# The relay's metrics (thrive_shared.observability.metrics), forwarded to the parent.
_RELAY_COUNTERS = ("EVENTS_PRODUCED",)
_RELAY_GAUGES = ("OUTBOX_BACKLOG", "OUTBOX_OLDEST_AGE")
STOP_GRACE_S = 10.0

OnReport = Callable[[dict[str, Any]], None]


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """These settings as the environment `type(settings)()` reads them back from."""
    prefix = str(settings.model_config.get("env_prefix") or "")
    env: dict[str, str] = {}
    for name, info in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        alias = info.validation_alias
        key = (
            str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"{prefix}{name.upper()}"
        )
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = str(value).lower()
        env[key] = str(value)
    return env


# -- the parent ---------------------------------------------------------------------------------


async def run_child(
    args: Sequence[str], *, env: dict[str, str], on_report: OnReport, name: str
) -> None:
    """Run `python <args>` with a report pipe until cancelled (then stop it, gracefully if it
    can); raise when it exits on its own (the runtime restarts the task with a backoff)."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    env = {**env, METRICS_FD_ENV: str(write_fd)}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env, pass_fds=(write_fd,)
        )
    finally:
        os.close(write_fd)
    reader = asyncio.StreamReader()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        counting = asyncio.create_task(_read_reports(reader, on_report), name=f"{name}-metrics")
        try:
            code = await proc.wait()
            raise RuntimeError(f"{name} exited with {code}")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), STOP_GRACE_S + 5)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(counting), 1.0)
            counting.cancel()
            transport.close()


async def _read_reports(reader: asyncio.StreamReader, on_report: OnReport) -> None:
    while line := await reader.readline():
        try:
            on_report(orjson.loads(line))
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
            log.warning("unreadable report from a child process")


def apply_relay_metrics(report: dict[str, list[list[Any]]]) -> None:
    """Count in this process what a child's relay reported (other metric names are ignored)."""
    for name, labels, delta in report.get("inc", ()):
        if name in _RELAY_COUNTERS:
            getattr(shared_metrics, name).labels(*labels).inc(delta)
    for name, labels, value in report.get("set", ()):
        if name in _RELAY_GAUGES:
            getattr(shared_metrics, name).labels(*labels).set(value)


async def run_relay_process(settings: BaseSettings, *, service: str, schema: str) -> None:
    """The outbox relay of `schema` in a child process (see the module docstring)."""

    def on_report(message: dict[str, Any]) -> None:
        if "relay" in message:
            apply_relay_metrics(message["relay"])

    prefix = str(settings.model_config.get("env_prefix") or "")
    env = {k: v for k, v in os.environ.items() if not (prefix and k.startswith(prefix))}
    env.update(settings_env(settings))
    await run_child(
        ["-m", "thrive_shared.relay_process", "--service", service, "--schema", schema],
        env=env,
        on_report=on_report,
        name=f"{service} outbox relay process",
    )


# -- the child ----------------------------------------------------------------------------------


class RelayMetrics:
    """Changes of the relay's metrics in this process since the last report."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, tuple[str, ...]], float] = {}

    def report(self) -> dict[str, list[list[Any]]]:
        inc: list[list[Any]] = []
        for name in _RELAY_COUNTERS:
            for labels, value in _samples(getattr(shared_metrics, name), "_total"):
                delta = value - self.sent.get((name, labels), 0.0)
                if delta:
                    inc.append([name, list(labels), delta])
                    self.sent[(name, labels)] = value
        gauges = [
            [name, list(labels), value]
            for name in _RELAY_GAUGES
            for labels, value in _samples(getattr(shared_metrics, name), "")
        ]
        return {"inc": inc, "set": gauges}


def _samples(metric: Any, suffix: str) -> list[tuple[tuple[str, ...], float]]:
    out = []
    for family in metric.collect():
        for sample in family.samples:
            if sample.name == family.name + suffix:
                out.append((tuple(sample.labels[k] for k in metric._labelnames), sample.value))
    return out


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ChildReports:
    """Writes a child's reports to its parent's pipe (nothing without one)."""

    def __init__(self, fd: str | None = None) -> None:
        fd = fd if fd is not None else os.environ.get(METRICS_FD_ENV)
        self.out = os.fdopen(int(fd), "wb", buffering=0) if fd else None
        self.relay = RelayMetrics()

    def write(self, message: dict[str, Any]) -> None:
        if self.out is not None:
            with contextlib.suppress(OSError):  # the parent is gone: nothing to count for
                self.out.write(orjson.dumps(message) + b"\n")

    def relay_metrics(self) -> None:
        if self.out is not None:
            self.write({"relay": self.relay.report()})


async def relay_forever(settings: Any, *, service: str, schema: str) -> None:
    """The relay child's life: relay until SIGTERM or until the parent is gone."""
    from thrive_shared.db import create_pool
    from thrive_shared.kafka import Publisher
    from thrive_shared.kafka.producer import security_from_settings
    from thrive_shared.outbox import OutboxRelay

    parent = os.getppid()
    die_with_parent()
    reports = ChildReports()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The listener, the relay's transaction, and one for the backlog gauges between them.
    pool = await create_pool(settings.database_url, schema=schema, min_size=1, max_size=3)
    publisher = Publisher(
        settings.kafka_bootstrap_servers,
        client_id=f"thrive-{service}-relay",
        security=security_from_settings(settings),
    )
    relay = OutboxRelay(pool=pool, publisher=publisher, service=service, schema=schema)
    try:
        await publisher.start()
        await relay.start()
        while not stop.is_set():
            reports.relay_metrics()
            if os.getppid() != parent:
                log.warning("the service that started this relay process is gone; stopping")
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        with contextlib.suppress(Exception):
            await relay.relay_once()  # what the last batches committed
        await relay.stop()
        await publisher.stop()
        reports.relay_metrics()
        await pool.close()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m thrive_shared.relay_process --service NAME --schema SCHEMA`."""
    from thrive_shared.observability import setup_logging, setup_tracing
    from thrive_shared.settings import CommonSettings

    parser = argparse.ArgumentParser(description="Relay a service's outbox to Kafka.")
    parser.add_argument("--service", required=True)
    parser.add_argument("--schema", required=True)
    args = parser.parse_args(argv)
    settings = CommonSettings()  # the common settings' names carry no service prefix
    setup_logging(args.service, level=settings.log_level, json=settings.log_json)
    setup_tracing(f"thrive-{args.service}", otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    run: Callable[..., Any] = asyncio.run
    with contextlib.suppress(ImportError):  # uvloop comes with uvicorn[standard]
        import uvloop

        run = uvloop.run
    run(relay_forever(settings, service=args.service, schema=args.schema))


if __name__ == "__main__":
    main()
