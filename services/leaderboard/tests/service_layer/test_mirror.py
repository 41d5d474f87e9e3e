import asyncio

from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Metric
from thrive_leaderboard.service_layer.boards import BoardQuery
from thrive_leaderboard.service_layer.mirror import Mirror

from .test_apply import make, thanks


async def test_committed_batches_reach_memory_in_commit_order_through_the_worker():
    applier, lb, _repo = await make()
    counted: list[int] = []
    mirror = Mirror(applier, on_mirrored=counted.append, slice_rows=1)
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
    real = applier.mirror
    failures: list[int] = []

    def flaky(part):
        if not failures:
            failures.append(1)
            raise RuntimeError("boom")
        real(part)

    applier.mirror = flaky
    mirror = Mirror(applier)
    worker = asyncio.create_task(mirror.run())
    try:
        for batch in ([thanks(1, "ann", "bob")], [thanks(2, "ann", "cat")]):
            await applier.apply_batch(None, batch)
            await mirror.put([(e, None) for e in batch])
        await mirror.drain()
        q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.WEEK)
        # The failed batch's increments never reached memory: the boards are read from
        # Postgres again (which holds both commits), so memory is whole again.
        assert failures and (await lb.rank(q, "ann")).score == 200
    finally:
        worker.cancel()


async def test_batches_waiting_for_the_worker_survive_the_cleanup_of_uncommitted_effects(
    monkeypatch,
):
    from thrive_leaderboard.service_layer import apply

    monkeypatch.setattr(apply, "_MAX_PENDING", 1)
    applier, lb, _repo = await make()
    mirror = Mirror(applier)  # no worker yet: committed batches wait in the queue
    first = [thanks(1, "ann", "bob")]
    await applier.apply_batch(None, first)
    await mirror.put([(e, None) for e in first])
    # A batch whose transaction never committed leaves effects nobody will take.
    await applier.apply_batch(None, [thanks(2, "zed", "bob"), thanks(3, "zed", "cat")])
    later = [thanks(4, "bob", "cat")]
    await applier.apply_batch(None, later)
    await mirror.put([(e, None) for e in later])  # over the limit: leftovers are dropped
    worker = asyncio.create_task(mirror.run())
    try:
        await mirror.drain()
        q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.WEEK)
        assert (await lb.rank(q, "ann")).score == 100
        assert (await lb.rank(q, "bob")).score == 100
        assert (await lb.rank(q, "zed")).rank is None
    finally:
        worker.cancel()


async def test_day_rows_are_mirrored_in_slices_and_each_event_counted_once():
    applier, lb, _repo = await make()
    counted: list[int] = []
    mirror = Mirror(applier, on_mirrored=counted.append, slice_rows=3)
    worker = asyncio.create_task(mirror.run())
    try:
        first = [thanks(i, f"p{i % 4}", f"g{i}") for i in range(1, 11)]
        second = [thanks(11, "p1", "g11")]
        for batch in (first, second):
            await applier.apply_batch(None, batch)
            await mirror.put([(e, None) for e in batch])
        await mirror.drain()
        q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.WEEK)
        assert [(await lb.rank(q, f"p{i}")).score for i in range(4)] == [200, 400, 300, 200]
        year = BoardQuery(metric=Metric.PEOPLE_HELPED, window=Window.YEAR)
        assert (await lb.rank(year, "p1")).score == 400
        assert sum(counted) == 11
        assert len(counted) == 3  # 4 day rows (3 a slice), then 1
    finally:
        worker.cancel()
