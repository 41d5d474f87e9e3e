"""Wiring: settings + shared runtime -> repository, boards, applier, consumer, live updates."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from thrive_shared.contracts import LeaderboardChanged, make_event
from thrive_shared.http import ApiError
from thrive_shared.outbox import enqueue
from thrive_shared.service import Runtime, ServiceSpec

from thrive_leaderboard import metrics
from thrive_leaderboard.adapters.repository import BoardRead, Repository
from thrive_leaderboard.domain.contributions import PersonKeys
from thrive_leaderboard.domain.periods import period_days
from thrive_leaderboard.domain.scoring import scorers
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.service_layer.apply import Applier
from thrive_leaderboard.service_layer.boards import Leaderboards
from thrive_leaderboard.service_layer.directory import Directory
from thrive_leaderboard.service_layer.live import LiveUpdates
from thrive_leaderboard.service_layer.mirror import Mirror
from thrive_leaderboard.service_layer.rollup import horizon, roll_up
from thrive_leaderboard.settings import LeaderboardSettings

log = logging.getLogger(__name__)

SERVICE = "leaderboard"
SOURCE = "thrive/leaderboard"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@dataclass
class LeaderboardApp:
    """The live objects the routes and the consumer share."""

    pool: asyncpg.Pool
    repo: Repository
    keys: PersonKeys
    boards: Leaderboards
    applier: Applier
    live: LiveUpdates

    async def opt_out_of(self, person: str) -> dict[str, Any]:
        """The person's opt-out choice (false unless they made one)."""
        return {"person": person, "opted_out": self.boards.directory.is_opted_out(person)}

    async def set_opt_out(self, person: str, opted_out: bool) -> dict[str, Any]:
        """Record an opt-out choice durably, then hide or show the person everywhere."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await self.repo.is_erased(conn, self.keys.tombstone(person)):
                raise ApiError(404, "not_found", "No such person.", field="id")
            row = await self.repo.set_opt_out(conn, person, opted_out)
        self.boards.set_opted_out(person, row.opted_out)
        return {"person": person, "opted_out": row.opted_out}


def make_keys(settings: LeaderboardSettings) -> PersonKeys:
    """Person hash keys from the configured secret."""
    return PersonKeys(settings.person_hash_key.get_secret_value().encode()[:64])


def make_loader(pool: asyncpg.Pool, repo: Repository) -> Any:
    """A board loader reading from Postgres."""

    async def load(key: StoredBoard) -> BoardRead:
        async with pool.acquire() as conn:
            return await repo.load_board(conn, key, period_days(key.window, key.period))

    return load


async def outbox_publisher(
    pool: asyncpg.Pool, events: Sequence[LeaderboardChanged], *, topic: str
) -> None:
    """Write LeaderboardChanged events to the outbox in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await enqueue(conn, make_event(event, source=SOURCE), topic=topic)


async def build_app(pool: asyncpg.Pool, settings: LeaderboardSettings) -> LeaderboardApp:
    """Load the directory and the current boards from Postgres and wire the app."""
    repo = Repository()
    started = time.perf_counter()
    async with pool.acquire() as conn:
        people = await repo.load_people(conn)
    directory = Directory(people)
    boards = Leaderboards(
        loader=make_loader(pool, repo),
        directory=directory,
        scorers=scorers(settings.weights()),
        tz=settings.tz(),
        max_resident_entries=settings.max_resident_entries,
    )
    await boards.preload(settings.preload_metrics)
    log.info(
        "leaderboards loaded",
        extra={
            "people": len(directory),
            "entries": boards.resident_entries(),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    metrics.RESIDENT_ENTRIES.set(boards.resident_entries())
    keys = make_keys(settings)
    applier = Applier(repo=repo, keys=keys, tz=settings.tz(), boards=boards)

    async def publish(events: list[LeaderboardChanged]) -> None:
        await outbox_publisher(pool, events, topic=settings.topic_leaderboard_changed)

    live = LiveUpdates(
        boards=boards,
        publish=publish,
        top_n=settings.live_top_n,
        metrics=settings.live_metrics,
    )
    return LeaderboardApp(pool, repo, keys, boards, applier, live)


def tune_gc(threshold: int) -> None:
    """Make young garbage collections rarer (process-wide); boards are frozen already."""
    # Reference counting frees the apply path's acyclic garbage at once; the collector
    # only has to find cycles, which this path does not make.
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, max(gen1, 20), max(gen2, 20))


def build_spec(settings: LeaderboardSettings | None = None) -> ServiceSpec:
    """The leaderboard service as the shared runtime runs it."""
    from thrive_leaderboard.entrypoints.fast import wrap
    from thrive_leaderboard.entrypoints.http import ROUTES

    s = settings or LeaderboardSettings()

    async def setup(rt: Runtime) -> None:
        app = await build_app(rt.pool, s)
        rt.state["leaderboard"] = app
        tune_gc(s.gc_young_threshold)

        # Memory follows commits through a worker, so mirroring one batch overlaps the
        # next batch's database work (events count as applied once they are in memory).
        mirror = Mirror(app.applier, on_mirrored=metrics.EVENTS_APPLIED.inc)
        rt.add_task("leaderboard-mirror", mirror.run)
        # Several members of one group (same inbox name): their batches overlap.
        for _ in range(s.consumer_members):
            rt.add_consumer(
                s.consumer_name,
                topics=s.topics(),
                handler=app.applier.handle,
                batch_handler=app.applier.handle_batch,
                after_commit=mirror.put,
                group_id=s.consumer_group_id,
            )

        async def live_loop(_rt: Runtime) -> None:
            while True:
                await asyncio.sleep(s.live_interval_seconds)
                await app.live.tick()
                metrics.RESIDENT_ENTRIES.set(app.boards.resident_entries())

        rt.add_task("leaderboard-live", live_loop)

        async def rollup_loop(_rt: Runtime) -> None:
            while True:
                try:
                    before = horizon(app.boards.clock(), s.tz(), s.rollup_keep_days)
                    await roll_up(app.pool, app.repo, before=before)
                except Exception:  # retried next round; day rows stay correct meanwhile
                    log.exception("rolling up day rows failed")
                await asyncio.sleep(s.rollup_interval_seconds)

        rt.add_task("leaderboard-rollup", rollup_loop)

    return ServiceSpec(
        name=SERVICE,
        settings=s,
        migrations_dir=MIGRATIONS,
        routes=ROUTES,
        setup=setup,
        # GET boards/top, /rank, /neighbourhood answered from memory before the middleware.
        wrap_app=wrap,
    )
