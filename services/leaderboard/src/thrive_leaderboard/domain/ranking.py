"""An in-memory rank index: O(log n) rank, top N and neighbourhood for one board.

Order is score descending, then person id ascending. Ranks are competition ranks
("1224"): people with equal scores share a rank, and the next rank skips. Listing order
within a tie is by person id, so the same state always lists the same way, whatever
order the events arrived in (a rebuild lists exactly like the live service).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sortedcontainers import SortedList

# Sorts before every person id: (-score, _LOW) is the first key with that score.
_LOW = ""


@dataclass(frozen=True, slots=True)
class Ranked:
    """One line of a board."""

    person: str
    rank: int
    score: int


class RankIndex:
    """People ordered by (score desc, person asc) with their scores."""

    __slots__ = ("__weakref__", "_order", "_scores", "version")

    def __init__(self, items: dict[str, int] | None = None) -> None:
        self._scores: dict[str, int] = dict(items or {})
        # Built from a sorted list in one go: far faster than a million adds on start.
        self._order: SortedList = SortedList(
            sorted((-score, person) for person, score in self._scores.items())
        )
        # Bumped on every change: answers cached from this index are valid while it holds.
        self.version = 0

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, person: object) -> bool:
        return person in self._scores

    def score(self, person: str) -> int | None:
        """The person's score, or None if they are not on this board."""
        return self._scores.get(person)

    def set(self, person: str, score: int) -> None:
        """Put `person` on the board with `score` (replacing any previous score)."""
        old = self._scores.get(person)
        if old == score:
            return
        if old is not None:
            self._order.remove((-old, person))
        self._scores[person] = score
        self._order.add((-score, person))
        self.version += 1

    def discard(self, person: str) -> None:
        """Take `person` off the board, if there."""
        old = self._scores.pop(person, None)
        if old is not None:
            self._order.remove((-old, person))
            self.version += 1

    def rank_of_score(self, score: int) -> int:
        """The competition rank a score would have: 1 + how many score strictly more."""
        return int(self._order.bisect_left((-score, _LOW))) + 1

    def rank(self, person: str) -> Ranked | None:
        """The person's rank and score, or None if they are not on this board."""
        score = self._scores.get(person)
        if score is None:
            return None
        return Ranked(person, self.rank_of_score(score), score)

    def position(self, person: str) -> int | None:
        """0-based place of `person` in listing order."""
        score = self._scores.get(person)
        if score is None:
            return None
        return int(self._order.index((-score, person)))

    def _line(self, key: tuple[int, str]) -> Ranked:
        neg, person = key
        return Ranked(person, self.rank_of_score(-neg), -neg)

    def slice(self, start: int, stop: int) -> list[Ranked]:
        """Lines `start`..`stop` (0-based, exclusive) in listing order."""
        start = max(0, start)
        keys = self._order.islice(start, max(start, stop))
        out: list[Ranked] = []
        prev_score: int | None = None
        prev_rank = 0
        for i, (neg, person) in enumerate(keys, start=start):
            score = -neg
            if score != prev_score:
                # Rank changes only when the score does; ask the index just once per score.
                prev_rank = i + 1 if prev_score is not None else self.rank_of_score(score)
                prev_score = score
            out.append(Ranked(person, prev_rank, score))
        return out

    def top(self, n: int) -> list[Ranked]:
        """The first `n` lines."""
        return self.slice(0, n)

    def after(self, score: int, person: str, n: int) -> list[Ranked]:
        """The `n` lines listed after the line (score, person): for cursor pagination."""
        start = int(self._order.bisect_right((-score, person)))
        return self.slice(start, start + n)

    def around(self, person: str, *, above: int = 2, below: int = 2) -> list[Ranked]:
        """`above` lines before the person, their own line, `below` lines after."""
        pos = self.position(person)
        if pos is None:
            return []
        return self.slice(pos - above, pos + below + 1)

    def items(self) -> Iterator[tuple[str, int]]:
        """(person, score) pairs, in no particular order."""
        return iter(self._scores.items())
