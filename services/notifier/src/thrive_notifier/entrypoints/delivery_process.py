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
killed notifier leaves no orphan sending on its own. The pipe, the settings passed through
the environment and the parent's supervision are shared (thrive_shared.relay_process, which
also runs other services' outbox relay in a process of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from thrive_shared.db import create_pool
from thrive_shared.kafka import Publisher
from thrive_shared.kafka.producer import security_from_settings
from thrive_shared.observability import setup_logging, setup_tracing
from thrive_shared.outbox import OutboxRelay
from thrive_shared.relay_process import (
    STOP_GRACE_S,
    ChildReports,
    apply_relay_metrics,
    die_with_parent,
    settings_env,
)
from thrive_shared.relay_process import (
    run_child as run_reporting_child,
)

from thrive_notifier.adapters.postgres import PostgresUnitOfWork
from thrive_notifier.entrypoints.workers import configured_delivery_loop, observe_batch
from thrive_notifier.service_layer.delivery import BatchReport
from thrive_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

SENDS_CHANNEL = "thrive_notifier_sends"  # what entrypoints.kafka.NOTIFY_SENDS notifies
RELAY_ENV = "THRIVE_NOTIFIER_DELIVERY_RELAY"  # "1": this child relays the outbox
__all__ = ["deliver_forever", "main", "run_child", "settings_env"]


# -- the parent ---------------------------------------------------------------------------------


async def run_child(settings: NotifierSettings, index: int, *, relay: bool = False) -> None:
    """Run one delivery process (with the outbox relay if `relay`) until cancelled; raise
    when it exits on its own (the runtime restarts this task with a backoff)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIVE_NOTIFIER_")}
    env.update(settings_env(settings))
    env[RELAY_ENV] = "1" if relay else "0"
    await run_reporting_child(
        ["-m", "thrive_notifier", "deliver"],
        env=env,
        on_report=_count_report,
        name=f"delivery process {index}",
    )


def _count_report(message: dict[str, Any]) -> None:
    if "relay" in message:
        apply_relay_metrics(message["relay"])
    else:
        observe_batch(BatchReport(**message))


# -- the child ----------------------------------------------------------------------------------


class _Reports(ChildReports):
    """Writes this child's reports to the parent's pipe (or counts them here without one)."""

    def batch(self, r: BatchReport) -> None:
        if self.out is None:
            observe_batch(r)
        elif r.claimed:
            self.write({"claimed": r.claimed, "outcomes": r.outcomes, "retries": r.retries})


async def deliver_forever(settings: NotifierSettings) -> None:
    """The child's life: delivery workers until SIGTERM or until the parent is gone."""
    from thrive_notifier.bootstrap import make_senders

    parent = os.getppid()
    die_with_parent()
    reports = _Reports()
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
        _done, pending = await asyncio.wait(workers, timeout=STOP_GRACE_S)
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
