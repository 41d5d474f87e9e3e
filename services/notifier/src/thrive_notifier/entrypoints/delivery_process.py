"""Delivery workers in a process of their own, so sends stop waiting for the fan-out.

The serving process consumes events and fans them out; a large milestone is hundreds of
milliseconds of CPU on its event loop, and webhooks reserved by the previous batch waited
for it. With `delivery_processes` > 0 the serving process starts that many child processes
(`thrive-notifier deliver`) that only claim, send and record: the lease already lets any
number of workers share the ledger. A commit that reserved sends wakes them through
Postgres (NOTIFY on SENDS_CHANNEL, delivered at commit); they also poll for retries.

The first child also runs the outbox relay (CelebrationDelivered to Kafka): with one Kafka
record per in-app delivery (CelebrationDelivered v1) it was as much CPU as the fan-out that
wrote it, and in the serving process it fell behind the fan-out; v2 is one record per
celebration, and the relay stays out of the serving process. A child reports each batch's
outcomes, and the relay's counters and gauges, to its parent through a pipe, so the service's
one /metrics endpoint still counts every delivery and every relayed event. It stops when its
parent is gone (SIGTERM from the kernel on Linux, and a parent check every second), so a
killed notifier leaves no orphan sending on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from typing import Any

import orjson
from pydantic import AliasChoices, SecretStr
from thrive_shared.db import create_pool
from thrive_shared.kafka import Publisher
from thrive_shared.kafka.producer import security_from_settings
from thrive_shared.observability import metrics as shared_metrics
from thrive_shared.observability import setup_logging, setup_tracing
from thrive_shared.outbox import OutboxRelay

from thrive_notifier.adapters.postgres import PostgresUnitOfWork
from thrive_notifier.entrypoints.workers import configured_delivery_loop, observe_batch
from thrive_notifier.service_layer.delivery import BatchReport
from thrive_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

SENDS_CHANNEL = "thrive_notifier_sends"  # what entrypoints.kafka.NOTIFY_SENDS notifies
METRICS_FD_ENV = "THRIVE_NOTIFIER_DELIVERY_METRICS_FD"
RELAY_ENV = "THRIVE_NOTIFIER_DELIVERY_RELAY"  # "1": this child relays the outbox
# The relay's metrics (thrive_shared.observability.metrics), forwarded to the parent.
_RELAY_COUNTERS = ("EVENTS_PRODUCED",)
_RELAY_GAUGES = ("OUTBOX_BACKLOG", "OUTBOX_OLDEST_AGE")
_STOP_GRACE_S = 10.0


def settings_env(settings: NotifierSettings) -> dict[str, str]:
    """These settings as the environment `NotifierSettings()` reads them back from."""
    env: dict[str, str] = {}
    for name, info in NotifierSettings.model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        alias = info.validation_alias
        key = (
            str(alias.choices[0])
            if isinstance(alias, AliasChoices)
            else f"THRIVE_NOTIFIER_{name.upper()}"
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


async def run_child(settings: NotifierSettings, index: int, *, relay: bool = False) -> None:
    """Run one delivery process (with the outbox relay if `relay`) until cancelled; raise
    when it exits on its own (the runtime restarts this task with a backoff)."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIVE_NOTIFIER_")}
    env.update(settings_env(settings))
    env[METRICS_FD_ENV] = str(write_fd)
    env[RELAY_ENV] = "1" if relay else "0"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "thrive_notifier", "deliver", env=env, pass_fds=(write_fd,)
        )
    finally:
        os.close(write_fd)
    reader = asyncio.StreamReader()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        counting = asyncio.create_task(_count_reports(reader), name=f"delivery-{index}-metrics")
        try:
            code = await proc.wait()
            raise RuntimeError(f"delivery process {index} exited with {code}")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), _STOP_GRACE_S + 5)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(counting), 1.0)
            counting.cancel()
            transport.close()


async def _count_reports(reader: asyncio.StreamReader) -> None:
    while line := await reader.readline():
        try:
            message = orjson.loads(line)
            if "relay" in message:
                _apply_relay_metrics(message["relay"])
            else:
                observe_batch(BatchReport(**message))
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError, AttributeError):
            log.warning("unreadable report from a delivery process")


