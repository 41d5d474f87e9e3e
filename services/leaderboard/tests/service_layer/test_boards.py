import asyncio
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from thrive_leaderboard.adapters.repository import BoardRead, PersonRow
from thrive_leaderboard.domain.contributions import DayAgg, unfold
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters, Metric, Weights, scorers
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.domain.visibility import Snapshot
from thrive_leaderboard.service_layer.boards import (
    BoardDelta,
    BoardError,
    BoardQuery,
    Leaderboards,
    Scope,
)
from thrive_leaderboard.service_layer.directory import Directory

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
MONTH = StoredBoard("company", Window.MONTH, "2026-03")
FEB = StoredBoard("company", Window.MONTH, "2026-02")
Q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH)


class FakeStore:
    """Stands in for Postgres: stored boards by key; can hold a load to test races."""

    def __init__(self, boards):
        self.boards = boards
        self.loads = []
        self.gate = None
        # Transactions 1..99 committed before every read here; 100 and later after.
        self.snapshot = Snapshot(100, 100, frozenset())

    async def load(self, key):
        self.loads.append(key)
        counters = dict(self.boards.get(key, {}))
        if self.gate is not None:
            await self.gate.wait()
        return BoardRead(counters, self.snapshot)


_xid = iter(range(1000, 10**9))


def add(lb, *deltas, xid=None):
    """Committed increments (board, person, counters) of one later transaction."""
    lb.apply_deltas(next(_xid) if xid is None else xid, [BoardDelta(*d) for d in deltas])


def make(boards, people=()):
    store = FakeStore(boards)
    lb = Leaderboards(
        loader=store.load,
        directory=Directory(people),
        scorers=scorers(Weights()),
        tz=ZoneInfo("UTC"),
        clock=lambda: NOW,
    )
    return lb, store


def c(n, **kw):
    return Counters(n=n, **kw)


PEOPLE = [
    PersonRow("ann", "red", False),
    PersonRow("bob", "red", False),
    PersonRow("cat", "blue", False),
    PersonRow("dan", "blue", False),
]


async def test_top_lists_the_current_period_with_shared_ranks_for_ties():
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(5), "cat": c(3), "dan": c(1)}}, PEOPLE)
    page = await lb.top(Q, first=3)
    assert page.period == "2026-03"
    assert [(r.person, r.rank, r.score) for r in page.items] == [
        ("bob", 1, 500),
        ("ann", 2, 300),
        ("cat", 2, 300),
    ]
    rest = await lb.top(Q, first=3, after=page.next_after)
    assert [r.person for r in rest.items] == ["dan"]
    assert rest.next_after is None


async def test_opted_out_people_vanish_and_others_move_up_but_team_totals_keep_their_help():
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(5), "cat": c(4)}}, PEOPLE)
    assert (await lb.rank(Q, "cat")).rank == 2
    lb.set_opted_out("bob", True)
    assert (await lb.rank(Q, "bob")).opted_out
    assert (await lb.rank(Q, "cat")).rank == 1
    assert "bob" not in [r.person for r in (await lb.top(Q)).items]
    teams = await lb.top(
        BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH, scope=Scope.TEAMS)
    )
    assert [(r.person, r.score) for r in teams.items] == [("red", 800), ("blue", 400)]
    team = await lb.top(
        BoardQuery(
            metric=Metric.THANKS_RECEIVED, window=Window.MONTH, scope=Scope.TEAM, scope_id="red"
        )
    )
    assert [r.person for r in team.items] == ["ann"]
    lb.set_opted_out("bob", False)
    assert (await lb.rank(Q, "bob")).rank == 1


async def test_committed_rows_update_ranks_and_team_moves_carry_totals():
    lb, _ = make({MONTH: {"ann": c(3), "cat": c(4)}}, PEOPLE)
    await lb.top(Q)
    add(lb, (MONTH, "ann", c(6)))
    assert (await lb.rank(Q, "ann")).score == 900
    assert (await lb.rank(Q, "ann")).rank == 1
    lb.set_team("ann", "blue")
    teams = await lb.top(
        BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH, scope=Scope.TEAMS)
    )
    assert [(r.person, r.score) for r in teams.items] == [("blue", 1300)]
    # Totals are summed on that first teams query; from then on they follow commits,
    # team moves and erasures.
    add(lb, (MONTH, "bob", c(2)), (MONTH, "cat", c(2)))
    lb.set_team("ann", "red")
    lb.erase("cat")
    teams = await lb.top(
        BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH, scope=Scope.TEAMS)
    )
    assert [(r.person, r.score) for r in teams.items] == [("red", 1100)]


