"""Postgres access for the leaderboard: every statement a named constant, one class.

All methods take a connection, so the caller decides the transaction (the consumer's batch
transaction, or a request's own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import NamedTuple

import asyncpg

from thrive_leaderboard.domain.contributions import DayAgg, DayKey, PairKey
from thrive_leaderboard.domain.scoring import Counters
from thrive_leaderboard.domain.standings import StoredBoard
from thrive_leaderboard.domain.visibility import Snapshot


@dataclass(frozen=True, slots=True)
class PersonRow:
    """A row of the directory mirror."""

    person: str
    team: str | None
    opted_out: bool


class BoardRead(NamedTuple):
    """A board as read from Postgres, and the snapshot it was read in."""

    counters: dict[str, Counters]
    snapshot: Snapshot


# The distinct (scope, day) keys of the day table as `k`: a loose index scan, one probe per
# key (the table holds a few recent days, so a handful of keys per scope).
_DAY_KEYS = """
    WITH RECURSIVE k AS (
        (SELECT scope, day FROM standing_day ORDER BY 1, 2 LIMIT 1)
        UNION ALL
        SELECT nxt.scope, nxt.day FROM k, LATERAL (
            SELECT t.scope, t.day FROM standing_day t
            WHERE (t.scope, t.day) > (k.scope, k.day) ORDER BY 1, 2 LIMIT 1
        ) nxt
    )
