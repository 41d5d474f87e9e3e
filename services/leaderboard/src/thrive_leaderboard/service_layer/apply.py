"""Applying events to standings: Postgres inside the consumer's transaction, memory after commit.

Help and milestone events become counter increments, summed per day row (scope, local
day, person) over the batch and written with one statement. Distinct people helped is
decided from the `helped` pairs (one read and one write for the whole batch), then added
as a plain increment per window. The same increments are added to the resident boards
once the transaction has committed (never before: a rolled back batch must leave no
trace in memory), tagged with the transaction's id so a board read after that commit
does not count them twice.

Concurrency: the pair read is not locked. Help events are keyed by helper, so one
helper's pairs are only ever written by the consumer member owning that partition; during
a rebalance the new owner starts at the last committed offset, which overlaps the old
owner's batch in flight, and its inbox claim waits for that batch to commit before it
reads any pair. The union in the pair upsert keeps the stored days exact regardless.
Members of the group apply their batches concurrently (milestones and help for one
person may then write the same day rows: row locks order them, and increments add up in
any order in memory). A batch holding an erasure takes the apply lock
exclusively, every other batch shares it, so no apply overlaps an erasure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from thrive_shared.contracts import (
    Envelope,
    HelpReceived,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
)

from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.domain.contributions import (
    DayAgg,
    DayKey,
    Fact,
    Milestone,
    PairKey,
    PersonKeys,
    accumulate,
    distinct_increments,
    help_fact,
    milestone_fact,
)
from thrive_leaderboard.service_layer.boards import Leaderboards

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DayRows:
    """A committed run's day-row increments, and the id of the transaction that wrote them."""

    xid: int
    rows: Sequence[tuple[DayKey, DayAgg]]

    def size(self) -> int:
        """How many rows."""
        return len(self.rows)

    def part(self, start: int, stop: int) -> DayRows:
        """Rows `start`..`stop`."""
        return DayRows(self.xid, self.rows[start:stop])


@dataclass(frozen=True, slots=True)
class TeamChange:
    person: str
    team: str | None


@dataclass(frozen=True, slots=True)
class Erasure:
    person: str


Effect = DayRows | TeamChange | Erasure
EventKey = tuple[str, str]

# Effects of events whose transaction failed and was never retried (dead-lettered) are
# dropped once this many pile up; they are never applied to memory.
_MAX_PENDING = 50_000