def _apply_relay_metrics(report: dict[str, list[list[Any]]]) -> None:
    for name, labels, delta in report.get("inc", ()):
        if name in _RELAY_COUNTERS:
            getattr(shared_metrics, name).labels(*labels).inc(delta)
    for name, labels, value in report.get("set", ()):
        if name in _RELAY_GAUGES:
            getattr(shared_metrics, name).labels(*labels).set(value)


class _RelayMetrics:
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


# -- the child ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Reports:
    """Writes this child's reports to the parent's pipe (or counts them here without one)."""

    def __init__(self, fd: str | None) -> None:
        self.out = os.fdopen(int(fd), "wb", buffering=0) if fd else None
        self.relay = _RelayMetrics()

    def _write(self, message: dict[str, Any]) -> None:
        if self.out is not None:
            with contextlib.suppress(OSError):  # the parent is gone: nothing to count for
                self.out.write(orjson.dumps(message) + b"\n")

    def batch(self, r: BatchReport) -> None:
        if self.out is None:
            observe_batch(r)
        elif r.claimed:
            self._write({"claimed": r.claimed, "outcomes": r.outcomes, "retries": r.retries})

    def relay_metrics(self) -> None:
        if self.out is not None:
            self._write({"relay": self.relay.report()})


async def deliver_forever(settings: NotifierSettings) -> None:
    """The child's life: delivery workers until SIGTERM or until the parent is gone."""
    from thrive_notifier.bootstrap import make_senders

    parent = os.getppid()
    _die_with_parent()
    reports = _Reports(os.environ.get(METRICS_FD_ENV))
    s = settings
    pool = await create_pool(
        s.database_url,
        schema=s.schema_name,
        min_size=1,
        max_size=s.delivery_workers + 4,  # + two listeners and the relay's transaction
    )
    uow = PostgresUnitOfWork(pool, defaults=s.default_preferences())
    senders = make_senders(s)
    wake = asyncio.Event()
    stop = asyncio.Event()
    listener = await pool.acquire()

    def woken(*_: Any) -> None:
        wake.set()

    await listener.add_listener(SENDS_CHANNEL, woken)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    workers = [
        asyncio.create_task(
            configured_delivery_loop(uow, senders, s, wake=wake, stop=stop, observe=reports.batch),
            name=f"delivery-{n}",
        )
        for n in range(s.delivery_workers)
    ]
    relay: OutboxRelay | None = None
    publisher: Publisher | None = None
    if os.environ.get(RELAY_ENV) == "1":
        publisher = Publisher(
            s.kafka_bootstrap_servers,
            client_id="thrive-notifier-relay",
            security=security_from_settings(s),
        )
        await publisher.start()
        relay = OutboxRelay(
            pool=pool, publisher=publisher, service="notifier", schema=s.schema_name
        )
        await relay.start()
    try:
        while not stop.is_set():
            if relay is not None:
                reports.relay_metrics()
            if os.getppid() != parent:
                log.warning("the notifier that started this delivery process is gone; stopping")
                break
            if any(w.done() for w in workers):
                for w in workers:
                    if w.done() and w.exception() is not None:
                        raise w.exception()  # type: ignore[misc]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        # Let the workers finish the batch in hand (sent rows get recorded), then stop.
        stop.set()
        wake.set()
        _done, pending = await asyncio.wait(workers, timeout=_STOP_GRACE_S)
        for w in pending:
            w.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if relay is not None and publisher is not None:
            with contextlib.suppress(Exception):
                await relay.relay_once()  # what the last batches committed
            await relay.stop()
            await publisher.stop()
            reports.relay_metrics()
        for sender in senders.values():
            closer = getattr(sender, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        with contextlib.suppress(Exception):
            await listener.remove_listener(SENDS_CHANNEL, woken)
            await pool.release(listener)
        await pool.close()


def main() -> None:
    """`thrive-notifier deliver`: run delivery workers only (started by `serve`)."""
    settings = NotifierSettings()
    setup_logging("notifier", level=settings.log_level, json=settings.log_json)
    setup_tracing("thrive-notifier", otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(deliver_forever(settings))
    else:
        uvloop.run(deliver_forever(settings))
