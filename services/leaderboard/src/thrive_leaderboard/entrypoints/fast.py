"""A lean raw-ASGI fast path for the hot board reads: top, rank, neighbourhood.

The rank structure answers in microseconds, but routing, the shared metrics middleware and
the per-request OpenTelemetry span cost ~400 µs of CPU per request, which at 8 concurrent
clients on one event loop is the whole p99. This wrapper answers GET boards/top, /rank and
/neighbourhood straight from the resident boards when it can do so synchronously, with the
same parsing and body builders as the routes (so both answer byte for byte alike), and
hands everything else to the Starlette app untouched: other routes and methods, any
parameter error (the app words the structured error), boards not in memory yet (the app
loads them), team boards (computed per query), and requests in a sampled trace while
spans are exported (so traces keep their server span). It counts itself in the shared
HTTP metrics and the query histogram like the routes do.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from thrive_shared.http import ApiError
from thrive_shared.observability import metrics as shared_metrics
from thrive_shared.observability.tracing import exporting
from thrive_shared.service import Runtime

from thrive_leaderboard import metrics
from thrive_leaderboard.domain.ranking import RankIndex
from thrive_leaderboard.entrypoints.http import (
    MAX_FIRST,
    board_query,
    cursor_after,
    int_param,
    neighbourhood_json,
    person_param,
    rank_json,
    top_json,
)
from thrive_leaderboard.service_layer.boards import BoardQuery, Leaderboards, RankAnswer

if TYPE_CHECKING:
    from thrive_leaderboard.bootstrap import LeaderboardApp

log = logging.getLogger(__name__)

TOP = "/internal/v1/boards/top"
RANK = "/internal/v1/boards/rank"
NEIGHBOURHOOD = "/internal/v1/boards/neighbourhood"
MAX_CACHED_TOPS = 4096

# The body of a 200, or raises (_Fallthrough, ApiError, BoardError): the app answers then.
Answer = Callable[[Leaderboards, bytes], bytes]


class _Fallthrough(Exception):
    """The fast path cannot answer this request; the Starlette app will."""


def _params(query_string: bytes) -> dict[str, str]:
    # As starlette's QueryParams: latin-1, blanks kept, the last value of a name wins.
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


def _sampled(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"traceparent":
            # 00-<trace id>-<span id>-<flags>: bit 0 of the flags is "sampled".
            try:
                return bool(int(value[-2:], 16) & 1)
            except ValueError:
                return False
    return False


@dataclass(frozen=True, slots=True)
class _CachedTop:
    """A rendered top page and what it was cut from (weakly: evicted boards go)."""

    q: BoardQuery
    first: int
    after: tuple[int, str] | None
    index: weakref.ref[RankIndex]
    version: int
    period: str
    body: bytes


class _Route:
    """One fast route's metric children, labelled once (labels() costs a dict and a lock)."""

    __slots__ = ("answer", "duration", "query", "requests")

    def __init__(self, service: str, path: str, query: str, answer: Answer) -> None:
        self.answer = answer
        self.requests = shared_metrics.HTTP_REQUESTS.labels(service, path, "GET", "200")
        self.duration = shared_metrics.HTTP_DURATION.labels(service, path)
        self.query = metrics.QUERY_DURATION.labels(query)


class FastBoardReads:
    """ASGI app: hot board reads from memory, everything else through `app`."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        service = runtime.name
        self._routes = {
            TOP: _Route(service, TOP, "top", self._top),
            RANK: _Route(service, RANK, "rank", self._rank),
            NEIGHBOURHOOD: _Route(service, NEIGHBOURHOOD, "neighbourhood", self._neighbourhood),
        }
        # A top page stays valid while the index it was cut from is unchanged and the
        # current period is the same (an index's version moves with every change to it).
        self._tops: dict[bytes, _CachedTop] = {}
        self.served = 0  # answered here, not by the app (for tests and curiosity)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            route = self._routes.get(scope["path"])
            if route is not None:
                started = time.perf_counter()
                body = self._answer(route, scope)
                if body is not None:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/json"),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    elapsed = time.perf_counter() - started
                    self.served += 1
                    route.requests.inc()
                    route.duration.observe(elapsed)
                    route.query.observe(elapsed)
                    return
        await self.app(scope, receive, send)

    def _answer(self, route: _Route, scope: Scope) -> bytes | None:
        lb: LeaderboardApp | None = self.runtime.state.get("leaderboard")
        if lb is None or (exporting() and _sampled(scope)):
            return None
        try:
            return route.answer(lb.boards, scope["query_string"])
        except (_Fallthrough, ApiError, ValueError):  # BoardError is a ValueError
            return None
        except Exception:
            # A bug here must not cost an answer: the app answers (or errors) the usual way.
            log.exception("fast board read failed; the app answers instead")
            return None

    def _top(self, boards: Leaderboards, qs: bytes) -> bytes:
        hit = self._tops.get(qs)
        if hit is not None:
            q, first, after = hit.q, hit.first, hit.after
        else:
            params = _params(qs)
            q = board_query(params)
            first = int_param(params, "first", 10, low=1, high=MAX_FIRST)
            after = cursor_after(params.get("after"))
        period = boards.period_for(q)
        idx = boards.resident_index(q, period)
        if idx is None:
            raise _Fallthrough
        if (
            hit is not None
            and hit.index() is idx
            and hit.version == idx.version
            and hit.period == period
        ):
            return hit.body
        page = boards.page_of(idx, period, first=first, after=after)
        body = orjson.dumps(top_json(q, page))
        if hit is None and len(self._tops) >= MAX_CACHED_TOPS:
            self._tops.clear()
        self._tops[qs] = _CachedTop(q, first, after, weakref.ref(idx), idx.version, period, body)
        return body

    def _rank_answer(
        self, boards: Leaderboards, params: dict[str, str]
    ) -> tuple[BoardQuery, RankAnswer, RankIndex | None]:
        q = board_query(params)
        person = person_param(params)
        boards.check_person_board(q)
        period = boards.period_for(q)
        if boards.directory.is_opted_out(person):
            return q, RankAnswer(person, period, opted_out=True), None
        idx = boards.resident_index(q, period)
        if idx is None:
            raise _Fallthrough
        return q, boards.rank_in(idx, person, period), idx

    def _rank(self, boards: Leaderboards, qs: bytes) -> bytes:
        q, answer, _idx = self._rank_answer(boards, _params(qs))
        return orjson.dumps(rank_json(q, answer))

    def _neighbourhood(self, boards: Leaderboards, qs: bytes) -> bytes:
        params = _params(qs)
        q = board_query(params)
        person = person_param(params)
        above = int_param(params, "above", 2, low=0, high=20)
        below = int_param(params, "below", 2, low=0, high=20)
        boards.check_person_board(q)
        period = boards.period_for(q)
        if boards.directory.is_opted_out(person):
            return orjson.dumps(rank_json(q, RankAnswer(person, period, opted_out=True)))
        idx = boards.resident_index(q, period)
        if idx is None:
            raise _Fallthrough
        answer, lines = boards.neighbourhood_in(idx, person, period, above=above, below=below)
        return orjson.dumps(neighbourhood_json(q, answer, lines))


def wrap(app: ASGIApp, runtime: Runtime) -> ASGIApp:
    """ServiceSpec.wrap_app hook: the fast board reads in front of the service's app."""
    return FastBoardReads(app, runtime)
