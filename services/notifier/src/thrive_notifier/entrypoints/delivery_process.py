"""Delivery workers in a process of their own, so sends stop waiting for the fan-out.

The serving process consumes events and fans them out; a large milestone is hundreds of
milliseconds of CPU on its event loop, and webhooks reserved by the previous batch waited
for it. With `delivery_processes` > 0 the serving process starts that many child processes
(`thrive-notifier deliver`) that only claim, send and record: the lease already lets any
number of workers share the ledger. A commit that reserved sends wakes them through
Postgres (NOTIFY on SENDS_CHANNEL, delivered at commit); they also poll for retries.

A child reports each batch's outcomes to its parent through a pipe, so the service's one
/metrics endpoint still counts every delivery. It stops when its parent is gone (SIGTERM
from the kernel on Linux, and a parent check every second), so a killed notifier leaves no
orphan sending on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import AliasChoices, SecretStr
from thrive_shared.db import create_pool
from thrive_shared.observability import setup_logging, setup_tracing

from thrive_notifier.adapters.postgres import PostgresUnitOfWork
from thrive_notifier.entrypoints.workers import delivery_loop, observe_batch
from thrive_notifier.service_layer.delivery import BatchReport
from thrive_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

SENDS_CHANNEL = "thrive_notifier_sends"  # what entrypoints.kafka.NOTIFY_SENDS notifies
METRICS_FD_ENV = "THRIVE_NOTIFIER_DELIVERY_METRICS_FD"
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


async def run_child(settings: NotifierSettings, index: int) -> None:
    """Run one delivery process until cancelled; raise when it exits on its own (the
    runtime restarts this task with a backoff)."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIVE_NOTIFIER_")}
    env.update(settings_env(settings))
    env[METRICS_FD_ENV] = str(write_fd)
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
            observe_batch(BatchReport(**orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError):
            log.warning("unreadable delivery report from a delivery process")


# -- the child ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _pipe_reporter(fd: int) -> Callable[[BatchReport], None]:
    out = os.fdopen(fd, "wb", buffering=0)

    def report(r: BatchReport) -> None:
        if r.claimed:
            with contextlib.suppress(OSError):  # the parent is gone: nothing to count for
                line = {"claimed": r.claimed, "outcomes": r.outcomes, "retries": r.retries}
                out.write(orjson.dumps(line) + b"\n")

    return report


async def deliver_forever(settings: NotifierSettings) -> None:
    """The child's life: delivery workers until SIGTERM or until the parent is gone."""
    from thrive_notifier.bootstrap import make_senders

    parent = os.getppid()
    _die_with_parent()
    fd = os.environ.get(METRICS_FD_ENV)
    observe = _pipe_reporter(int(fd)) if fd else observe_batch
    s = settings
    pool = await create_pool(
        s.database_url,
        schema=s.schema_name,
        min_size=1,
        max_size=s.delivery_workers + 2,
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
            delivery_loop(
                uow,
                senders,
                policy=s.retry_policy(),
                batch_size=s.delivery_batch_size,
                concurrency=s.delivery_concurrency,
                lease_seconds=s.delivery_lease_seconds,
                poll_seconds=s.delivery_poll_seconds,
                wake=wake,
                stop=stop,
                observe=observe,
            ),
            name=f"delivery-{n}",
        )
        for n in range(s.delivery_workers)
    ]
    try:
        while not stop.is_set():
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
