"""An in-memory rank index: rank, top N and neighbourhood for one board.

Order is score descending, then person id ascending. Ranks are competition ranks
("1224"): people with equal scores share a rank, and the next rank skips. Listing order
within a tie is by person id, so the same state always lists the same way, whatever
order the events arrived in (a rebuild lists exactly like the live service).

Structure. A competition rank is 1 + how many people score strictly more, so the index
counts people per score in a Fenwick tree (binary indexed tree) over the integer scores
(centi-points): a rank is one prefix sum, a few dozen integer operations on a compact
array, and a score change moves one count (the two update paths stop where they meet,
which for the small step of one event is after a handful of nodes). People are kept per
score in a set (`_at`). Listing order inside a score's bucket (by person id) is only
needed to list lines, so a bucket is sorted the first time it is listed and that order is
kept in step from then on (a plain sorted list up to 2,048 people, a SortedList beyond);
buckets nobody listed cost a set add and discard per update.
Top N, cursor pages and neighbourhoods find the bucket holding a listing position with one
Fenwick descent.

Before, one `SortedList` of (-score, person) held everyone: every update was a remove and
an add whose ~40 tuple comparisons each missed the cache on a multi-GB heap (~17 µs at a
million people, five boards per event).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from sortedcontainers import SortedList

# The tree has at most 2**_MAX_BITS slots (4-byte counts: 16 MiB). Scores beyond are kept
# exactly too: the tree then counts by score >> shift, and ranks add the few exact buckets
# that share the tie-breaking slot (at most 2**shift - 1 dict lookups).
_MAX_BITS = 22
_MIN_SIZE = 1024
# A listed bucket is a plain sorted list up to this size (bisect and insort run in C, and
# the memmove of an insert stays within a few cache lines' worth of pages), a SortedList
# beyond (no O(n) moves in a tie of 100k people).
_SMALL_ORDER = 2048

Order: TypeAlias = list[str] | SortedList


@dataclass(frozen=True, slots=True)
class Ranked:
    """One line of a board."""

    person: str
    rank: int
    score: int


class RankIndex:
    """People ordered by (score desc, person asc) with their scores (scores are >= 0)."""

    __slots__ = ("__weakref__", "_at", "_order", "_scores", "_shift", "_size", "_tree", "version")

    def __init__(self, items: dict[str, int] | None = None) -> None:
        self._scores: dict[str, int] = dict(items or {})
        self._at: dict[int, set[str]] = {}
        # Buckets listed at least once, sorted by person id and kept in step since.
        self._order: dict[int, Order] = {}
        at = self._at
        for person, score in self._scores.items():
            if score < 0:
                raise ValueError("scores are non-negative")
            bucket = at.get(score)
            if bucket is None:
                at[score] = {person}
            else:
                bucket.add(person)
        top = max(at, default=0)
        self._shift = 0
        self._size = _MIN_SIZE
        while (top >> self._shift) + 1 > self._size:
            if self._size < 1 << _MAX_BITS:
                self._size *= 2
            else:
                self._shift += 1
        self._tree = array("i")
        self._rebuild()
        # Bumped on every change: answers cached from this index are valid while it holds.
        self.version = 0

    # ---- the Fenwick tree over scores ---------------------------------------------------

    def _rebuild(self) -> None:
        self._tree = array("i", bytes(4 * (self._size + 1)))
        tree, size, shift = self._tree, self._size, self._shift
        for score, bucket in self._at.items():
            i = (score >> shift) + 1
            n = len(bucket)
            while i <= size:
                tree[i] += n
                i += i & -i

    def _fit(self, score: int) -> None:
        """Make room in the tree for `score` (call before the person is counted)."""
        while (score >> self._shift) + 1 > self._size:
            if self._size < 1 << _MAX_BITS:
                # Doubling: the new slots count nothing yet, except the root of the whole.
                size = self._size
                self._tree.extend(array("i", bytes(4 * size)))
                self._size = 2 * size
                self._tree[2 * size] = len(self._scores)
            else:
                self._shift += 1
                self._rebuild()

    def _above(self, score: int) -> int:
        """How many people score strictly more than `score`."""
        k = (score >> self._shift) + 1
        if k > self._size:
            return 0
        tree = self._tree
        upto = 0
        i = k
        while i:
            upto += tree[i]
            i &= i - 1
        above = len(self._scores) - upto
        if self._shift:
            at = self._at
            for v in range(score + 1, k << self._shift):
                bucket = at.get(v)
                if bucket:
                    above += len(bucket)
        return above

    def _slot_of(self, pos: int) -> tuple[int, int]:
        """The tree slot holding listing position `pos` and the position where it starts."""
        total = len(self._scores)
        rem = total - 1 - pos  # position counted from the lowest score
        tree = self._tree
        k = 0
        step = self._size
        while step:
            nk = k + step
            if nk <= self._size and tree[nk] <= rem:
                k = nk
                rem -= tree[nk]
            step >>= 1
        # Slot k + 1 holds it; people below that slot: (total - 1 - pos) - rem.
        below = total - 1 - pos - rem
        return k + 1, below

    def _bucket_at(self, pos: int) -> tuple[int, int]:
        """(score, first listing position of that score) for listing position `pos`."""
        slot, below = self._slot_of(pos)
        total = len(self._scores)
        if not self._shift:
            score = slot - 1
            return score, total - below - len(self._at[score])
        # Several exact scores share the slot: walk them from the highest down.
        at = self._at
        lo = (slot - 1) << self._shift
        exact = [(v, len(at[v])) for v in range((slot << self._shift) - 1, lo - 1, -1) if v in at]
        start = total - below - sum(n for _v, n in exact)
        for v, n in exact:
            if pos < start + n:
                return v, start
            start += n
        raise AssertionError("rank index out of step")  # pragma: no cover

    def _ordered(self, score: int) -> Order:
        order = self._order.get(score)
        if order is None:
            bucket = self._at[score]
            order = sorted(bucket) if len(bucket) <= _SMALL_ORDER else SortedList(bucket)
            self._order[score] = order
        return order

    def _order_add(self, score: int, person: str) -> None:
        order = self._order.get(score)
        if order is None:
            return
        if isinstance(order, list):
            insort(order, person)
            if len(order) > _SMALL_ORDER:
                self._order[score] = SortedList(order)
        else:
            order.add(person)

    def _order_remove(self, score: int, person: str) -> None:
        order = self._order.get(score)
        if order is None:
            return
        if isinstance(order, list):
            del order[bisect_left(order, person)]
        else:
            order.remove(person)

    # ---- updates --------------------------------------------------------------------

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
        if score < 0:
            raise ValueError("scores are non-negative")
        shift = self._shift
        if (score >> shift) + 1 > self._size:
            self._fit(score)
            shift = self._shift
        tree, size = self._tree, self._size
        j = (score >> shift) + 1
        if old is None:
            while j <= size:
                tree[j] += 1
                j += j & -j
        else:
            self._leave(old, person)
            # One count moves from slot i to slot j: both update paths, until they meet
            # (at the root `size`, a power of two, at the latest).
            i = (old >> shift) + 1
            while i != j:
                if i < j:
                    tree[i] -= 1
                    i += i & -i
                else:
                    tree[j] += 1
                    j += j & -j
        self._scores[person] = score
        bucket = self._at.get(score)
        if bucket is None:
            self._at[score] = {person}
        else:
            bucket.add(person)
            self._order_add(score, person)
        self.version += 1

    def _leave(self, score: int, person: str) -> None:
        bucket = self._at[score]
        bucket.discard(person)
        if not bucket:
            del self._at[score]
            self._order.pop(score, None)
        else:
            self._order_remove(score, person)

    def discard(self, person: str) -> None:
        """Take `person` off the board, if there."""
        old = self._scores.pop(person, None)
        if old is None:
            return
        self._leave(old, person)
        tree, size = self._tree, self._size
        i = (old >> self._shift) + 1
        while i <= size:
            tree[i] -= 1
            i += i & -i
        self.version += 1

    # ---- reads ----------------------------------------------------------------------

    def rank_of_score(self, score: int) -> int:
        """The competition rank a score would have: 1 + how many score strictly more."""
        return self._above(score) + 1

    def rank(self, person: str) -> Ranked | None:
        """The person's rank and score, or None if they are not on this board."""
        score = self._scores.get(person)
        if score is None:
            return None
        return Ranked(person, self._above(score) + 1, score)

    def position(self, person: str) -> int | None:
        """0-based place of `person` in listing order."""
        score = self._scores.get(person)
        if score is None:
            return None
        order = self._ordered(score)
        if isinstance(order, list):
            return self._above(score) + bisect_left(order, person)
        return self._above(score) + int(order.index(person))

    def slice(self, start: int, stop: int) -> list[Ranked]:
        """Lines `start`..`stop` (0-based, exclusive) in listing order."""
        pos = max(0, start)
        stop = min(stop, len(self._scores))
        out: list[Ranked] = []
        while pos < stop:
            score, first = self._bucket_at(pos)
            order = self._ordered(score)
            rank = first + 1  # everyone in a bucket shares the rank of its first line
            for person in order[pos - first : stop - first]:
                out.append(Ranked(person, rank, score))
            pos = first + len(order)
        return out

    def top(self, n: int) -> list[Ranked]:
        """The first `n` lines."""
        return self.slice(0, n)

    def after(self, score: int, person: str, n: int) -> list[Ranked]:
        """The `n` lines listed after the line (score, person): for cursor pagination."""
        start = self._above(score)
        if score in self._at:
            order = self._ordered(score)
            if isinstance(order, list):
                start += bisect_right(order, person)
            else:
                start += int(order.bisect_right(person))
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
