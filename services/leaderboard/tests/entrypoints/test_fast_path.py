"""The raw-ASGI fast path answers board reads exactly as the Starlette routes do."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import REGISTRY
from thrive_leaderboard.adapters.repository import BoardRead, PersonRow
from thrive_leaderboard.bootstrap import build_spec
from thrive_leaderboard.domain.contributions import theme_scope
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters, Weights, scorers
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.domain.visibility import Snapshot
from thrive_leaderboard.entrypoints.fast import FastBoardReads
from thrive_leaderboard.service_layer.boards import BoardDelta, Leaderboards
from thrive_leaderboard.service_layer.directory import Directory
from thrive_leaderboard.settings import LeaderboardSettings
from thrive_shared.service import Runtime, build_app

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
MONTH = StoredBoard("company", Window.MONTH, "2026-03")
WEEK = StoredBoard("company", Window.WEEK, "2026-W10")
FEB = StoredBoard("company", Window.MONTH, "2026-02")
PYTHON = StoredBoard(theme_scope("python"), Window.MONTH, "2026-03")
PEOPLE = [
    PersonRow("ann", "red", False),
    PersonRow("bob", "red", True),  # opted out
    PersonRow("cat", "blue", False),
    PersonRow("dan", "blue", False),
    PersonRow("eve", "blue", False),
]
STORED = {
    MONTH: {
        "ann": Counters(n=3, d=2),
        "bob": Counters(n=9, d=5),
        "cat": Counters(n=3, d=2),
        "dan": Counters(n=1, d=1, x=1),
        "eve": Counters(n=7, nd=2, d=3),
    },
    WEEK: {"ann": Counters(n=1, d=1)},
    FEB: {"cat": Counters(n=4, d=4)},
    PYTHON: {"dan": Counters(n=2, d=1)},
}
BASE = "http://leaderboard/internal/v1/boards/"


def commit(lb, *rows):
    """Commit (board, person, counters) rows: memory ends at those counters."""
    deltas = [BoardDelta(b, p, c.minus(lb.counters_of(b, p))) for b, p, c in rows]
    lb.apply_deltas(1, deltas)


@pytest.fixture
async def clients():
    async def load(key):
        return BoardRead(dict(STORED.get(key, {})), Snapshot(1, 1, frozenset()))

    boards = Leaderboards(
        loader=load,
        directory=Directory(PEOPLE),
        scorers=scorers(Weights()),
        tz=ZoneInfo("UTC"),
        clock=lambda: NOW,
    )
    for key in (MONTH, WEEK):  # resident, as the current company boards are after start
        await boards.board(key)
    settings = LeaderboardSettings(
        database_url="postgresql://unused/unused", kafka_bootstrap_servers="127.0.0.1:1"
    )
    spec = build_spec(settings)
    rt = Runtime(spec)
    rt.state["leaderboard"] = SimpleNamespace(boards=boards)
    app = build_app(spec, runtime=rt)
    assert spec.wrap_app is not None
    fast = spec.wrap_app(app, rt)
    assert isinstance(fast, FastBoardReads)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as normal,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast)) as wrapped,
    ):
        yield normal, wrapped, fast, boards


async def same(normal, wrapped, fast, path: str) -> tuple[httpx.Response, bool]:
    """GET `path` through both; assert identical answers; return one and whether fast served."""
    a = await normal.get(BASE + path)
    before = fast.served
    b = await wrapped.get(BASE + path)
    assert (b.status_code, b.content) == (a.status_code, a.content), path
    assert b.headers["content-type"] == a.headers["content-type"], path
    assert b.headers["content-length"] == a.headers["content-length"], path
    return b, fast.served > before


# (path, answered by the fast path?) — errors and team boards go to the app.
CASES = [
    ("top", True),
    ("top?window=month", True),
    ("top?window=month&first=2", True),
    ("top?window=month&metric=thanks_received&first=1", True),
    ("top?window=month&window=week", True),  # the last value of a name wins, as in starlette
    ("top?window=month&scope=theme&scope_id=python", True),  # loaded by the app's first answer
    ("top?window=month&period=2026-02", True),
    ("top?window=month&scope=teams", False),
    ("top?window=month&scope=team&scope_id=blue", False),
    ("top?window=fortnight", False),
    ("top?metric=volume", False),
    ("top?first=0", False),
    ("top?first=ten", False),
    ("top?after=not-a-cursor", False),
    ("top?scope=team", False),
    ("top?scope=galaxy", False),
    ("top?window=month&period=2026-13", False),
    ("rank?window=month&person=ann", True),
    ("rank?window=month&person=eve&metric=people_helped", True),
    ("rank?window=month&person=bob", True),  # opted out
    ("rank?window=month&person=zed", True),  # not on the board
    ("rank?window=week&person=cat", True),
    ("rank?window=month", False),
    ("rank?window=month&person=", False),
    ("rank?window=month&scope=teams&person=ann", False),
    ("rank?window=month&scope=team&scope_id=red&person=ann", False),
    ("neighbourhood?window=month&person=cat", True),
    ("neighbourhood?window=month&person=ann&above=1&below=0", True),
    ("neighbourhood?window=month&person=bob", True),
    ("neighbourhood?window=month&person=zed", True),
    ("neighbourhood?window=month&person=ann&above=21", False),
    ("neighbourhood?window=month&person=ann&below=-1", False),
    ("neighbourhood?window=year&person=ann", True),  # an empty board the app loads first
]


async def test_fast_and_normal_paths_answer_identically(clients):
    normal, wrapped, fast, _ = clients
    for path, fast_expected in CASES:
        resp, served = await same(normal, wrapped, fast, path)
        assert served == fast_expected, path
        if not fast_expected and resp.status_code != 200:
            assert resp.json()["error"]["code"] in ("validation", "invalid_cursor"), path
    opted = (await wrapped.get(BASE + "rank?window=month&person=bob")).json()
    assert opted == {"person": "bob", "opted_out": True}
    top = (await wrapped.get(BASE + "top?window=month")).json()
    assert [(i["person"], i["rank"]) for i in top["items"]] == [
        ("eve", 1),
        ("ann", 2),
        ("cat", 2),
        ("dan", 4),
    ]


async def test_a_cursor_page_is_answered_alike(clients):
    normal, wrapped, fast, _ = clients
    first = (await wrapped.get(BASE + "top?window=month&first=2")).json()
    assert first["next_cursor"]
    resp, served = await same(
        normal, wrapped, fast, f"top?window=month&first=2&after={first['next_cursor']}"
    )
    assert served
    assert [i["person"] for i in resp.json()["items"]] == ["cat", "dan"]


async def test_a_cached_top_follows_commits_and_opt_outs(clients):
    normal, wrapped, fast, boards = clients
    path = "top?window=month&first=3"
    resp, _ = await same(normal, wrapped, fast, path)
    assert resp.json()["items"][0]["person"] == "eve"
    commit(boards, (MONTH, "dan", Counters(n=20, d=10)))
    resp, served = await same(normal, wrapped, fast, path)
    assert served
    assert resp.json()["items"][0]["person"] == "dan"
    boards.set_opted_out("dan", True)
    resp, _ = await same(normal, wrapped, fast, path)
    assert "dan" not in [i["person"] for i in resp.json()["items"]]
    assert resp.json()["total"] == 3
    # A person joining the board deep down changes the total, so the page is re-cut.
    commit(boards, (MONTH, "fay", Counters(n=1)))
    resp, _ = await same(normal, wrapped, fast, path)
    assert resp.json()["total"] == 4


async def test_fast_answers_count_in_the_shared_http_metrics(clients):
    _normal, wrapped, _fast, _ = clients
    labels = {
        "service": "leaderboard",
        "route": "/internal/v1/boards/rank",
        "method": "GET",
        "status": "200",
    }
    before = REGISTRY.get_sample_value("thrive_http_requests_total", labels) or 0.0
    hist = {"query": "rank"}
    h_before = REGISTRY.get_sample_value("thrive_leaderboard_query_duration_seconds_count", hist)
    for _ in range(3):
        assert (await wrapped.get(BASE + "rank?window=month&person=ann")).status_code == 200
    assert REGISTRY.get_sample_value("thrive_http_requests_total", labels) == before + 3
    h_after = REGISTRY.get_sample_value("thrive_leaderboard_query_duration_seconds_count", hist)
    assert h_after == (h_before or 0.0) + 3
    # Other routes still go through the app (and its middleware).
    health = await wrapped.get("http://leaderboard/health")
    assert health.json() == {"status": "ok", "service": "leaderboard"}
