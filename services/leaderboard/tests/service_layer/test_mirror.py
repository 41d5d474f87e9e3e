import asyncio

from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Metric
from thrive_leaderboard.service_layer.boards import BoardQuery
from thrive_leaderboard.service_layer.mirror import Mirror

from .test_apply import make, thanks


async def test_committed_batches_reach_memory_in_commit_order_through_the_worker():
    applier, lb, _repo = await make()
    counted: list[int] = []
    mirror = Mirror(applier, on_mirrored=counted.append, slice_events=1)
    worker = asyncio.create_task(mirror.run())
    try:
        q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.WEEK)
        first = [thanks(1, "ann", "bob"), thanks(2, "ann", "cat")]
        second = [thanks(3, "ann", "dan")]
        for batch in (first, second):
            await applier.apply_batch(None, batch)
            await mirror.put([(e, None) for e in batch])
        await mirror.drain()
        answer = await lb.rank(q, "ann")
        assert answer.rank == 1
        assert answer.score == 300  # three thanks, in centi-points
        assert sum(counted) == 3
    finally:
        worker.cancel()


async def test_a_batch_that_fails_to_mirror_does_not_stop_the_next():
    applier, lb, _repo = await make()
    mirror = Mirror(applier)
    worker = asyncio.create_task(mirror.run())
    try:
        await mirror.put([("not an envelope", None)])  # after_commit raises on it
        batch = [thanks(1, "ann", "bob")]
        await applier.apply_batch(None, batch)
        await mirror.put([(e, None) for e in batch])
        await mirror.drain()
        q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.WEEK)
        assert (await lb.rank(q, "ann")).score == 100
    finally:
        worker.cancel()
