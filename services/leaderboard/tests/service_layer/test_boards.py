import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from thrive_leaderboard.adapters.repository import CommittedBlock, CommittedRow, PersonRow
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters, Metric, Weights, scorers
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.service_layer.boards import BoardError, BoardQuery, Leaderboards, Scope
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

    async def load(self, key):
        self.loads.append(key)
        snapshot = dict(self.boards.get(key, {}))
        if self.gate is not None:
            await self.gate.wait()
        return snapshot


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
    lb.apply_committed([CommittedRow(MONTH, "ann", c(9))])
    assert (await lb.rank(Q, "ann")).rank == 1
    lb.set_team("ann", "blue")
    teams = await lb.top(
        BoardQuery(metric=Metric.THANKS_RECEIVED, window=Window.MONTH, scope=Scope.TEAMS)
    )
    assert [(r.person, r.score) for r in teams.items] == [("blue", 1300)]
    # Totals are summed on that first teams query; from then on they follow commits,
    # team moves and erasures.
    lb.apply_committed([CommittedRow(MONTH, "bob", c(2)), CommittedRow(MONTH, "cat", c(6))])
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
        lb.apply_committed(
            [CommittedRow(MONTH, f"p{i}", c(100 + steps)), CommittedRow(MONTH, newcomer, c(steps))]
        )
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
    lb.apply_committed([CommittedRow(MONTH, "bob", c(7))])
    store.gate.set()
    page = await loading
    assert [r.person for r in page.items] == ["bob", "ann"]


async def test_erasure_removes_the_person_and_leaves_others_untouched():
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(5)}}, PEOPLE)
    await lb.top(Q)
    lb.erase("bob")
    rank = await lb.rank(Q, "bob")
    assert rank.rank is None and not rank.opted_out
    assert (await lb.rank(Q, "ann")).rank == 1
    assert (await lb.rank(Q, "ann")).score == 300


async def test_a_commit_reaching_memory_after_a_later_one_does_not_undo_it():
    # Two consumer members commit a milestone and a thanks for ann; memory hears of the
    # later commit (n=4, m=1) first: the earlier value (n=3, m=1) must not win.
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(2)}}, PEOPLE)
    await lb.top(Q)
    lb.apply_committed([CommittedRow(MONTH, "ann", c(4, m=1))])
    lb.apply_committed([CommittedRow(MONTH, "ann", c(3, m=1))])
    assert (await lb.rank(Q, "ann")).score == 400


async def test_a_stale_commit_queued_during_a_load_does_not_undo_the_snapshot():
    lb, store = make({MONTH: {"ann": c(5)}}, PEOPLE)
    store.gate = asyncio.Event()
    loading = asyncio.create_task(lb.top(Q))
    await asyncio.sleep(0)  # the snapshot (ann 5) is read
    lb.apply_committed([CommittedRow(MONTH, "ann", c(4))])  # committed before it, heard after
    store.gate.set()
    page = await loading
    assert [(r.person, r.score) for r in page.items] == [("ann", 500)]


async def test_rows_of_an_erased_person_reaching_memory_late_are_ignored():
    # A member's commit landed just before the erasure but is mirrored after it.
    lb, _ = make({MONTH: {"ann": c(3), "bob": c(5)}}, PEOPLE)
    await lb.top(Q)
    lb.erase("bob")
    lb.apply_committed([CommittedRow(MONTH, "bob", c(6))])
    assert (await lb.rank(Q, "bob")).rank is None
    assert [r.person for r in (await lb.top(Q)).items] == ["ann"]


async def test_a_committed_block_mirrors_exactly_like_its_rows_one_by_one():
    # The apply path hands rows over as column blocks; they must follow every rule of
    # apply_committed: stale values ignored, erased people ignored, listeners told of the
    # rows taken, and rows for a board being loaded queued for its snapshot.
    def block(board, rows):
        people, counters = zip(*rows, strict=True)
        return CommittedBlock(board, list(people), *map(list, zip(*counters, strict=True)))

    # ann and bob: stale (n + m below what is held); dan: erased.
    rows = [("ann", c(4, m=1)), ("bob", c(1)), ("cat", c(7, d=2)), ("dan", c(2))]
    seen = []
    for as_block in (False, True):
        lb, store = make({MONTH: {"ann": c(5, m=1), "bob": c(2)}, FEB: {"ann": c(1)}}, PEOPLE)
        await lb.top(Q)
        lb.erase("dan")
        heard = []
        lb.listeners.append(lambda board, person, heard=heard: heard.append((board, person)))
        store.gate = asyncio.Event()
        loading = asyncio.create_task(lb.board(FEB))
        await asyncio.sleep(0)  # FEB's snapshot is read; its commits are queued meanwhile
        feb = [("ann", c(2)), ("bob", c(1))]
        if as_block:
            lb.apply_block(block(MONTH, rows))
            lb.apply_block(block(FEB, feb))
        else:
            lb.apply_committed([CommittedRow(MONTH, p, x) for p, x in rows])
            lb.apply_committed([CommittedRow(FEB, p, x) for p, x in feb])
        store.gate.set()
        await loading
        seen.append(
            (
                {b: dict(lb.resident(b).counters) for b in (MONTH, FEB)},
                [(r.person, r.rank, r.score) for r in (await lb.top(Q)).items],
                heard,
            )
        )
    assert seen[0] == seen[1]
    counters, top, heard = seen[1]
    assert counters[MONTH] == {"ann": c(5, m=1), "bob": c(2), "cat": c(7, d=2)}
    assert counters[FEB] == {"ann": c(2), "bob": c(1)}
    assert top == [("cat", 1, 700), ("ann", 2, 500), ("bob", 3, 200)]
    assert heard == [(MONTH, "cat"), (FEB, "ann"), (FEB, "bob")]


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
