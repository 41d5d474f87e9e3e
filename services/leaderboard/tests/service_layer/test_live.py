from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from thrive_leaderboard.adapters.repository import BoardRead
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters, Metric, Weights, scorers
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.domain.visibility import Snapshot
from thrive_leaderboard.service_layer.boards import BoardDelta, Leaderboards
from thrive_leaderboard.service_layer.directory import Directory
from thrive_leaderboard.service_layer.live import LiveUpdates

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
WEEK = StoredBoard("company", Window.WEEK, "2026-W10")
OLD_WEEK = StoredBoard("company", Window.WEEK, "2026-W01")


def commit(lb, *rows):
    """Commit (board, person, counters) rows: memory ends at those counters."""
    deltas = [BoardDelta(b, p, c.minus(lb.counters_of(b, p))) for b, p, c in rows]
    lb.apply_deltas(1, deltas)


async def setup(boards):
    async def load(key):
        return BoardRead(dict(boards.get(key, {})), Snapshot(1, 1, frozenset()))

    lb = Leaderboards(
        loader=load,
        directory=Directory(),
        scorers=scorers(Weights()),
        tz=ZoneInfo("UTC"),
        clock=lambda: NOW,
    )
    published = []

    async def publish(events):
        published.append(events)

    live = LiveUpdates(boards=lb, publish=publish, top_n=3, metrics=[Metric.THANKS_RECEIVED])
    await lb.board(WEEK)
    await lb.board(OLD_WEEK)
    return lb, live, published


async def test_a_burst_makes_one_event_per_board_per_tick():
    lb, live, published = await setup({WEEK: {}})
    for i in range(1, 200):
        commit(lb, (WEEK, f"p{i % 7}", Counters(n=i)))
    assert await live.tick() == 1
    (event,) = published[0]
    assert event.board.metric == "thanks_received"
    assert event.board.window == "week"
    assert event.period == "2026-W10"
    assert [s.person for s in event.top] == ["p3", "p2", "p1"]
    assert {m.person for m in event.moved} == {f"p{i}" for i in range(7)}
    assert await live.tick() == 0  # nothing new: nothing published


async def test_only_real_moves_are_published():
    lb, live, published = await setup({WEEK: {"a": Counters(n=5), "b": Counters(n=3)}})
    commit(lb, (WEEK, "a", Counters(n=5)))
    await live.tick()
    published.clear()
    # b gains but stays second: the top changed (score), so one event, b did not move.
    commit(lb, (WEEK, "b", Counters(n=4)))
    assert await live.tick() == 1
    assert published[0][0].moved == []
    # b overtakes a: both moved.
    commit(lb, (WEEK, "b", Counters(n=9)))
    await live.tick()
    moves = {(m.person, m.old_rank, m.new_rank) for m in published[-1][0].moved}
    assert ("b", 2, 1) in moves


async def test_on_a_large_board_only_touched_people_moving_within_the_watched_ranks_are_named():
    # Far more people touched than watched ranks (as on a live million-person board): the
    # ones who entered or left the watched ranks are named; untouched people pushed down
    # a rank, and touched people far below, are not.
    start = {f"q{i:03d}": Counters(n=1000 - i) for i in range(200)}
    lb, live, published = await setup({WEEK: start})
    live.watch_ranks = 10
    commit(lb, *((WEEK, p, c) for p, c in start.items()))
    assert await live.tick() == 1
    first = published[-1][0]
    assert [(m.person, m.old_rank, m.new_rank) for m in first.moved] == [
        (f"q{i:03d}", None, i + 1) for i in range(10)
    ]
    rows = [(WEEK, f"q{i:03d}", Counters(n=1001 - i)) for i in range(50, 200)]
    rows += [
        (WEEK, "q150", Counters(n=2000)),  # into first place
        (WEEK, "q005", Counters(n=1000 - 5)),  # touched, but not moved yet
        (WEEK, "q005", Counters(n=1001 - 5)),  # (a later commit of the row)
    ]
    for row in rows:
        commit(lb, row)
    commit(lb, (WEEK, "q009", Counters(n=2, m=1000)))  # out, by score
    assert await live.tick() == 1
    (event,) = published[-1]
    assert [(m.person, m.old_rank, m.new_rank) for m in event.moved] == [
        ("q009", 10, None),
        ("q150", None, 1),
    ]
    assert [s.person for s in event.top] == ["q150", "q000", "q001"]