async def test_team_totals_summed_in_slices_take_what_lands_between_them(monkeypatch):
    """The first teams query yields while it sums; commits, moves, erasures and arrivals
    landing between its slices all end up in the totals, as one pass would have it."""
    monkeypatch.setattr("thrive_leaderboard.service_layer.boards.TEAM_SUM_SLICE", 3)
    teams = ["red", "blue", "green"]
    people = [PersonRow(f"p{i}", teams[i % 3], False) for i in range(40)]
    lb, _ = make({MONTH: {f"p{i}": c(i + 1) for i in range(30)}}, people)
    await lb.top(Q)
    teams_q = BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH, scope=Scope.TEAMS)
    query = asyncio.create_task(lb.top(teams_q, first=10))
    steps = 0
    while not query.done():
        # Between two slices: someone summed or not yet, a newcomer, a move, an erasure.
        i = steps % 40
        newcomer = f"p{30 + steps % 10}"  # not on the board when the query began
        add(lb, (MONTH, f"p{i}", c(100 + steps)), (MONTH, newcomer, c(steps + 1)))
        if steps % 4 == 0:
            lb.set_team(f"p{(i + 7) % 40}", teams[(steps // 4) % 3])
        if steps % 5 == 0:
            lb.erase(f"p{(i + 13) % 40}")
        steps += 1
        await asyncio.sleep(0)
    assert steps > 3  # it yielded while summing: other work ran in between
    got = {r.person: r.score for r in query.result().items}

    board = lb._boards[MONTH]
    expected: dict[str, int] = {}
    for person, counters in board.counters.items():
        team = lb.directory.team_of(person)
        if team is not None:
            expected[team] = expected.get(team, 0) + counters.n * 100
    assert got == {t: n for t, n in expected.items() if n > 0}


async def test_a_previous_period_is_loaded_on_demand():
    lb, store = make({MONTH: {"ann": c(1)}, FEB: {"bob": c(2)}}, PEOPLE)
    old = await lb.top(
        BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH, period="2026-02")
    )
    assert [r.person for r in old.items] == ["bob"]
    assert FEB in store.loads


async def test_updates_committed_while_a_board_loads_are_not_lost():
    lb, store = make({MONTH: {"ann": c(1)}}, PEOPLE)
    store.gate = asyncio.Event()
    loading = asyncio.create_task(lb.top(Q))
    await asyncio.sleep(0)
    add(lb, (MONTH, "bob", c(7)))
    store.gate.set()
    page = await loading
    assert [(r.person, r.score) for r in page.items] == [("bob", 700), ("ann", 100)]


async def test_erasure_removes_the_person_and_leaves_others_untouched():
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(5)}}, PEOPLE)
    await lb.top(Q)
    lb.erase("bob")
    rank = await lb.rank(Q, "bob")
    assert rank.rank is None and not rank.opted_out
    assert (await lb.rank(Q, "ann")).rank == 1
    assert (await lb.rank(Q, "ann")).score == 300


async def test_increments_of_concurrent_members_add_up_in_either_order():
    # Two consumer members commit a milestone and a thanks for ann; memory may hear of
    # the later commit first. Increments add up the same either way.
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(2)}}, PEOPLE)
    await lb.top(Q)
    add(lb, (MONTH, "ann", c(1)), xid=1001)
    add(lb, (MONTH, "ann", c(0, m=1)), xid=1000)
    assert lb.resident(MONTH).counters["ann"] == c(4, m=1)
    assert (await lb.rank(Q, "ann")).score == 400


async def test_a_commit_the_boards_read_already_shows_is_not_added_twice():
    # The read's snapshot: 40 and below had committed, 42 was running, 45+ had not begun.
    lb, store = make({MONTH: {"ann": c(5)}}, PEOPLE)
    store.snapshot = Snapshot(41, 45, frozenset({42}))
    store.gate = asyncio.Event()
    loading = asyncio.create_task(lb.top(Q))
    await asyncio.sleep(0)  # the board is being read
    add(lb, (MONTH, "ann", c(1)), xid=40)  # committed before the read: in it already
    add(lb, (MONTH, "ann", c(2)), xid=42)  # committed after the read began
    add(lb, (MONTH, "bob", c(3)), xid=50)
    store.gate.set()
    page = await loading
    assert [(r.person, r.score) for r in page.items] == [("ann", 700), ("bob", 300)]
    # A batch that committed before the read but reaches memory only now (it waited in
    # the mirror's queue) is in the board already too.
    add(lb, (MONTH, "ann", c(10)), xid=43)
    add(lb, (MONTH, "ann", c(1)), xid=46)
    assert lb.resident(MONTH).counters["ann"] == c(8)


async def test_rows_of_an_erased_person_reaching_memory_late_are_ignored():
    # A member's commit landed just before the erasure but is mirrored after it.
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(5)}}, PEOPLE)
    await lb.top(Q)
    lb.erase("bob")
    add(lb, (MONTH, "bob", c(6)))
    assert (await lb.rank(Q, "bob")).rank is None
    assert [r.person for r in (await lb.top(Q)).items] == ["ann"]


