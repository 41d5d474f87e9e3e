"""Postgres access for the leaderboard: every statement a named constant, one class.

All methods take a connection, so the caller decides the transaction (the consumer's batch
transaction, or a request's own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import NamedTuple

import asyncpg

from thrive_leaderboard.domain.contributions import Aggregate, PairKey, RowKey
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters
from thrive_leaderboard.domain.standings import StoredBoard


@dataclass(frozen=True, slots=True)
class PersonRow:
    """A row of the directory mirror."""

    person: str
    team: str | None
    opted_out: bool


class CommittedRow(NamedTuple):
    """A standings row as it stands after an apply (absolute counters).

    A tuple, not a dataclass: every applied row makes one, on the hot path.
    """

    board: StoredBoard
    person: str
    counters: Counters


class CommittedBlock(NamedTuple):
    """Rows of one stored board as they stand after an apply: absolute counters as columns.

    What `Repository.apply` returns, as asyncpg decoded it (in C). The consumer hands
    blocks over as they are; the mirror worker makes them `CommittedRow`s, off the
    consumer's critical path (two named tuples per row were ~25 µs per event there).
    """

    board: StoredBoard
    people: Sequence[str]
    n: Sequence[int]
    nd: Sequence[int]
    d: Sequence[int]
    x: Sequence[int]
    m: Sequence[int]

    def size(self) -> int:
        """How many rows."""
        return len(self.people)

    def part(self, start: int, stop: int) -> CommittedBlock:
        """Rows `start`..`stop` of the block."""
        return CommittedBlock(
            self.board,
            self.people[start:stop],
            self.n[start:stop],
            self.nd[start:stop],
            self.d[start:stop],
            self.x[start:stop],
            self.m[start:stop],
        )

    def rows(self) -> Iterator[CommittedRow]:
        """The block as committed rows."""
        return map(
            CommittedRow,
            repeat(self.board),
            self.people,
            map(Counters, self.n, self.nd, self.d, self.x, self.m),
        )


class Repository:
    """SQL for standings, the directory mirror, opt-outs and erasure tombstones."""

    # Adds a batch of aggregated increments, in key order (concurrent batches lock rows in
    # the same order: no deadlock). Rows of erased people are skipped: the tombstones are
    # looked up once per person of the batch ($10, $11), not once per row. Only integer
    # columns change and none is indexed, so updates are HOT. Returns every row's new
    # absolute counters (what memory mirrors after commit), as one row of column arrays
    # per stored board: asyncpg decodes arrays in C, and a board key is built once per
    # batch instead of once per row.
    APPLY = """
    WITH gone AS (
        SELECT g.person FROM unnest($10::text::text[], $11::bytea[]) AS g(person, pk)
        WHERE EXISTS (SELECT 1 FROM erased e WHERE e.person_key = g.pk)
    ), w AS (
        INSERT INTO standing AS s (scope, "window", period, person, n, nd, d, x, m)
        SELECT u.scope, u.w, u.period, u.person, u.n, u.nd, u.d, u.x, u.m
        FROM unnest($1::text::text[], $2::text::text[], $3::text::text[], $4::text::text[],
                    $5::text::int[], $6::text::int[], $7::text::int[], $8::text::int[],
                    $9::text::int[])
             AS u(scope, w, period, person, n, nd, d, x, m)
        WHERE NOT EXISTS (SELECT 1 FROM gone WHERE gone.person = u.person)
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (scope, "window", period, person) DO UPDATE SET
            n = s.n + excluded.n,
            nd = s.nd + excluded.nd,
            d = s.d + excluded.d,
            x = s.x + excluded.x,
            m = s.m + excluded.m
        RETURNING scope, "window", period, person, n, nd, d, x, m
    )
    SELECT scope, "window", period, array_agg(person), array_agg(n), array_agg(nd),
           array_agg(d), array_agg(x), array_agg(m)
    FROM w GROUP BY 1, 2, 3
    """
    # Consumer members apply batches concurrently; an erasure must run alone: an apply
    # whose statement started before the tombstone committed would write the erased
    # person's rows again (its upsert re-inserts a row the erasure deleted). Applies share
    # this transaction lock, an erasure holds it exclusively (one key per schema).
    LOCK_APPLY = """
    SELECT pg_advisory_xact_lock_shared(
        hashtextextended('thrive-leaderboard.apply:' || current_schema(), 0))
    """
    LOCK_ERASE = """
    SELECT pg_advisory_xact_lock(
        hashtextextended('thrive-leaderboard.apply:' || current_schema(), 0))
    """
    # The stored days of some (helper, scope, giver) pairs.
    HELPED_DAYS = """
    SELECT h.helper, h.scope, h.giver, h.days
    FROM unnest($1::text::text[], $2::text::text[], $3::text::bigint[]) AS u(helper, scope, giver)
    JOIN helped h ON h.helper = u.helper AND h.scope = u.scope AND h.giver = u.giver
    """
    # Stores pairs' day lists. The union on conflict keeps the set exact even if another
    # transaction wrote the pair meanwhile (see Applier for why that cannot double count).
    # Erased helpers are skipped, looked up once per person of the batch ($5, $6).
    MERGE_HELPED = """
    WITH gone AS (
        SELECT g.person FROM unnest($5::text::text[], $6::bytea[]) AS g(person, pk)
        WHERE EXISTS (SELECT 1 FROM erased e WHERE e.person_key = g.pk)
    )
    INSERT INTO helped AS h (helper, scope, giver, days)
    SELECT u.helper, u.scope, u.giver, u.days::int[]
    FROM unnest($1::text::text[], $2::text::text[], $3::text::bigint[], $4::text[])
         AS u(helper, scope, giver, days)
    WHERE NOT EXISTS (SELECT 1 FROM gone WHERE gone.person = u.helper)
    ORDER BY 1, 2, 3
    ON CONFLICT (helper, scope, giver) DO UPDATE SET
        days = ARRAY(SELECT DISTINCT x FROM unnest(h.days || excluded.days) x ORDER BY 1)
    """
    # A whole board as one row of column arrays: decoded in C by asyncpg, ~10x faster than
    # a million Records.
    LOAD_BOARD = """
    SELECT array_agg(person), array_agg(n), array_agg(nd), array_agg(d), array_agg(x),
           array_agg(m)
    FROM standing
    WHERE scope = $1 AND "window" = $2 AND period = $3
    """
    BOARD_COUNTERS = """
    SELECT person, n, nd, d, x, m FROM standing
    WHERE scope = $1 AND "window" = $2 AND period = $3 AND person = ANY($4::text[])
    """
    ALL_STANDINGS = """
    SELECT scope, "window", period, person, n, nd, d, x, m
    FROM standing ORDER BY scope, "window", period, person
    """
    ALL_HELPED = """
    SELECT helper, scope, giver, days FROM helped ORDER BY helper, scope, giver
    """
    LOAD_PEOPLE = "SELECT person, team, opted_out FROM person"
    GET_PERSON = "SELECT person, team, opted_out FROM person WHERE person = $1"
    UPSERT_PERSON = """
    INSERT INTO person (person, team) VALUES ($1, $2)
    ON CONFLICT (person) DO UPDATE SET team = excluded.team, updated_at = now()
    """
    SET_OPT_OUT = """
    INSERT INTO person (person, opted_out) VALUES ($1, $2)
    ON CONFLICT (person) DO UPDATE SET opted_out = excluded.opted_out, updated_at = now()
    RETURNING person, team, opted_out
    """
    IS_ERASED = "SELECT EXISTS (SELECT 1 FROM erased WHERE person_key = $1)"
    # No index on person (it cost every apply an insert into a second B-tree): walk the
    # distinct stored boards along the primary key (a loose index scan, one probe per
    # board-period) and delete the person's row on each.
    ERASE_STANDINGS = """
    WITH RECURSIVE board AS (
        (SELECT scope, "window", period FROM standing ORDER BY 1, 2, 3 LIMIT 1)
        UNION ALL
        SELECT nxt.scope, nxt."window", nxt.period FROM board b, LATERAL (
            SELECT t.scope, t."window", t.period FROM standing t
            WHERE (t.scope, t."window", t.period) > (b.scope, b."window", b.period)
            ORDER BY 1, 2, 3 LIMIT 1
        ) nxt
    )
    DELETE FROM standing s USING board b
    WHERE s.scope = b.scope AND s."window" = b."window" AND s.period = b.period
      AND s.person = $1
    """
    ERASE_HELPED = "DELETE FROM helped WHERE helper = $1"
    ERASE_PERSON = "DELETE FROM person WHERE person = $1"
    TOMBSTONE = "INSERT INTO erased (person_key) VALUES ($1) ON CONFLICT DO NOTHING"
    COPY_PEOPLE_FROM = """
    INSERT INTO person (person, team, opted_out, updated_at)
    SELECT person, team, opted_out, updated_at FROM {schema}.person
    ON CONFLICT (person) DO UPDATE SET opted_out = excluded.opted_out
    """
    COPY_ERASED_FROM = """
    INSERT INTO erased SELECT * FROM {schema}.erased ON CONFLICT DO NOTHING
    """

    async def apply(
        self,
        conn: asyncpg.Connection,
        rows: dict[RowKey, Aggregate],
        person_keys: dict[str, bytes],
    ) -> list[CommittedBlock]:
        """Add aggregated increments; return the touched rows' new counters, per board."""
        if not rows:
            return []
        aggs = rows.values()
        # Columns travel as array literals parsed by Postgres: asyncpg's array encoder
        # checks every element's type in Python, which costs more than the upsert.
        records = await conn.fetch(
            self.APPLY,
            _keys_text(map(_K0, rows)),
            _keys_text(map(_K1, rows)),
            _keys_text(map(_K2, rows)),
            _texts(map(_K3, rows)),
            _ints(map(_N, aggs)),
            _ints(map(_ND, aggs)),
            _ints(map(_D, aggs)),
            _ints(map(_X, aggs)),
            _ints(map(_M, aggs)),
            _texts(person_keys),
            list(person_keys.values()),
        )
        return [
            CommittedBlock(_board(r[0], r[1], r[2]), r[3], r[4], r[5], r[6], r[7], r[8])
            for r in records
        ]

    async def lock_apply(self, conn: asyncpg.Connection, *, exclusive: bool) -> None:
        """Take the apply lock for this transaction: shared to apply, exclusive to erase."""
        await conn.execute(self.LOCK_ERASE if exclusive else self.LOCK_APPLY)

    async def helped_days(
        self, conn: asyncpg.Connection, pairs: Sequence[PairKey]
    ) -> dict[PairKey, list[int]]:
        """The days already stored for these (helper, scope, giver) pairs."""
        if not pairs:
            return {}
        records = await conn.fetch(
            self.HELPED_DAYS,
            _texts(p[0] for p in pairs),
            _texts(p[1] for p in pairs),
            _ints(p[2] for p in pairs),
        )
        return {(r[0], r[1], r[2]): r[3] for r in records}

    async def merge_helped(
        self,
        conn: asyncpg.Connection,
        pairs: dict[PairKey, list[int]],
        person_keys: dict[str, bytes],
    ) -> None:
        """Store pairs' full day lists (skipping erased helpers)."""
        if not pairs:
            return
        # Ragged day lists travel as array literals: Postgres arrays are rectangular.
        await conn.execute(
            self.MERGE_HELPED,
            _texts(p[0] for p in pairs),
            _texts(p[1] for p in pairs),
            _ints(p[2] for p in pairs),
            ["{" + ",".join(map(str, days)) + "}" for days in pairs.values()],
            _texts(person_keys),
            list(person_keys.values()),
        )

    async def load_board(self, conn: asyncpg.Connection, board: StoredBoard) -> dict[str, Counters]:
        """Everyone's counters on one stored board-period."""
        row = await conn.fetchrow(self.LOAD_BOARD, board.scope, board.window.value, board.period)
        if row is None or row[0] is None:
            return {}
        return dict(zip(row[0], map(Counters, row[1], row[2], row[3], row[4], row[5]), strict=True))

    async def board_counters(
        self, conn: asyncpg.Connection, board: StoredBoard, people: Sequence[str]
    ) -> dict[str, Counters]:
        """Counters of some people on one stored board-period."""
        rows = await conn.fetch(
            self.BOARD_COUNTERS, board.scope, board.window.value, board.period, list(people)
        )
        return {r[0]: Counters(r[1], r[2], r[3], r[4], r[5]) for r in rows}

    async def all_standings(self, conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Record]:
        """Every standings row in key order (to compare two schemas)."""
        async with conn.transaction(readonly=True):
            async for r in conn.cursor(self.ALL_STANDINGS, prefetch=10_000):
                yield r

    async def all_helped(self, conn: asyncpg.Connection) -> AsyncIterator[asyncpg.Record]:
        """Every (helper, scope, giver, days) row in key order (to compare two schemas)."""
        async with conn.transaction(readonly=True):
            async for r in conn.cursor(self.ALL_HELPED, prefetch=10_000):
                yield r

    async def load_people(self, conn: asyncpg.Connection) -> list[PersonRow]:
        """The whole directory mirror."""
        rows = await conn.fetch(self.LOAD_PEOPLE)
        return [PersonRow(r[0], r[1], r[2]) for r in rows]

    async def get_person(self, conn: asyncpg.Connection, person: str) -> PersonRow | None:
        """One mirrored person, if known."""
        r = await conn.fetchrow(self.GET_PERSON, person)
        return PersonRow(r[0], r[1], r[2]) if r else None

    async def upsert_person(self, conn: asyncpg.Connection, person: str, team: str | None) -> None:
        """Mirror a directory upsert."""
        await conn.execute(self.UPSERT_PERSON, person, team)

    async def set_opt_out(
        self, conn: asyncpg.Connection, person: str, opted_out: bool
    ) -> PersonRow:
        """Record the person's leaderboard opt-out choice."""
        r = await conn.fetchrow(self.SET_OPT_OUT, person, opted_out)
        return PersonRow(r[0], r[1], r[2])

    async def is_erased(self, conn: asyncpg.Connection, person_key: bytes) -> bool:
        """Whether this person was erased."""
        return bool(await conn.fetchval(self.IS_ERASED, person_key))

    async def erase(self, conn: asyncpg.Connection, person: str, person_key: bytes) -> None:
        """Forget a person: their standings and mirror row go, a keyed tombstone stays."""
        await conn.execute(self.ERASE_STANDINGS, person)
        await conn.execute(self.ERASE_HELPED, person)
        await conn.execute(self.ERASE_PERSON, person)
        await conn.execute(self.TOMBSTONE, person_key)

    async def copy_owned_state(self, conn: asyncpg.Connection, *, from_schema: str) -> None:
        """Carry what no topic holds (opt-outs, tombstones) over from another schema."""
        await conn.execute(self.COPY_PEOPLE_FROM.format(schema=_ident(from_schema)))
        await conn.execute(self.COPY_ERASED_FROM.format(schema=_ident(from_schema)))


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"not a plain schema name: {name!r}")
    return f'"{name}"'


def _text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _texts(values: Iterable[str]) -> str:
    """A Postgres text[] literal (every element quoted: any person id is safe)."""
    return "{" + ",".join(map(_text, values)) + "}"


# Scopes, windows and periods: a handful of values repeated on every row of a batch.
_quoted_key = lru_cache(maxsize=4096)(_text)


def _keys_text(values: Iterable[str]) -> str:
    """`_texts` for columns with few distinct values (each quoted once, then remembered)."""
    return "{" + ",".join(map(_quoted_key, values)) + "}"


# Column getters for the literals (a C call per element instead of a generator step).
_K0, _K1, _K2, _K3 = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)
_N, _ND, _D, _X, _M = (attrgetter(c) for c in ("n", "nd", "d", "x", "m"))


def _ints(values: Iterable[int]) -> str:
    """A Postgres integer array literal."""
    return "{" + ",".join(map(str, values)) + "}"


@lru_cache(maxsize=65_536)
def _board(scope: str, window: str, period: str) -> StoredBoard:
    # Boards repeat in every batch: build each key object once.
    return StoredBoard(scope, Window(window), period)
