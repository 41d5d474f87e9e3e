"""Mirroring committed batches into memory off the consumer's critical path.

The consumer hands each committed batch over and goes on with the next one; a worker
mirrors batches in commit order, yielding to the event loop every few hundred rows.
While the next batch waits on Postgres, this process mirrors the previous one: the
Python work of one batch overlaps the database work of the next instead of adding to it.
Each batch carries its transaction's id, so a board loaded meanwhile stays exact (see
Leaderboards.apply_days).
Small slices (300 rows, a few milliseconds) keep both the consumer's next statement and
HTTP queries from waiting long behind a mirror in progress.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from thrive_shared.contracts import Envelope

from thrive_leaderboard.service_layer.apply import Applier, DayRows, Effect

log = logging.getLogger(__name__)

Applied = Sequence[tuple[Envelope[Any], Any]]
Taken = list[list[Effect]]


class Mirror:
    """A FIFO of committed batches and the worker that applies them to memory."""

    def __init__(
        self,
        applier: Applier,
        *,
        on_mirrored: Callable[[int], None] = lambda n: None,
        max_batches: int = 4,
        slice_rows: int = 300,
    ) -> None:
        self.applier = applier
        self.on_mirrored = on_mirrored
        self.slice_rows = slice_rows
        # Bounded: if memory falls behind, the consumer waits rather than piling batches up.
        self._queue: asyncio.Queue[Taken] = asyncio.Queue(maxsize=max_batches)

    async def put(self, applied: Applied) -> None:
        """EventConsumer after_commit hook: queue a committed batch for mirroring."""
        # Detach the batch's effects now, in commit order: the applier's bookkeeping of
        # uncommitted effects never sees (nor drops) a batch that is only waiting here.
        await self._queue.put(self.applier.take(applied))

    async def run(self, _rt: object = None) -> None:
        """Mirror queued batches forever, in commit order."""
        while True:
            applied = await self._queue.get()
            try:
                await self.mirror(applied)
            except Exception:  # memory refresh must never stop the service
                # Memory adds increments: a batch lost half way would leave every board it
                # touched behind Postgres for good. Read the boards again instead.
                log.exception("mirroring a committed batch failed; boards are read again")
                if self.applier.boards is not None:
                    self.applier.boards.forget_resident()
            finally:
                self._queue.task_done()

    async def mirror(self, taken: Taken) -> None:
        """Apply one committed batch's effects to memory, yielding between slices.

        Slices are cut by rows, not events: a run of events hands all its rows over with
        its last event, as one block of day rows (split here where a slice ends). An event
        counts as mirrored once all its effects are.
        """
        step = self.slice_rows
        chunk: list[Effect] = []
        size = 0
        events = 0
        for effects in taken:
            for effect in effects:
                if not isinstance(effect, DayRows):
                    chunk.append(effect)
                    size += 1
                else:
                    start, rows = 0, effect.size()
                    while start < rows:
                        cut = min(rows, start + step - size)
                        whole = start == 0 and cut == rows
                        chunk.append(effect if whole else effect.part(start, cut))
                        size += cut - start
                        start = cut
                        if size >= step and start < rows:  # this event is not whole yet
                            await self._slice(chunk, events)
                            chunk, size, events = [], 0, 0
                if size >= step:
                    await self._slice(chunk, events)
                    chunk, size, events = [], 0, 0
            events += 1
        if chunk or events:
            self.applier.mirror([chunk])
            self.on_mirrored(events)

    async def _slice(self, chunk: list[Effect], events: int) -> None:
        self.applier.mirror([chunk])
        self.on_mirrored(events)
        await asyncio.sleep(0)  # let the consumer send its next statement

    async def drain(self) -> None:
        """Wait until every queued batch is mirrored."""
        await self._queue.join()