async def test_day_rows_count_on_every_window_exactly_like_their_board_increments():
    # The apply path hands memory day rows; each counts on the board of every window
    # holding its day, with that window's distinct increment. They must follow the rules
    # of per-board increments: erased people ignored, listeners told of each row taken,
    # rows for a board being loaded queued for its read.
    march, feb = date(2026, 3, 2).toordinal(), date(2026, 2, 27).toordinal()

    def day_row(scope, day, person, n, d, m=0):
        agg = DayAgg(n, 0, 0, m)
        agg.d = list(d)
        return (scope, day, person), agg

    rows = [
        day_row("company", march, "ann", 2, (1, 1, 0, 0, 0)),
        day_row("company", march, "cat", 1, (1, 1, 1, 1, 1), m=1),
        day_row("company", march, "dan", 4, (1, 1, 1, 1, 1)),
        day_row("company", feb, "ann", 1, (1, 1, 0, 0, 0)),
        day_row("theme:python", march, "bob", 1, (1, 1, 1, 1, 1)),
    ]
    seen = []
    for as_days in (False, True):
        lb, store = make({MONTH: {"ann": c(5, d=1), "bob": c(2)}, FEB: {"ann": c(1)}}, PEOPLE)
        await lb.top(Q)
        lb.erase("dan")
        heard = []
        lb.listeners.append(lambda board, person, heard=heard: heard.append((board, person)))
        store.gate = asyncio.Event()
        loading = asyncio.create_task(lb.board(FEB))
        await asyncio.sleep(0)  # FEB is being read; its commits are queued meanwhile
        if as_days:
            lb.apply_days(2000, rows)
        else:
            deltas = [
                BoardDelta(
                    StoredBoard(k[0], Window(k[1]), k[2]), k[3], Counters(a.n, a.nd, a.d, a.x, a.m)
                )
                for k, a in unfold(dict(rows)).items()
            ]
            lb.apply_deltas(2000, deltas)
        store.gate.set()
        await loading
        seen.append(
            (
                {b: dict(lb.resident(b).counters) for b in (MONTH, FEB)},
                [(r.person, r.rank, r.score) for r in (await lb.top(Q)).items],
                set(heard),
            )
        )
    assert seen[0] == seen[1]
    counters, top, heard = seen[1]
    assert counters[MONTH] == {"ann": c(7, d=2), "bob": c(2), "cat": c(1, d=1, m=1)}
    assert counters[FEB] == {"ann": c(2, d=1)}
    assert top == [("ann", 1, 700), ("bob", 2, 200), ("cat", 3, 100)]
    assert (MONTH, "cat") in heard and (FEB, "ann") in heard
    assert not any(p == "dan" for _b, p in heard)
    assert (StoredBoard("theme:python", Window.ALL_TIME, "all"), "bob") in heard


async def test_neighbourhood_and_rising():
    lb, _ = make(
        {
            MONTH: {"ann": c(1), "bob": c(5), "cat": c(4), "dan": c(3)},
            FEB: {"bob": c(5), "cat": c(1)},
        },
        PEOPLE,
    )
    answer, lines = await lb.neighbourhood(Q, "dan", above=1, below=1)
    assert answer.rank == 3
    assert [r.person for r in lines] == ["cat", "dan", "ann"]
    _, risers = await lb.rising(Q)
    # Equal gains list by person id; bob did not gain, so he is not rising.
    assert [(r.person, r.gain) for r in risers] == [("cat", 300), ("dan", 300), ("ann", 100)]


async def test_bad_queries_are_refused_clearly():
    with pytest.raises(BoardError, match="scope_id"):
        BoardQuery(scope=Scope.TEAM)
    with pytest.raises(BoardError, match="period"):
        BoardQuery(window=Window.WEEK, period="2026-03")
    lb, _ = make({})
    with pytest.raises(BoardError, match="all_time"):
        await lb.rising(BoardQuery(window=Window.ALL_TIME))
    with pytest.raises(BoardError, match="ranks teams"):
        await lb.rank(BoardQuery(scope=Scope.TEAMS), "ann")


async def test_forgetting_memory_drops_resident_boards_and_a_read_in_flight():
    # After a mirror failed half way, boards are read again; a read begun before that
    # serves its callers but is not kept (it may miss part of the failed batch).
    lb, store = make({MONTH: {"ann": c(3)}, FEB: {"bob": c(2)}}, PEOPLE)
    await lb.top(Q)
    store.gate = asyncio.Event()
    reading = asyncio.create_task(lb.board(FEB))
    await asyncio.sleep(0)
    lb.forget_resident()
    assert lb.resident(MONTH) is None
    store.gate.set()
    assert (await reading).counters == {"bob": c(2)}
    assert lb.resident(FEB) is None
    store.gate = None
    store.boards[MONTH] = {"ann": c(5)}  # what Postgres holds now
    assert (await lb.rank(Q, "ann")).score == 500
    assert store.loads.count(MONTH) == 2