async def test_late_events_for_past_periods_publish_nothing():
    lb, live, published = await setup({})
    commit(lb, (OLD_WEEK, "a", Counters(n=5)))
    assert await live.tick() == 0
    assert published == []


def _tops(published) -> list[list[str]]:
    return [[s.person for s in e.top] for events in published for e in events]


def _named(published) -> set[str]:
    return {m.person for events in published for e in events for m in e.moved} | {
        s.person for events in published for e in events for s in e.top
    }


async def test_an_opt_out_publishes_the_top_without_them_and_an_opt_in_with_them():
    lb, live, published = await setup({WEEK: {}})
    commit(lb, (WEEK, "ann", Counters(n=5)), (WEEK, "bob", Counters(n=3)))
    assert await live.tick() == 1
    published.clear()
    # No commit at all: hiding ann alone changes what the board shows.
    lb.set_opted_out("ann", True)
    assert await live.tick() == 1
    (event,) = published[-1]
    assert [(s.person, s.rank) for s in event.top] == [("bob", 1)]
    assert "ann" not in {m.person for m in event.moved}, "an opt-out is not announced as a move"
    lb.set_opted_out("ann", False)
    assert await live.tick() == 1
    (event,) = published[-1]
    assert [(s.person, s.rank) for s in event.top] == [("ann", 1), ("bob", 2)]
    assert await live.tick() == 0


async def test_an_erasure_publishes_the_top_without_them_and_never_names_them_again():
    lb, live, published = await setup({WEEK: {}})
    commit(lb, (WEEK, "ann", Counters(n=5)), (WEEK, "bob", Counters(n=3)))
    await live.tick()
    published.clear()
    lb.erase("bob")
    assert await live.tick() == 1
    assert _tops(published) == [["ann"]]
    assert "bob" not in _named(published)


async def test_a_change_undone_before_the_tick_then_redone_by_an_opt_in_is_published():
    # The interleaving that made the stack test flaky under load: commits for ann and bob,
    # then ann opts out and bob is erased before the first tick (nothing visible to
    # publish then), then ann opts back in. Her return must be published.
    lb, live, published = await setup({WEEK: {}})
    commit(lb, (WEEK, "ann", Counters(n=5)), (WEEK, "bob", Counters(n=3)))
    lb.set_opted_out("ann", True)
    lb.erase("bob")
    assert await live.tick() == 0  # the board shows nobody, as before: no news
    lb.set_opted_out("ann", False)
    assert await live.tick() == 1
    assert _tops(published) == [["ann"]]
    assert "bob" not in _named(published)


async def test_opting_out_off_every_board_touches_nothing():
    lb, live, _ = await setup({WEEK: {"ann": Counters(n=5)}})
    lb.set_opted_out("zoe", True)
    lb.erase("yan")
    assert live.pending() == 0
    assert await live.tick() == 0


async def test_events_whose_publishing_failed_are_published_at_the_next_tick():
    lb, live, published = await setup({WEEK: {}})
    real = live.publish
    failures = [ConnectionError("outbox write failed")]

    async def flaky(events):
        if failures:
            raise failures.pop()
        await real(events)

    live.publish = flaky
    commit(lb, (WEEK, "ann", Counters(n=5)))
    with pytest.raises(ConnectionError):
        await live.tick()
    assert published == []
    # Nothing went out, so nothing counts as published: the same news goes at the next tick.
    assert await live.tick() == 1
    (event,) = published[0]
    assert [s.person for s in event.top] == ["ann"]
    assert [(m.person, m.old_rank, m.new_rank) for m in event.moved] == [("ann", None, 1)]
    assert await live.tick() == 0


async def test_an_opt_out_while_a_tick_publishes_is_not_undone_by_that_tick():
    lb, live, published = await setup({WEEK: {}})
    real = live.publish

    async def opting_out_meanwhile(events):
        lb.set_opted_out("ann", True)  # while the outbox write is in flight
        await real(events)

    live.publish = opting_out_meanwhile
    commit(lb, (WEEK, "ann", Counters(n=5)), (WEEK, "bob", Counters(n=3)))
    assert await live.tick() == 1
    live.publish = real
    assert await live.tick() == 1
    assert _tops(published) == [["ann", "bob"], ["bob"]]
    assert "ann" not in {m.person for m in published[-1][0].moved}
    # Forgotten for good, not brought back by the tick that was in flight: she re-enters.
    lb.set_opted_out("ann", False)
    assert await live.tick() == 1
    assert ("ann", None, 1) in {(m.person, m.old_rank, m.new_rank) for m in published[-1][0].moved}
