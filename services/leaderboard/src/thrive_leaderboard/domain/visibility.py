"""Which committed transactions a Postgres snapshot already shows.

Memory adds each committed batch's increments to the boards it holds. A board read from
Postgres already holds the batches that committed before its read's snapshot; a batch
reaching memory after the read (queued while the board loaded, or still in the mirror's
FIFO) must be added only if the snapshot did not show it. Each apply transaction records
its id (`pg_current_xact_id()`) and each board its read's `pg_current_snapshot()`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A `pg_snapshot`: ids below `xmin` are settled, `xmax` and above had not started."""

    xmin: int
    xmax: int
    in_progress: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """From Postgres's text form `xmin:xmax:xip,xip,...`."""
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x))

    def shows(self, xid: int) -> bool:
        """Whether a transaction that has committed by now is visible in this snapshot.

        For a committed transaction: it is visible unless it had not started (`xid >=
        xmax`) or was still running (`xid in in_progress`) when the snapshot was taken.
        """
        if xid < self.xmin:
            return True
        return xid < self.xmax and xid not in self.in_progress
