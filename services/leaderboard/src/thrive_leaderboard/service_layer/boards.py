"""Resident boards and the queries on them: top N, rank, neighbourhood, rising.

Stored board-periods are loaded from Postgres on first use (current company periods at
start) and kept in step by adding every committed batch's increments. Each board keeps
the snapshot it was read in, so a batch it already holds is never added twice; a board
being loaded queues the batches committed meanwhile and replays the ones its snapshot
does not show, so nothing is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from thrive_leaderboard.adapters.repository import BoardRead
from thrive_leaderboard.domain.contributions import COMPANY, DayAgg, DayKey, theme_scope
from thrive_leaderboard.domain.periods import (
    WINDOWS,
    Window,
    parse_period,
    period_of,
    periods_of_day,
    previous_period,
)
from thrive_leaderboard.domain.ranking import Ranked, RankIndex
from thrive_leaderboard.domain.scoring import ZERO, Counters, Metric, Scorer
from thrive_leaderboard.domain.standings import PeriodStandings, StoredBoard, board_key
from thrive_leaderboard.service_layer.directory import Directory

log = logging.getLogger(__name__)

# Reads a board from Postgres: its counters and the snapshot they were read in.
Loader = Callable[[StoredBoard], Awaitable[BoardRead]]
# People summed into team totals between two yields to the event loop: ~11 ms a slice at
# 1M people on this machine (the first also copies the board's key list: ~46 ms).
TEAM_SUM_SLICE = 10_000


class Scope:
    """Board scopes the API accepts."""

    COMPANY = "company"
    TEAM = "team"
    THEME = "theme"
    TEAMS = "teams"  # teams ranked by their members' help, opted-out people included
    ALL = (COMPANY, TEAM, THEME, TEAMS)


class BoardError(ValueError):
    """A query that cannot be answered as asked; the API turns it into a 4xx."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class BoardQuery:
    """Which board: metric, window, scope (+ id) and period (None: the current one)."""

    metric: Metric = Metric.SERVICE
    window: Window = Window.WEEK
    scope: str = Scope.COMPANY
    scope_id: str | None = None
    period: str | None = None

    def __post_init__(self) -> None:
        if self.scope not in Scope.ALL:
            raise BoardError(
                "validation", f"scope must be one of {', '.join(Scope.ALL)}", field="scope"
            )
        if self.scope in (Scope.TEAM, Scope.THEME) and not self.scope_id:
            raise BoardError("validation", f"a {self.scope} board needs scope_id", field="scope_id")
        if self.scope in (Scope.COMPANY, Scope.TEAMS) and self.scope_id:
            raise BoardError(
                "validation", f"a {self.scope} board takes no scope_id", field="scope_id"
            )
        if self.period is not None:
            try:
                parse_period(self.window, self.period)
            except ValueError as exc:
                raise BoardError("validation", str(exc), field="period") from exc

    def board_json(self) -> dict[str, object]:
        """The board as the API and events name it."""
        return {
            "metric": self.metric.value,
            "window": self.window.value,
            "scope": self.scope,
            "scope_id": self.scope_id,
        }


@dataclass(frozen=True, slots=True)
class Page:
    """Some lines of a board and where the next page starts."""

    period: str
    items: list[Ranked]
    total: int
    next_after: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class RankAnswer:
    """A person's place on a board (rank None: not on it this period)."""

    person: str
    period: str
    opted_out: bool = False
    rank: int | None = None
    score: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Riser:
    """A person's gain against the previous period."""

    person: str
    score: int
    previous: int
    gain: int


class BoardDelta(NamedTuple):
    """Committed increments of one person's counters on one stored board."""

    board: StoredBoard
    person: str
    counters: Counters


# What a board being loaded queues meanwhile: (transaction id, person, increments), or
# (0, person, None) for an erasure.
_Queued = tuple[int, str, Counters | None]


@dataclass
class _Loading:
    done: asyncio.Future[PeriodStandings]
    queued: list[_Queued] = field(default_factory=list)


