"""Rebuilding every standing from the event history into a fresh schema.

The directory topic is replayed first (so erasures are known before the help they erase),
then help and milestones, each batch in one transaction through the same Applier the live
consumer uses. Inbox rows are written under the live consumer's name, so after a swap the
live consumer skips what the rebuild already applied. What no topic holds — opt-outs and
erasure tombstones — is copied over from the live schema first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from thrive_shared.contracts import InvalidEvent, parse_for_topic
from thrive_shared.kafka import claim_inbox

from thrive_leaderboard.adapters.replay import TopicReplay
from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.service_layer.apply import Applier

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass
class RebuildReport:
    """What a rebuild read and applied."""

    records: int = 0
    applied: int = 0
    duplicates: int = 0
    invalid: int = 0


async def replay_into(
    pool: asyncpg.Pool,
    *,
    bootstrap_servers: str,
    topic_groups: list[list[str]],
    applier: Applier,
    consumer_name: str,
    on_total: Callable[[int], None] = lambda _n: None,
    on_progress: Progress = lambda _n: None,
    batch: int = 5000,
) -> RebuildReport:
    """Replay each group of topics in turn into the schema `pool` is bound to."""
    report = RebuildReport()
    for topics in topic_groups:
        async with TopicReplay(bootstrap_servers, topics, batch=batch) as replay:
            on_total(replay.total)
            async for records in replay.batches():
                events = []
                for rec in records:
                    try:
                        events.append((rec, parse_for_topic(rec.topic, rec.value)))
                    except InvalidEvent:
                        report.invalid += 1  # the live consumer dead-lettered it already
                async with pool.acquire() as conn, conn.transaction():
                    fresh = await claim_inbox(
                        conn, consumer_name, [(r.topic, e) for r, e in events]
                    )
                    todo = []
                    for _, env in events:
                        key = (env.source, env.id)
                        if key in fresh:
                            fresh.discard(key)
                            todo.append(env)
                    await applier.apply_batch(conn, todo)
                report.records += len(records)
                report.applied += len(todo)
                report.duplicates += len(events) - len(todo)
                on_progress(len(records))
    return report


async def copy_owned_state(pool: asyncpg.Pool, *, from_schema: str) -> bool:
    """Copy opt-outs and tombstones from `from_schema` if it exists; return whether it did."""
    async with pool.acquire() as conn:
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", from_schema
        )
        has_table = exists and await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{from_schema}.person"
        )
        if not has_table:
            return False
        async with conn.transaction():
            await Repository().copy_owned_state(conn, from_schema=from_schema)
    return True
