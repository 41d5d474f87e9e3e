"""Wires recognition together: settings -> policies -> consumers, routes, background sweep."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import os
from typing import Any

from thrive_shared.contracts import topics
from thrive_shared.service import Runtime, ServiceSpec

from thrive_recognition.adapters.unit_of_work import SqlUnitOfWork
from thrive_recognition.entrypoints.http import ROUTES
from thrive_recognition.entrypoints.kafka import RecognitionConsumers
from thrive_recognition.service_layer import handlers
from thrive_recognition.service_layer.handlers import Policies
from thrive_recognition.settings import RecognitionSettings

log = logging.getLogger(__name__)
NAME = "recognition"


async def expire_once(runtime: Runtime, policies: Policies, *, limit: int = 500) -> int:
    """One expiry sweep in one transaction; returns how many asks expired."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        uow = SqlUnitOfWork(conn)
        expired = await handlers.expire_asks(uow, policies=policies, limit=limit)
        await uow.flush()
    return len(expired)


def tune_gc(threshold: int) -> None:
    """Freeze what exists now and make young garbage collections rarer (process-wide)."""
    # The ingest path allocates a few hundred short-lived objects per event, which with
    # Python's defaults starts a young collection every few events and, now and then, a
    # full one over every long-lived object: ~40% of the batch core's CPU. Startup objects
    # leave the collector's sight (freeze) and young collections come rarer; reference
    # counting still frees everything acyclic at once.
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, max(gen1, 20), max(gen2, 20))


def build_spec(
    settings: RecognitionSettings | None = None,
    *,
    directory_topic: str = topics.DIRECTORY_PERSON,
    ingest_topic: str = topics.INGEST_HELP,
    group_suffix: str | None = None,
    sweep: bool = True,
) -> ServiceSpec:
    """The service as the shared runtime runs it (topics overridable for isolated tests).

    On isolated topic copies (THRIVE_TOPIC_SUFFIX), the consumer groups carry the suffix
    too, so a copy's consumers never join (and rebalance) the canonical groups.
    """
    s = settings or RecognitionSettings()
    if group_suffix is None:
        group_suffix = os.environ.get(topics.SUFFIX_ENV) or None
    policies = s.policies()  # fail fast on a bad rule file, before anything connects
    consumers = RecognitionConsumers(policies)

    async def setup(rt: Runtime) -> None:
        tune_gc(s.gc_threshold)
        rt.state["policies"] = policies
        rt.state["consumers"] = consumers
        suffix = f".{group_suffix}" if group_suffix else ""
        rt.add_consumer(
            "directory",
            topics=[directory_topic],
            handler=consumers.directory,
            group_id=f"thrive-{NAME}.directory{suffix}",
        )
        batch: dict[str, Any] = {}
        if "batch_handler" in inspect.signature(rt.add_consumer).parameters:
            # Set-based ingest when the shared consumer can hand over whole batches.
            batch["batch_handler"] = consumers.ingest_batch
        rt.add_consumer(
            "ingest",
            topics=[ingest_topic],
            handler=consumers.ingest,
            after_commit=consumers.after_commit,
            group_id=f"thrive-{NAME}.ingest{suffix}",
            # Under load, bigger batches share each statement's fixed cost among more
            # events; at a trickle a poll returns what is there, so latency is unchanged.
            max_records=s.ingest_max_records,
            **batch,
        )
        if sweep:

            async def sweep_loop(runtime: Runtime) -> None:
                while True:
                    n = await expire_once(runtime, policies)
                    if n:
                        log.info("asks expired", extra={"count": n})
                    await asyncio.sleep(s.expiry_sweep_seconds)

            rt.add_task("expire-asks", sweep_loop)

    return ServiceSpec(
        name=NAME,
        settings=s,
        migrations_dir=s.migrations_dir,
        routes=ROUTES,
        setup=setup,
        schema=s.db_schema,
    )