"""


class Repository:
    """SQL for standings, the directory mirror, opt-outs and erasure tombstones."""

    # Adds a batch's increments to its day rows, in key order (concurrent batches lock
    # rows in the same order: no deadlock). One row per (scope, day, person): an event
    # writes one row per scope instead of one per window and scope. Rows of erased people
    # are skipped: the tombstones are looked up once per person of the batch ($13, $14),
    # and the (rare) people skipped come back so memory skips them too. Only integer
    # columns change and none is indexed, so updates are HOT.
    APPLY = """
    WITH gone AS (
        SELECT g.person FROM unnest($13::text::text[], $14::bytea[]) AS g(person, pk)
        WHERE EXISTS (SELECT 1 FROM erased e WHERE e.person_key = g.pk)
    ), w AS (
        INSERT INTO standing_day AS s (scope, day, person, n, nd, x, m, dw, dm, dq, dy, da)
        SELECT u.*
        FROM unnest($1::text::text[], $2::text::int[], $3::text::text[], $4::text::int[],
                    $5::text::int[], $6::text::int[], $7::text::int[], $8::text::int[],
                    $9::text::int[], $10::text::int[], $11::text::int[], $12::text::int[])
             AS u(scope, day, person, n, nd, x, m, dw, dm, dq, dy, da)
        WHERE NOT EXISTS (SELECT 1 FROM gone WHERE gone.person = u.person)
        ORDER BY 1, 2, 3
        ON CONFLICT (scope, day, person) DO UPDATE SET
            n = s.n + excluded.n,
            nd = s.nd + excluded.nd,
            x = s.x + excluded.x,
            m = s.m + excluded.m,
            dw = s.dw + excluded.dw,
            dm = s.dm + excluded.dm,
            dq = s.dq + excluded.dq,
            dy = s.dy + excluded.dy,
            da = s.da + excluded.da
    )
    SELECT person FROM gone
    """
    # Consumer members apply batches concurrently; an erasure must run alone: an apply
    # whose statement started before the tombstone committed would write the erased
    # person's rows again (its upsert re-inserts a row the erasure deleted). Applies share
    # this transaction lock, an erasure holds it exclusively (one key per schema).
    # Both also return the transaction's id: memory adds the batch's increments to a board
    # only if the board's read did not already show this transaction (see visibility).
    LOCK_APPLY = """
    SELECT pg_current_xact_id()::text::bigint, pg_advisory_xact_lock_shared(
        hashtextextended('thrive-leaderboard.apply:' || current_schema(), 0))
    """
    LOCK_ERASE = """
    SELECT pg_current_xact_id()::text::bigint, pg_advisory_xact_lock(
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
    # A board's rolled-up rows as one row of column arrays: decoded in C by asyncpg, ~10x
    # faster than a million Records. Its day rows (a few recent days) come separately,
    # summed per person, in the same snapshot.
    SNAPSHOT = "SELECT pg_current_snapshot()::text"
    LOAD_BOARD = """
    SELECT array_agg(person), array_agg(n), array_agg(nd), array_agg(d), array_agg(x),
           array_agg(m)
    FROM standing
    WHERE scope = $1 AND "window" = $2 AND period = $3
    """
    LOAD_BOARD_DAYS = """
    SELECT array_agg(person), array_agg(n), array_agg(nd), array_agg(d), array_agg(x),
           array_agg(m)
    FROM (
        SELECT person, sum(n)::int AS n, sum(nd)::int AS nd,
               sum(CASE $4::text WHEN 'week' THEN dw WHEN 'month' THEN dm
                   WHEN 'quarter' THEN dq WHEN 'year' THEN dy ELSE da END)::int AS d,
               sum(x)::int AS x, sum(m)::int AS m
        FROM standing_day
        WHERE scope = $1 AND day BETWEEN $2 AND $3
        GROUP BY person
    ) s
    """
    ALL_STANDINGS = """
    SELECT scope, "window", period, person, n, nd, d, x, m
    FROM board_standing ORDER BY scope, "window", period, person
    """
    # Days before $1 still held as day rows, oldest first.
    OLD_DAYS = (  # constants joined: no input reaches the text
        _DAY_KEYS  # noqa: S608
        + """
    SELECT DISTINCT day FROM k WHERE day < $1 ORDER BY 1
    """
    )
    # Moves one day's rows into the rolled-up `standing` rows of each of its windows: a
    # board's sums do not change, so memory is not told.
    ROLL_UP_DAY = """
    WITH moved AS (
        DELETE FROM standing_day WHERE day = $1
        RETURNING scope, day, person, n, nd, x, m, dw, dm, dq, dy, da
    )
    INSERT INTO standing AS s (scope, "window", period, person, n, nd, d, x, m)
    SELECT u.scope, p."window", p.period, u.person, u.n, u.nd, p.d, u.x, u.m
    FROM moved u, LATERAL standing_day_periods(u.day, u.dw, u.dm, u.dq, u.dy, u.da) p
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (scope, "window", period, person) DO UPDATE SET
        n = s.n + excluded.n,
        nd = s.nd + excluded.nd,
        d = s.d + excluded.d,
        x = s.x + excluded.x,
        m = s.m + excluded.m
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
    # Day rows hold a few recent days: one probe per stored (scope, day).
    ERASE_DAYS = (  # constants joined: no input reaches the text
        _DAY_KEYS  # noqa: S608
        + """
    DELETE FROM standing_day s USING k
    WHERE s.scope = k.scope AND s.day = k.day AND s.person = $1
    """
    )
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
        rows: dict[DayKey, DayAgg],
        person_keys: dict[str, bytes],
    ) -> set[str]:
        """Add a batch's day-row increments; return the people skipped as erased."""
        if not rows:
            return set()
        aggs = rows.values()
        ds = [a.d for a in aggs]
        # Columns travel as array literals parsed by Postgres: asyncpg's array encoder
        # checks every element's type in Python, which costs more than the upsert.
        records = await conn.fetch(
            self.APPLY,
            _keys_text(map(_K0, rows)),
            _ints(map(_K1, rows)),
            _texts(map(_K2, rows)),
            _ints(map(_N, aggs)),
            _ints(map(_ND, aggs)),
            _ints(map(_X, aggs)),
            _ints(map(_M, aggs)),
            *(_ints(map(window_d, ds)) for window_d in (_K0, _K1, _K2, _K3, _K4)),
            _texts(person_keys),
            list(person_keys.values()),
        )
        return {r[0] for r in records}

    async def lock_apply(self, conn: asyncpg.Connection, *, exclusive: bool) -> int:
        """Take the apply lock for this transaction (shared to apply, exclusive to erase or
        roll up); return the transaction's id."""
        return int(await conn.fetchval(self.LOCK_ERASE if exclusive else self.LOCK_APPLY))

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

    async def load_board(
        self, conn: asyncpg.Connection, board: StoredBoard, days: tuple[int, int]
    ) -> BoardRead:
        """Everyone's counters on one stored board-period (`days`: its first and last)."""
        window = board.window.value
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = Snapshot.parse(await conn.fetchval(self.SNAPSHOT))
            row = await conn.fetchrow(self.LOAD_BOARD, board.scope, window, board.period)
            recent = await conn.fetchrow(
                self.LOAD_BOARD_DAYS, board.scope, days[0], days[1], window
            )
        counters: dict[str, Counters] = {}
        if row is not None and row[0] is not None:
            counters = dict(
                zip(row[0], map(Counters, row[1], row[2], row[3], row[4], row[5]), strict=True)
            )
        if recent is not None and recent[0] is not None:
            zero = Counters()
            for person, n, nd, d, x, m in zip(*recent, strict=True):
                c = counters.get(person, zero)
                counters[person] = Counters(c.n + n, c.nd + nd, c.d + d, c.x + x, c.m + m)
        return BoardRead(counters, snapshot)

    async def old_days(self, conn: asyncpg.Connection, before: int) -> list[int]:
        """Days before `before` (a date ordinal) still held as day rows, oldest first."""
        return [r[0] for r in await conn.fetch(self.OLD_DAYS, before)]

    async def roll_up_day(self, conn: asyncpg.Connection, day: int) -> None:
        """Move one day's rows into the rolled-up rows of its periods (same totals)."""
        await conn.execute(self.ROLL_UP_DAY, day)

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
        await conn.execute(self.ERASE_DAYS, person)
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


# Scopes: a handful of values repeated on every row of a batch.
_quoted_key = lru_cache(maxsize=4096)(_text)


def _keys_text(values: Iterable[str]) -> str:
    """`_texts` for columns with few distinct values (each quoted once, then remembered)."""
    return "{" + ",".join(map(_quoted_key, values)) + "}"


# Column getters for the literals (a C call per element instead of a generator step).
_K0, _K1, _K2, _K3, _K4 = (itemgetter(i) for i in range(5))
_N, _ND, _X, _M = (attrgetter(c) for c in ("n", "nd", "x", "m"))


def _ints(values: Iterable[int]) -> str:
    """A Postgres integer array literal."""
    return "{" + ",".join(map(str, values)) + "}"