class Leaderboards:
    """Everything the queries read: resident boards, the directory, the scorers."""

    def __init__(
        self,
        *,
        loader: Loader,
        directory: Directory,
        scorers: dict[Metric, Scorer],
        tz: ZoneInfo,
        max_resident_entries: int = 30_000_000,
        rising_ttl: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._loader = loader
        self.directory = directory
        self.scorers = scorers
        self.tz = tz
        self.max_resident_entries = max_resident_entries
        self.rising_ttl = rising_ttl
        self.clock = clock
        self._boards: dict[StoredBoard, PeriodStandings] = {}
        self._used: dict[StoredBoard, float] = {}
        self._loading: dict[StoredBoard, _Loading] = {}
        # Bumped when memory is dropped (`forget_resident`): a load begun before is used
        # for its own callers only, never kept.
        self._generation = 0
        self._rising: dict[tuple[BoardQuery, str, int], tuple[float, list[Riser]]] = {}
        # People erased since start: no committed row may bring them back (see
        # apply_committed). Postgres keeps the durable, keyed tombstones.
        self._erased: set[str] = set()
        # Called with (board, person) when the person's place on a board may have changed:
        # after every committed row, and when they opt back in.
        self.listeners: list[Callable[[StoredBoard, str], None]] = []
        # Called with (board, person) when the person left the board's rankings without a
        # commit (opt-out, erasure): the board's visible lines changed, and nothing more may
        # be said about that person.
        self.departure_listeners: list[Callable[[StoredBoard, str], None]] = []

    # ---- residency ------------------------------------------------------------------

    def current_period(self, window: Window) -> str:
        """The period `window` is in now, in the company's timezone."""
        return period_of(window, self.clock(), self.tz)

    def resident(self, key: StoredBoard) -> PeriodStandings | None:
        """The board if it is in memory."""
        return self._boards.get(key)

    def resident_boards(self) -> list[PeriodStandings]:
        """Every board in memory."""
        return list(self._boards.values())

    def resident_entries(self) -> int:
        """People-on-board entries held in memory."""
        return sum(len(b) for b in self._boards.values())

    def _new_board(self, key: StoredBoard, read: BoardRead) -> PeriodStandings:
        return PeriodStandings(
            key,
            scorers=self.scorers,
            hidden=self.directory.is_opted_out,
            team_of=self.directory.team_of if key.scope == COMPANY else None,
            counters=read.counters,
            snapshot=read.snapshot,
        )

    async def board(self, key: StoredBoard) -> PeriodStandings:
        """The board, loading it from Postgres if it is not in memory yet."""
        self._used[key] = time.monotonic()
        found = self._boards.get(key)
        if found is not None:
            return found
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading.done)
        loading = _Loading(asyncio.get_running_loop().create_future())
        self._loading[key] = loading
        generation = self._generation
        try:
            started = time.perf_counter()
            board = self._new_board(key, await self._loader(key))
            shows = board.snapshot.shows if board.snapshot is not None else None
            for xid, person, c in loading.queued:  # committed while the board was read
                if c is None:
                    board.remove(person)
                elif shows is None or not shows(xid):  # not already in what was read
                    board.add(person, *c)
            if generation == self._generation:
                self._boards[key] = board
            # A board is millions of long-lived, acyclic objects: take them out of the cycle
            # collector's sight, or every full collection walks them all (a pause of a
            # second at 1M people, which is the query p99). Refcounting still frees them.
            gc.freeze()
            log.info(
                "board loaded",
                extra={
                    "board": f"{key.scope}/{key.window.value}/{key.period}",
                    "entries": len(board),
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
            loading.done.set_result(board)
        except BaseException as exc:
            loading.done.set_exception(exc)
            loading.done.exception()  # retrieved: waiters get it, nobody logs it twice
            raise
        finally:
            del self._loading[key]
        self._evict()
        return board

    def forget_resident(self) -> None:
        """Drop every board from memory: the next query of each reads it from Postgres.

        For when memory may have missed a committed batch (a mirror that failed half way):
        boards take increments, so only a fresh read makes them exact again. Boards being
        loaded now serve their waiting callers but are not kept either.
        """
        self._generation += 1
        self._boards.clear()
        self._used.clear()
        self._rising.clear()

    def _pinned(self) -> set[StoredBoard]:
        return {StoredBoard(COMPANY, w, self.current_period(w)) for w in WINDOWS}

    def _evict(self) -> None:
        total = self.resident_entries()
        if total <= self.max_resident_entries:
            return
        pinned = self._pinned()
        for key in sorted(self._boards, key=lambda k: self._used.get(k, 0.0)):
            if total <= self.max_resident_entries:
                break
            if key in pinned:
                continue
            total -= len(self._boards.pop(key))
            self._used.pop(key, None)
            log.info("board evicted", extra={"board": f"{key.scope}/{key.window}/{key.period}"})

    async def preload(self, metrics: Iterable[Metric] = (Metric.SERVICE,)) -> None:
        """Load the current company boards and build the given metrics' indexes."""
        for window in WINDOWS:
            board = await self.board(StoredBoard(COMPANY, window, self.current_period(window)))
            for metric in metrics:
                board.index(metric)

    # ---- keeping in step with commits --------------------------------------------------

    def apply_days(self, xid: int, rows: Sequence[tuple[DayKey, DayAgg]]) -> None:
        """Add one committed transaction's day-row increments to the boards they count on.

        The apply hot path. A day row counts towards one board per window (the periods
        holding its day); each resident board takes it unless its read already showed the
        transaction (a board loaded while the batch waited to be mirrored), a board being
        loaded queues it, and rows of people erased since start are ignored (a commit that
        landed just before the erasure but reached memory after it). Listeners hear of
        every (board, person) taken. Increments add up in any order, so batches of
        concurrent consumer members may reach memory in either order.
        """
        erased = self._erased
        listeners = self.listeners
        hidden = self.directory.is_opted_out
        targets_of: dict[tuple[str, int], list[tuple[StoredBoard, PeriodStandings | None, int]]]
        targets_of = {}
        for (scope, day, person), a in rows:
            if erased and person in erased:
                continue
            targets = targets_of.get((scope, day))
            if targets is None:
                targets = targets_of[(scope, day)] = self._targets(xid, scope, day)
            n, nd, d, x, m = a.n, a.nd, a.d, a.x, a.m
            out = hidden(person)
            for key, board, i in targets:
                if board is not None:
                    board.add(person, n, nd, d[i], x, m, out)
                else:
                    loading = self._loading.get(key)
                    if loading is not None:
                        loading.queued.append((xid, person, Counters(n, nd, d[i], x, m)))
                for listener in listeners:
                    listener(key, person)

    def _targets(
        self, xid: int, scope: str, day: int
    ) -> list[tuple[StoredBoard, PeriodStandings | None, int]]:
        """(board key, resident board or None, window index) for a day's boards."""
        out = []
        for i, (window, period) in enumerate(periods_of_day(day)):
            key = board_key(scope, window, period)
            board = self._boards.get(key)
            if board is not None and board.snapshot is not None and board.snapshot.shows(xid):
                continue  # the board was read after this transaction committed
            out.append((key, board, i))
        return out

    def apply_deltas(self, xid: int, deltas: Iterable[BoardDelta]) -> None:
        """Add committed increments given per board (as `apply_days` does for day rows)."""
        for key, person, c in deltas:
            if person in self._erased:
                continue
            board = self._boards.get(key)
            if board is not None:
                if board.snapshot is not None and board.snapshot.shows(xid):
                    continue
                board.add(person, *c)
            elif (loading := self._loading.get(key)) is not None:
                loading.queued.append((xid, person, c))
            for listener in self.listeners:
                listener(key, person)

    def erase(self, person: str) -> None:
        """Forget the person on every board in memory (departure listeners are told)."""
        self._erased.add(person)
        departed = []
        for key, board in self._boards.items():
            if person in board.counters:
                departed.append(key)
            board.remove(person)
        for key, loading in self._loading.items():
            loading.queued.append((0, person, None))
            departed.append(key)
        self.directory.remove(person)
        self._rising.clear()
        self._tell(self.departure_listeners, departed, person)

    def set_opted_out(self, person: str, opted_out: bool) -> None:
        """Hide or show the person on every board in memory (listeners are told).

        Hiding someone changes the lines a board shows as much as a commit does, so live
        updates must hear of it: an opt-out is a departure, an opt-in a change.
        """
        if not self.directory.set_opted_out(person, opted_out):
            return
        changed = []
        for key, board in self._boards.items():
            if person in board.counters:
                changed.append(key)
            if opted_out:
                board.hide(person)
            else:
                board.show(person)
        self._rising.clear()
        self._tell(self.departure_listeners if opted_out else self.listeners, changed, person)

    @staticmethod
    def _tell(
        listeners: list[Callable[[StoredBoard, str], None]],
        keys: list[StoredBoard],
        person: str,
    ) -> None:
        for key in keys:
            for listener in listeners:
                listener(key, person)

    def set_team(self, person: str, team: str | None) -> None:
        """Move the person's counters between team totals."""
        old = self.directory.team_of(person)
        if old == team:
            return
        for board in self._boards.values():
            board.move_team(person, old, team)  # totals not summed yet sum the new team later
        self.directory.set_team(person, team)

    # ---- queries --------------------------------------------------------------------

    def _stored(self, q: BoardQuery, period: str) -> StoredBoard:
        scope = theme_scope(q.scope_id or "") if q.scope == Scope.THEME else COMPANY
        return StoredBoard(scope, q.window, period)

    def _period(self, q: BoardQuery) -> str:
        return q.period or self.current_period(q.window)

    async def _index(self, q: BoardQuery, period: str) -> RankIndex:
        board = await self.board(self._stored(q, period))
        if q.scope == Scope.TEAM:
            score = self.scorers[q.metric]
            hidden = self.directory.is_opted_out
            scores = {}
            for person in list(self.directory.members(q.scope_id or "")):
                c = board.counters.get(person)
                if c is not None and not hidden(person):
                    s = score(c)
                    if s > 0:
                        scores[person] = s
            return RankIndex(scores)
        if q.scope == Scope.TEAMS:
            # The first `teams` query of a board sums its team totals a slice of people at a
            # time, so other requests and commits run in between (one pass over 1M people
            # blocks the event loop 1.1 s on an idle machine, 2.5 s measured under load).
            while not board.sum_team_slice(TEAM_SUM_SLICE):  # noqa: ASYNC110 (a yield, no wait)
                await asyncio.sleep(0)
            score = self.scorers[q.metric]
            totals = board.team_totals or {}
            return RankIndex({t: s for t, c in totals.items() if (s := score(Counters(*c))) > 0})
        return board.index(q.metric)

    def resident_index(self, q: BoardQuery, period: str) -> RankIndex | None:
        """The board's index if it is answerable without awaiting (company/theme, resident).

        For the HTTP fast path: team boards are computed per query and absent boards need a
        load, so those return None and take the normal (async) path.
        """
        if q.scope == Scope.TEAM or q.scope == Scope.TEAMS:
            return None
        key = self._stored(q, period)
        board = self._boards.get(key)
        if board is None:
            return None
        self._used[key] = time.monotonic()
        return board.index(q.metric)

    @staticmethod
    def page_of(idx: RankIndex, period: str, *, first: int, after: tuple[int, str] | None) -> Page:
        """`first` lines of `idx` from the start or after a cursor, and the next cursor."""
        items = idx.after(after[0], after[1], first + 1) if after else idx.top(first + 1)
        more = len(items) > first
        items = items[:first]
        nxt = (items[-1].score, items[-1].person) if more and items else None
        return Page(period, items, len(idx), nxt)

    @staticmethod
    def rank_in(idx: RankIndex, person: str, period: str) -> RankAnswer:
        """The person's rank on `idx` (opt-outs are checked by the caller)."""
        line = idx.rank(person)
        if line is None:
            return RankAnswer(person, period, total=len(idx))
        return RankAnswer(person, period, rank=line.rank, score=line.score, total=len(idx))

    def check_person_board(self, q: BoardQuery) -> None:
        """Refuse person queries on the teams board."""
        self._person_board(q)

    def period_for(self, q: BoardQuery) -> str:
        """The asked period, or the current one."""
        return self._period(q)

    async def top(
        self, q: BoardQuery, *, first: int = 10, after: tuple[int, str] | None = None
    ) -> Page:
        """The board's first lines (or the lines after a cursor)."""
        period = self._period(q)
        idx = await self._index(q, period)
        return self.page_of(idx, period, first=first, after=after)

    async def rank(self, q: BoardQuery, person: str) -> RankAnswer:
        """The person's rank and score, or that they opted out."""
        self._person_board(q)
        period = self._period(q)
        if self.directory.is_opted_out(person):
            return RankAnswer(person, period, opted_out=True)
        idx = await self._index(q, period)
        return self.rank_in(idx, person, period)

    async def neighbourhood(
        self, q: BoardQuery, person: str, *, above: int = 2, below: int = 2
    ) -> tuple[RankAnswer, list[Ranked]]:
        """The person's line with `above` lines before it and `below` after it."""
        self._person_board(q)
        period = self._period(q)
        if self.directory.is_opted_out(person):
            return RankAnswer(person, period, opted_out=True), []
        idx = await self._index(q, period)
        return self.neighbourhood_in(idx, person, period, above=above, below=below)

    @staticmethod
    def neighbourhood_in(
        idx: RankIndex, person: str, period: str, *, above: int, below: int
    ) -> tuple[RankAnswer, list[Ranked]]:
        """The person's answer and lines around them on `idx` (opt-outs checked by the caller).

        The person's own rank comes out of the slice: one position lookup fewer than
        asking for the rank separately (each is a few cache-missing bisects at 1M people).
        """
        pos = idx.position(person)
        if pos is None:
            return RankAnswer(person, period, total=len(idx)), []
        lines = idx.slice(pos - above, pos + below + 1)
        me = lines[pos - max(0, pos - above)]
        answer = RankAnswer(person, period, rank=me.rank, score=me.score, total=len(idx))
        return answer, lines

    async def rising(self, q: BoardQuery, *, first: int = 10) -> tuple[str, list[Riser]]:
        """Who gained most on the previous period (cached for a few seconds)."""
        if q.window is Window.ALL_TIME:
            raise BoardError(
                "validation", "all_time has no previous period to rise from", field="window"
            )
        period = self._period(q)
        cache_key = (q, period, first)
        hit = self._rising.get(cache_key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.rising_ttl:
            return period, hit[1]
        prev = previous_period(q.window, period)
        assert prev is not None
        cur_idx = await self._index(q, period)
        prev_idx = await self._index(q, prev)
        gains = (
            Riser(p, s, prev_s, s - prev_s)
            for p, s in cur_idx.items()
            if s > (prev_s := prev_idx.score(p) or 0)
        )
        risers = heapq.nsmallest(first, gains, key=lambda r: (-r.gain, r.person))
        self._rising[cache_key] = (now, risers)
        return period, risers

    def _person_board(self, q: BoardQuery) -> None:
        if q.scope == Scope.TEAMS:
            raise BoardError("validation", "the teams board ranks teams, not people", field="scope")

    def counters_of(self, key: StoredBoard, person: str) -> Counters:
        """The person's counters on a resident board (zeros if not resident)."""
        board = self._boards.get(key)
        return board.get(person) if board is not None else ZERO