class Applier:
    """Turns consumed events into standings changes."""

    def __init__(
        self,
        *,
        repo: Repository,
        keys: PersonKeys,
        tz: ZoneInfo,
        boards: Leaderboards | None,
    ) -> None:
        self.repo = repo
        self.keys = keys
        self.tz = tz
        self.boards = boards
        self._pending: dict[EventKey, list[Effect]] = {}
        self.applied_events = 0

    def _team(self, person: str | None, given: str | None) -> str | None:
        if given is not None or person is None or self.boards is None:
            return given
        return self.boards.directory.team_of(person)

    def fact(self, env: Envelope[Any]) -> Fact | None:
        """What a help or milestone event adds (None for other events and for no-ops)."""
        data = env.data
        if isinstance(data, HelpReceived):
            if data.helper is None:  # the helper was erased before the event was made
                return None
            if data.giver is not None and data.giver == data.helper:
                return None  # recognition refuses self-thanks; never let one score here
            return help_fact(
                data.helper,
                data.giver,
                self._team(data.helper, data.helper_team),
                self._team(data.giver, data.giver_team),
                tuple(data.themes),
                data.discounted,
                data.given_at,
                self.tz,
                self.keys,
            )
        if isinstance(data, MilestoneReached):
            ms = Milestone(person=data.person, themes=tuple(data.themes), at=data.reached_at)
            return milestone_fact(ms, tz=self.tz)
        return None

    async def handle(self, conn: asyncpg.Connection, env: Envelope[Any], meta: object) -> None:
        """EventConsumer handler: apply one event in the consumer's transaction.

        The per-event path (after a batch failed) runs alone: the lock is taken
        exclusively by its first event, so a later erasure in the same transaction never
        has to upgrade a shared lock while other members hold theirs.
        """
        await self.apply_batch(conn, [env], exclusive=True)

    async def handle_batch(
        self, conn: asyncpg.Connection, batch: Sequence[tuple[Envelope[Any], object]]
    ) -> None:
        """EventConsumer batch handler: the deduplicated batch, set-based, in one transaction."""
        await self.apply_batch(conn, [env for env, _meta in batch])

    async def apply_batch(
        self, conn: asyncpg.Connection, envs: Sequence[Envelope[Any]], *, exclusive: bool = False
    ) -> None:
        """Apply events in order inside the caller's transaction; remember their effects.

        Takes the apply lock first: exclusively if an event erases someone (or if asked).
        """
        if not envs:
            return
        erases = exclusive or any(isinstance(env.data, PersonErased) for env in envs)
        xid = await self.repo.lock_apply(conn, exclusive=erases)
        run: list[Envelope[Any]] = []
        for env in envs:
            if isinstance(env.data, PersonUpserted | PersonErased):
                await self._flush(conn, run, xid)
                run = []
                await self._directory(conn, env)
            else:
                run.append(env)
        await self._flush(conn, run, xid)

    async def _flush(self, conn: asyncpg.Connection, envs: list[Envelope[Any]], xid: int) -> None:
        if not envs:
            return
        # Without resident boards (a rebuild) nothing is kept for memory: a replay of
        # millions of events must not hold their committed rows.
        track = self.boards is not None
        rows: dict[DayKey, DayAgg] = {}
        pairs: dict[PairKey, set[int]] = {}
        pending = self._pending
        for env in envs:
            if track:
                pending[(env.source, env.id)] = []
            fact = self.fact(env)
            if fact is None:
                continue
            accumulate(rows, fact)
            if fact.giver is not None:
                for scope in fact.scopes:
                    pair = (fact.person, scope, fact.giver)
                    days = pairs.get(pair)  # no set made per event for pairs seen before
                    if days is None:
                        pairs[pair] = {fact.day}
                    else:
                        days.add(fact.day)
        people = {k[2] for k in rows}
        person_keys = {p: self.keys.tombstone(p) for p in people}
        if pairs:
            known = await self.repo.helped_days(conn, list(pairs))
            merged = distinct_increments(pairs, known, rows)
            await self.repo.merge_helped(conn, merged, person_keys)
        gone = await self.repo.apply(conn, rows, person_keys)
        if not track or not rows:
            return
        # The run commits as a whole (or not at all), so its rows go to memory with its
        # last event: after every effect before the run, before every effect after it
        # (runs are cut at directory events). Rows the store skipped (people erased before
        # this process started) are skipped in memory too.
        items = list(rows.items())
        if gone:
            items = [(k, a) for k, a in items if k[2] not in gone]
        last = envs[-1]
        pending[(last.source, last.id)] = [DayRows(xid, items)]

    async def _directory(self, conn: asyncpg.Connection, env: Envelope[Any]) -> None:
        data = env.data
        effects: list[Effect] = []
        if isinstance(data, PersonUpserted):
            if not await self.repo.is_erased(conn, self.keys.tombstone(data.person)):
                await self.repo.upsert_person(conn, data.person, data.team)
                effects.append(TeamChange(data.person, data.team))
        elif isinstance(data, PersonErased):
            await self.repo.erase(conn, data.person, self.keys.tombstone(data.person))
            effects.append(Erasure(data.person))
        if self.boards is not None:
            self._pending[(env.source, env.id)] = effects

    async def after_commit(self, applied: Sequence[tuple[Envelope[Any], Any]]) -> None:
        """EventConsumer hook: mirror committed effects into memory, in commit order."""
        self.mirror(self.take(applied))

    def take(self, applied: Sequence[tuple[Envelope[Any], Any]]) -> list[list[Effect]]:
        """Detach the effects of committed events (at commit time, even if mirrored later)."""
        taken = [self._pending.pop((env.source, env.id), []) for env, _meta in applied]
        self.applied_events += len(applied)
        # Whatever is left belongs to transactions that never committed (dead-lettered
        # events), or to other members' batches still under way: drop the oldest only
        # (those in flight were claimed last, and are far fewer than the bound).
        pending = self._pending
        if len(pending) > _MAX_PENDING:
            excess = len(pending) - _MAX_PENDING // 2
            log.warning("dropping effects of events that never committed", extra={"count": excess})
            for key in list(islice(pending, excess)):
                del pending[key]
        return taken

    def mirror(self, taken: Sequence[list[Effect]]) -> None:
        """Apply detached effects to memory, in commit order."""
        if self.boards is None:
            return
        for effects in taken:
            for effect in effects:
                if isinstance(effect, DayRows):
                    self.boards.apply_days(effect.xid, effect.rows)
                elif isinstance(effect, TeamChange):
                    self.boards.set_team(effect.person, effect.team)
                else:
                    self.boards.erase(effect.person)
