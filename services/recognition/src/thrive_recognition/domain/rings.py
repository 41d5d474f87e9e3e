"""Reciprocal rings: people thanking each other in a small cycle, again and again.

Such thanks are never blocked; they are marked `discounted` so leaderboards can weigh
them less. A single exchange (you helped me, I helped you) is normal and not a ring.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RingPolicy:
    """What counts as a ring: cycles of at most `max_cycle` people within `window`."""

    window: timedelta = timedelta(days=30)
    max_cycle: int = 3
    # The new thanks' pair must have happened this many times in the window (itself included).
    min_repeats: int = 2

    @property
    def search_depth(self) -> int:
        """How many edges the path back from the helper to the giver may have."""
        return max(self.max_cycle - 1, 1)


def closes_cycle(*, giver: str, helper: str, edges: Mapping[str, Set[str]], max_depth: int) -> bool:
    """Whether a path helper -> ... -> giver of at most `max_depth` thanks exists in `edges`."""
    frontier, seen = {helper}, {helper}
    for _ in range(max_depth):
        nxt: set[str] = set()
        for node in frontier:
            for target in edges.get(node, ()):
                if target == giver:
                    return True
                if target not in seen:
                    seen.add(target)
                    nxt.add(target)
        if not nxt:
            return False
        frontier = nxt
    return False


def is_discounted(
    *,
    giver: str,
    helper: str,
    pair_count: int,
    edges: Mapping[str, Set[str]],
    policy: RingPolicy,
) -> bool:
    """A thanks is discounted when its pair repeats and it closes a small cycle."""
    if pair_count < policy.min_repeats:
        return False
    return closes_cycle(giver=giver, helper=helper, edges=edges, max_depth=policy.search_depth)
