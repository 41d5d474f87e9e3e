"""Live updates: LeaderboardChanged events, coalesced to at most one per board per interval.

Commits and opt-ins mark (board, person) as touched; opt-outs and erasures mark the board
touched and forget the person (a departure: their lines vanish, and no event names them,
not even as a move off the board, unless an opt-in ranks them again). A loop looks at
touched current boards once per interval and publishes, through the outbox, only if the
top N changed or someone moved within the watched ranks. Bursts therefore cost one event
per board per interval.

Whatever changes the lines a board shows must reach `touch` or `depart`: the loop compares
only touched boards with what it last published, so a change it is not told of stays
unpublished until some later commit touches that board (an opted-out or erased person
would stay in every live top N).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from thrive_shared.contracts import Board, LeaderboardChanged, RankMove, Standing

from thrive_leaderboard.domain.contributions import COMPANY, THEME_PREFIX
from thrive_leaderboard.domain.ranking import Ranked, RankIndex
from thrive_leaderboard.domain.scoring import Metric, display
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.service_layer.boards import Leaderboards

log = logging.getLogger(__name__)

Publish = Callable[[list[LeaderboardChanged]], Awaitable[None]]


@dataclass
class _Seen:
    top: list[tuple[str, int]] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)  # last published rank, watched range


class LiveUpdates:
    """Decides which LeaderboardChanged events to publish, and publishes them."""

    def __init__(
        self,
        *,
        boards: Leaderboards,
        publish: Publish,
        top_n: int = 10,
        watch_ranks: int = 100,
        metrics: Iterable[Metric] = (Metric.SERVICE,),
    ) -> None:
        self.boards = boards
        self.publish = publish
        self.top_n = top_n
        self.watch_ranks = watch_ranks
        self.metrics = tuple(metrics)
        # Called per committed row: a defaultdict adds a person without a lookup in Python.
        self._touched: defaultdict[StoredBoard, set[str]] = defaultdict(set)
        self._seen: dict[tuple[StoredBoard, Metric], _Seen] = {}  # as last published
        # What `_seen` becomes once the events a tick is publishing are out.
        self._in_flight: dict[tuple[StoredBoard, Metric], _Seen] = {}
        boards.listeners.append(self.touch)
        boards.departure_listeners.append(self.depart)

    def touch(self, board: StoredBoard, person: str) -> None:
        """Note that a person's standing on a board changed (called after commit)."""
        self._touched[board].add(person)

    def depart(self, board: StoredBoard, person: str) -> None:
        """Note that a person left a board's rankings (opt-out, erasure) without a commit.

        The board is looked at again at the next tick (its top N may have changed), but
        the person is forgotten rather than reported as moved off it: no event names them
        unless an opt-in ranks them again.
        """
        self._touched[board].discard(person)
        for metric in self.metrics:
            for seen_of in (self._seen, self._in_flight):
                seen = seen_of.get((board, metric))
                if seen is not None:
                    seen.ranks.pop(person, None)

    def pending(self) -> int:
        """Boards with changes not yet looked at."""
        return len(self._touched)

    def changes(
        self,
    ) -> tuple[list[LeaderboardChanged], dict[tuple[StoredBoard, Metric], _Seen]]:
        """The events the changes since the last call call for (those changes are forgotten),
        and what will have been published once they are out (`_seen` is left as it is)."""
        touched, self._touched = self._touched, defaultdict(set)
        out: list[LeaderboardChanged] = []
        after: dict[tuple[StoredBoard, Metric], _Seen] = {}
        for key, people in touched.items():
            if key.period != self.boards.current_period(key.window):
                continue  # late events for past periods do not make live news
            board = self.boards.resident(key)
            if board is None:
                continue
            for metric in self.metrics:
                event, after[key, metric] = self._diff(key, metric, board.index(metric), people)
                if event is not None:
                    out.append(event)
        return out, after

    def _diff(
        self, key: StoredBoard, metric: Metric, idx: RankIndex, people: set[str]
    ) -> tuple[LeaderboardChanged | None, _Seen]:
        published = self._seen.get((key, metric))
        # A copy: what was published changes only once these events are out.
        seen = _Seen(list(published.top), dict(published.ranks)) if published else _Seen()
        top: list[Ranked] = idx.top(self.top_n)
        top_pairs = [(r.person, r.score) for r in top]
        watched = idx.slice(self.watch_ranks - 1, self.watch_ranks)
        floor = watched[0].score if watched else 1  # lowest score still within watched ranks
        moved: list[RankMove] = []
        new_ranks: dict[str, int] = {}
        # Only people now within the watched scores, or last published there, can make a
        # move: thousands of people are touched per board and second, almost all far below.
        within = idx.at_least(people, floor)
        for person in sorted(within.keys() | people.intersection(seen.ranks)):
            score = within.get(person)
            old = seen.ranks.get(person)
            if score is not None:
                rank = idx.rank_of_score(score)
                new_ranks[person] = rank
                if old != rank:
                    moved.append(RankMove(person=person, old_rank=old, new_rank=rank))
            elif old is not None:
                moved.append(RankMove(person=person, old_rank=old, new_rank=None))
        for line in top:
            new_ranks.setdefault(line.person, line.rank)
        changed_top = top_pairs != seen.top
        seen.ranks.update(new_ranks)
        for person in [p for p in seen.ranks if p in people and p not in new_ranks]:
            del seen.ranks[person]
        if len(seen.ranks) > 4 * self.watch_ranks:  # bounded: keep the best-ranked
            keep = sorted(seen.ranks.items(), key=lambda kv: kv[1])[: 2 * self.watch_ranks]
            seen.ranks = dict(keep)
        seen.top = top_pairs
        if not changed_top and not moved:
            return None, seen
        scope, scope_id = (
            ("theme", key.scope[len(THEME_PREFIX) :])
            if key.scope.startswith(THEME_PREFIX)
            else (COMPANY, None)
        )
        return LeaderboardChanged(
            board=Board(
                metric=metric.value, window=key.window.value, scope=scope, scope_id=scope_id
            ),
            period=key.period,
            top=[Standing(person=r.person, rank=r.rank, score=display(r.score)) for r in top],
            moved=moved[: self.watch_ranks],
        ), seen

    async def tick(self) -> int:
        """Publish what changed since the last tick; return how many events went out.

        If publishing fails, nothing counts as published: the boards are looked at again
        at the next tick, against what did go out, so no change is lost (the error is
        raised; the runtime restarts the loop).
        """
        touched = self._touched
        events, self._in_flight = self.changes()
        try:
            if events:
                await self.publish(events)
        except BaseException:
            for board, people in touched.items():
                self._touched[board].update(people)
            raise
        else:
            self._seen.update(self._in_flight)
        finally:
            self._in_flight = {}
        return len(events)
