"""An in-memory rank index: rank, top N and neighbourhood for one board.

Order is score descending, then person id ascending. Ranks are competition ranks
("1224"): people with equal scores share a rank, and the next rank skips. Listing order
within a tie is by person id, so the same state always lists the same way, whatever
order the events arrived in (a rebuild lists exactly like the live service).

Structure. A competition rank is 1 + how many people score strictly more, so the index
counts people per integer score (centi-points) in an array of counts per slot, and blocks
of 64 slots in a Fenwick tree (binary indexed tree): a rank is one prefix sum over the
blocks, a few dozen integer operations on a compact array, plus one C-level sum of the
counts in the score's own block. A score change moves one count between two slots, and
between two blocks only if it crosses one (the two update paths then stop where they
meet, which for the small step of one event is after a node or two; a tree over single
slots walked ~9 nodes per update, ~2 µs of the ~3.5 µs an update took at a million
people). People are kept per score in a set (`_at`). Listing order inside a score's bucket
(by person id) is only needed to list lines, so a bucket is sorted the first time it is
listed and that order is kept in step from then on (a plain sorted list up to 2,048
people, a SortedList beyond); buckets nobody listed cost a set add and discard per update.
Top N, cursor pages and neighbourhoods find the bucket holding a listing position with one
descent of the block tree and a running sum (in C) of the counts in the block found.

Before, one `SortedList` of (-score, person) held everyone: every update was a remove and
an add whose ~40 tuple comparisons each missed the cache on a multi-GB heap (~17 µs at a
million people, five boards per event).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import accumulate
from typing import TypeAlias

from sortedcontainers import SortedList

# At most 2**_MAX_BITS slots (4-byte counts: 16 MiB, the block tree 1/64 of that). Scores
# beyond are kept exactly too: slots then count by score >> shift, and ranks add the few
# exact buckets that share the tie-breaking slot (at most 2**shift - 1 dict lookups).
_MAX_BITS = 22
_MIN_SIZE = 1024
# The Fenwick tree counts blocks of this many slots (2**_BLOCK_BITS); a rank adds up to that
# many slot counts of its own block (one C-level `sum` of an array slice).
_BLOCK_BITS = 6
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

    __slots__ = (
        "__weakref__",
        "_at",
        "_count",
        "_order",
        "_scores",
        "_shift",
        "_size",
        "_tree",
        "version",
    )

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
        self._count = array("i")
        self._tree = array("i")
        self._rebuild()
        # Bumped on every change: answers cached from this index are valid while it holds.
        self.version = 0

    # ---- the counts per slot and the Fenwick tree over blocks of slots ------------------
    #
    # `_count[k]` is how many people score in slot k (`score >> _shift`); `_tree` is a
    # Fenwick tree over blocks of 2**_BLOCK_BITS slots (1-based: node b + 1 is block b).
    # A score change moves one count between two slots and, only if they lie in different
    # blocks, along the block tree's two update paths until they meet: a small step (one
    # event's) walks a few nodes instead of the ~9 of a tree over single slots.

    def _rebuild(self) -> None:
        size, shift = self._size, self._shift
        count = self._count = array("i", bytes(4 * size))
        for score, bucket in self._at.items():
            count[score >> shift] += len(bucket)
        blocks = size >> _BLOCK_BITS
        tree = self._tree = array("i", bytes(4 * (blocks + 1)))
        width = 1 << _BLOCK_BITS
        for b in range(blocks):
            tree[b + 1] += sum(count[b * width : (b + 1) * width])
        for k in range(1, blocks + 1):  # linear-time construction: push each node up once
            parent = k + (k & -k)
            if parent <= blocks:
                tree[parent] += tree[k]

    def _fit(self, score: int) -> None:
        """Make room in the tree for `score` (call before the person is counted)."""
        while (score >> self._shift) + 1 > self._size:
            if self._size < 1 << _MAX_BITS:
                # Doubling: the new slots count nothing yet, except the root of the whole.
                size = self._size
                blocks = size >> _BLOCK_BITS
                self._count.extend(array("i", bytes(4 * size)))
                self._tree.extend(array("i", bytes(4 * blocks)))
                self._size = 2 * size
                self._tree[2 * blocks] = len(self._scores)
            else:
                self._shift += 1
                self._rebuild()

    def _above(self, score: int) -> int:
        """How many people score strictly more than `score`."""
        k = score >> self._shift
        if k >= self._size:
            return 0
        tree = self._tree
        i = k >> _BLOCK_BITS
        upto = sum(self._count[i << _BLOCK_BITS : k + 1])  # in k's block, up to slot k
        while i:  # the blocks below k's
            upto += tree[i]
            i &= i - 1
        above = len(self._scores) - upto
        if self._shift:
            at = self._at
            for v in range(score + 1, (k + 1) << self._shift):
                bucket = at.get(v)
                if bucket:
                    above += len(bucket)
        return above

    def _slot_of(self, pos: int) -> tuple[int, int]:
        """The slot holding listing position `pos` (1-based) and how many people list after it."""
        total = len(self._scores)
        rem = total - 1 - pos  # position counted from the lowest score
        tree = self._tree
        blocks = self._size >> _BLOCK_BITS
        b = 0
        step = blocks
        while step:
            nb = b + step
            if nb <= blocks and tree[nb] <= rem:
                b = nb
                rem -= tree[nb]
            step >>= 1
        # Block b holds it: the slot is the first whose running count in the block exceeds rem.
        lo = b << _BLOCK_BITS
        running = list(accumulate(self._count[lo : lo + (1 << _BLOCK_BITS)]))
        k = bisect_right(running, rem)
        rem -= running[k - 1] if k else 0
        below = total - 1 - pos - rem
        return lo + k + 1, below

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

    def at_least(self, people: AbstractSet[str], floor: int) -> dict[str, int]:
        """The scores of those of `people` who are on the board with at least `floor`."""
        floor = max(floor, 0)
        n = self._above(floor - 1) if floor else len(self._scores)  # people scoring >= floor
        if n * 8 >= len(people):
            get = self._scores.get  # -1 marks "not on the board": scores are >= 0
            return {p: s for p in people if (s := get(p, -1)) >= floor}
        # Few score that much (a top 100 against thousands of people touched): walk the
        # score buckets from the top, intersecting each with `people` in C.
        out: dict[str, int] = {}
        at = self._at
        pos = 0
        while pos < n:
            score, first = self._bucket_at(pos)
            bucket = at[score]
            for person in people & bucket:
                out[person] = score
            pos = first + len(bucket)
        return out

    def set(self, person: str, score: int) -> None:
        """Put `person` on the board with `score` (replacing any previous score)."""
        # The apply hot path (every committed row, five boards per event): the bucket and
        # ordering upkeep of `_leave` / `_order_add` is inlined, attributes read once.
        scores = self._scores
        old = scores.get(person)
        if old == score:
            return
        if score < 0:
            raise ValueError("scores are non-negative")
        shift = self._shift
        j = score >> shift
        if j >= self._size:
            self._fit(score)
            shift = self._shift
            j = score >> shift
        count = self._count
        count[j] += 1
        at = self._at
        listed = self._order
        if old is None:
            tree = self._tree
            blocks = self._size >> _BLOCK_BITS
            j = (j >> _BLOCK_BITS) + 1
            while j <= blocks:
                tree[j] += 1
                j += j & -j
        else:
            i = old >> shift
            count[i] -= 1
            i = (i >> _BLOCK_BITS) + 1
            j = (j >> _BLOCK_BITS) + 1
            if i != j:
                # One count moves from block i to block j: both update paths, until they
                # meet (at the root, a power of two, at the latest).
                tree = self._tree
                while i != j:
                    if i < j:
                        tree[i] -= 1
                        i += i & -i
                    else:
                        tree[j] += 1
                        j += j & -j
            bucket = at[old]
            bucket.discard(person)
            if not bucket:
                del at[old]
                if listed:
                    listed.pop(old, None)
            elif listed:
                order: Order | None = listed.get(old)
                if order is not None:
                    if isinstance(order, list):
                        del order[bisect_left(order, person)]
                    else:
                        order.remove(person)
        scores[person] = score
        into = at.get(score)
        if into is None:
            at[score] = {person}
        else:
            into.add(person)
            if listed:
                order = listed.get(score)
                if order is not None:
                    if isinstance(order, list):
                        insort(order, person)
                        if len(order) > _SMALL_ORDER:
                            listed[score] = SortedList(order)
                    else:
                        order.add(person)
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
        k = old >> self._shift
        self._count[k] -= 1
        tree, blocks = self._tree, self._size >> _BLOCK_BITS
        i = (k >> _BLOCK_BITS) + 1
        while i <= blocks:
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
