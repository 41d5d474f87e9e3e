"""The Postgres repository: SQL as named constants, one asyncpg connection per unit of work.

Every method runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg
from thrive_shared.contracts import AskSize, CelebrationSize, Visibility

from thrive_recognition.adapters.repository import Direction, Repository
from thrive_recognition.domain import progress as progress_rules
from thrive_recognition.domain.allowance import AllowanceWindows, Usage
from thrive_recognition.domain.model import (
    Ask,
    AskState,
    Counts,
    Milestone,
    Offer,
    Person,
    Progress,
    ProgressUpdate,
    Thanks,
)
from thrive_recognition.domain.pagination import Cursor, Page, PageRequest
from thrive_recognition.domain.periods import run_length

T = TypeVar("T")
Row: TypeAlias = Any  # asyncpg.Record: a mapping by column name


def _person(r: Row) -> Person:
    return Person(
        id=r["id"],
        name=r["name"],
        email=r["email"],
        team=r["team"],
        timezone=r["timezone"],
        locale=r["locale"],
        manager=r["manager"],
        active=r["active"],
    )


def _ask(r: Row) -> Ask:
    return Ask(
        id=r["id"],
        asker=r["asker"],
        asker_team=r["asker_team"],
        title=r["title"],
        details=r["details"],
        themes=tuple(r["themes"]),
        size=AskSize(r["size"]),
        status=AskState(r["status"]),
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        accepted_offer_id=r["accepted_offer_id"],
        accepted_helper=r["accepted_helper"],
        closed_at=r["closed_at"],
    )


def _offer(r: Row) -> Offer:
    return Offer(
        id=r["id"],
        helper=r["helper"],
        ask_id=r["ask_id"],
        themes=tuple(r["themes"]),
        message=r["message"],
        created_at=r["created_at"],
        origin=r["origin"],
        external_id=r["external_id"],
    )


def _thanks(r: Row) -> Thanks:
    return Thanks(
        id=r["id"],
        giver=r["giver"],
        helper=r["helper"],
        giver_team=r["giver_team"],
        helper_team=r["helper_team"],
        message=r["message"],
        themes=tuple(r["themes"]),
        visibility=Visibility(r["visibility"]),
        given_at=r["given_at"],
        ask_id=r["ask_id"],
        offer_id=r["offer_id"],
        discounted=r["discounted"],
        origin=r["origin"],
        external_id=r["external_id"],
    )


def _milestone(r: Row) -> Milestone:
    return Milestone(
        id=r["id"],
        person=r["person"],
        team=r["team"],
        rule_id=r["rule_id"],
        scope=r["scope"],
        level=r["level"],
        size=CelebrationSize(r["size"]),
        title=r["title"],
        themes=tuple(r["themes"]),
        reached_at=r["reached_at"],
    )


def _counts(r: Row) -> Counts:
    return Counts(
        thanks_received=r["thanks_received"],
        thanks_given=r["thanks_given"],
        asks=r["asks"],
        offers=r["offers"],
        people_helped=r["people_helped"],
        teams_helped=r["teams_helped"],
        streak_weeks=r["streak_weeks"],
        longest_streak=r["longest_streak"],
        last_help_week=r["last_help_week"],
    )


def _join_themes(themes: Sequence[str]) -> str:
    if any("," in t for t in themes):
        raise ValueError(f"a theme cannot contain a comma: {themes!r}")
    return ",".join(themes)


def _page(rows: Sequence[Row], page: PageRequest, conv: Callable[[Row], T], at: str) -> Page[T]:
    more = len(rows) > page.first
    rows = rows[: page.first]
    last = rows[-1] if rows and more else None
    return Page(
        items=[conv(r) for r in rows],
        next_cursor=Cursor(at=last[at], id=last["id"]) if last is not None else None,
    )


def _cursor_args(page: PageRequest) -> tuple[datetime | None, str | None, int]:
    after = page.after
    return (after.at if after else None, after.id if after else None, page.first + 1)


class SqlRepository:
    """Recognition's tables, read and written on one connection."""

    LOCK_PEOPLE = """
        SELECT pg_advisory_xact_lock(k)
        FROM (SELECT hashtextextended('thrive.recognition.person:' || p, 0) AS k
              FROM unnest($1::text[]) AS p ORDER BY p) AS keys
    """
    GET_PEOPLE = "SELECT * FROM people WHERE id = ANY($1::text[])"
    # Lock and read in one round trip (the batch path). Every row waits for the locks, so
    # they are all held when the statement returns; an id with no row raises upstream.
    LOCK_AND_GET_PEOPLE = """
        WITH locked AS MATERIALIZED (
            SELECT count(pg_advisory_xact_lock(k)) AS n
            FROM (SELECT hashtextextended('thrive.recognition.person:' || p, 0) AS k
                  FROM (SELECT DISTINCT p FROM unnest($1::text[]) AS p) AS ids
                  ORDER BY p) AS keys
        )
        SELECT people.* FROM locked, people WHERE people.id = ANY($1::text[])
    """
    UPSERT_PERSON = """
        INSERT INTO people (id, name, email, team, manager, timezone, locale, active)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (id) DO UPDATE SET
            name = EXCLUDED.name, email = EXCLUDED.email, team = EXCLUDED.team,
            manager = EXCLUDED.manager, timezone = EXCLUDED.timezone,
            locale = EXCLUDED.locale, active = EXCLUDED.active, updated_at = now()
    """
    # Erasure, part 1: the person's own data goes ($1 = person).
    ERASE_OWN = (
        "DELETE FROM people WHERE id = $1",
        "UPDATE people SET manager = NULL WHERE manager = $1",
        "DELETE FROM progress WHERE person = $1",
        "DELETE FROM helped_people WHERE helper = $1",
        "DELETE FROM helped_teams WHERE helper = $1",
        "DELETE FROM help_weeks WHERE person = $1",
        "DELETE FROM theme_progress WHERE person = $1",
        "DELETE FROM milestones WHERE person = $1",
    )
    # Part 2: what others did with them stays countable, under a pseudonym ($2); their
    # words (asks, offers, messages naming them) are blanked.
    ERASE_SHARED = (
        "UPDATE asks SET asker = $2, title = '', details = '' WHERE asker = $1",
        "UPDATE asks SET accepted_helper = $2 WHERE accepted_helper = $1",
        "UPDATE offers SET helper = $2, message = '' WHERE helper = $1",
        """UPDATE thanks SET
               giver = CASE WHEN giver = $1 THEN $2 ELSE giver END,
               helper = CASE WHEN helper = $1 THEN $2 ELSE helper END,
               message = ''
           WHERE giver = $1 OR helper = $1""",
        "UPDATE helped_people SET giver = $2 WHERE giver = $1",
    )

    INSERT_ASK = """
        INSERT INTO asks (id, asker, asker_team, title, details, themes, size, status,
                          created_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    """
    GET_ASK = "SELECT * FROM asks WHERE id = $1"
    GET_ASK_FOR_UPDATE = "SELECT * FROM asks WHERE id = $1 FOR UPDATE"
    SAVE_ASK = """
        UPDATE asks SET status = $2, accepted_offer_id = $3, accepted_helper = $4,
                        closed_at = $5
        WHERE id = $1
    """
    GET_ASKS = "SELECT * FROM asks WHERE id = ANY($1::text[])"
    LIST_OPEN_ASKS = """
        SELECT * FROM asks
        WHERE status = 'open'
          AND ($1::text IS NULL OR themes @> ARRAY[$1::text])
          AND ($2::text IS NULL OR size = $2)
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::text))
        ORDER BY created_at DESC, id DESC
        LIMIT $5
    """
    EXPIRE_DUE = """
        UPDATE asks SET status = 'expired', closed_at = $1
        WHERE id IN (SELECT id FROM asks
                     WHERE status = 'open' AND expires_at <= $1
                     ORDER BY expires_at LIMIT $2
                     FOR UPDATE SKIP LOCKED)
        RETURNING *
    """
    INSERT_OFFER = """
        INSERT INTO offers (id, helper, ask_id, themes, message, origin, external_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT DO NOTHING
        RETURNING 1
    """
    GET_OFFER = "SELECT * FROM offers WHERE id = $1"
    FIND_OFFER = "SELECT * FROM offers WHERE origin = $1 AND external_id = $2"

    # Batches travel as one array of row values (types of migration 0003), a tuple per row.
    # Themes travel joined by a comma: the Theme type allows no comma inside a theme.
    INSERT_THANKS = """
        INSERT INTO thanks (id, giver, helper, giver_team, helper_team, message, themes,
                            ask_id, offer_id, visibility, discounted, origin, external_id,
                            given_at)
        SELECT id, giver, helper, giver_team, helper_team, message,
               string_to_array(themes, ','), ask_id, offer_id, visibility, discounted,
               origin, external_id, given_at
        FROM unnest($1::thanks_row[])
        ON CONFLICT DO NOTHING
        RETURNING id
    """
    FIND_THANKS = "SELECT * FROM thanks WHERE origin = $1 AND external_id = $2"
    GET_THANKS = "SELECT * FROM thanks WHERE id = ANY($1::text[])"
    # One row per window, in the order given; a window with a helper counts that pair only.
    ALLOWANCE_USAGE = """
        SELECT count(t.id) AS used
        FROM unnest($2::timestamptz[], $3::timestamptz[], $4::text[])
             WITH ORDINALITY AS w(starts, ends, pair, n)
        LEFT JOIN thanks t
               ON t.giver = $1 AND t.given_at >= w.starts AND t.given_at < w.ends
              AND (w.pair IS NULL OR t.helper = w.pair)
              AND ($5::text IS NULL OR t.origin = $5)
        GROUP BY w.n
        ORDER BY w.n
    """
    PAIR_COUNTS = """
        SELECT count(t.id) AS n
        FROM unnest($1::pair_since[]) WITH ORDINALITY AS u(g, h, s, i)
        LEFT JOIN thanks t ON t.giver = u.g AND t.helper = u.h AND t.given_at >= u.s
        GROUP BY u.i
        ORDER BY u.i
    """
    # Who thanked whom within the window, walking out from $1 up to $3 steps.
    RING_EDGES = """
        WITH RECURSIVE walk(giver, helper, depth) AS (
            SELECT giver, helper, 1 FROM thanks WHERE giver = $1 AND given_at >= $2
          UNION
            SELECT t.giver, t.helper, w.depth + 1
            FROM walk w JOIN thanks t ON t.giver = w.helper
            WHERE t.given_at >= $2 AND w.depth < $3
        )
        SELECT DISTINCT giver, helper FROM walk LIMIT 10000
    """
    LIST_PUBLIC_THANKS = """
        SELECT * FROM thanks
        WHERE visibility = 'public'
          AND ($1::text IS NULL OR giver_team = $1 OR helper_team = $1)
          AND ($2::text IS NULL OR themes @> ARRAY[$2::text])
          AND ($3::timestamptz IS NULL OR (given_at, id) < ($3, $4::text))
        ORDER BY given_at DESC, id DESC
        LIMIT $5
    """
    _PERSON_THANKS = """
        SELECT * FROM thanks
        WHERE {column} = $1
          AND (visibility = 'public' OR $2::boolean OR giver = $3 OR helper = $3)
          AND ($4::timestamptz IS NULL OR (given_at, id) < ($4, $5::text))
        ORDER BY given_at DESC, id DESC
        LIMIT $6
    """
    LIST_THANKS_RECEIVED = _PERSON_THANKS.format(column="helper")
    LIST_THANKS_GIVEN = _PERSON_THANKS.format(column="giver")
    THEME_COUNTS = """
        SELECT theme, count(*) AS n
        FROM thanks, unnest(themes) AS theme
        WHERE visibility = 'public'
        GROUP BY theme
        ORDER BY n DESC, theme
        LIMIT 200
    """

    # Progress for many acts in two statements; the caller holds the locks of everyone
    # involved. First the facts (distinct people/teams helped, weeks, themes), with what the
    # streaks need: old help weeks come from the table, new ones from `hw` (one snapshot).
    APPLY_FACTS = """
        WITH hp AS (
            INSERT INTO helped_people (helper, giver)
            SELECT * FROM unnest($1::person_text[])
            ON CONFLICT DO NOTHING RETURNING helper
        ), ht AS (
            INSERT INTO helped_teams (helper, team)
            SELECT * FROM unnest($2::person_text[])
            ON CONFLICT DO NOTHING RETURNING helper
        ), hw AS (
            INSERT INTO help_weeks (person, week)
            SELECT * FROM unnest($3::person_week[])
            ON CONFLICT DO NOTHING RETURNING person, week
        ), tp AS (
            INSERT INTO theme_progress AS tp (person, theme, count)
            SELECT * FROM unnest($4::person_theme_count[])
            ON CONFLICT (person, theme) DO UPDATE SET count = tp.count + EXCLUDED.count
            RETURNING person, theme, count
        ),
        np AS (SELECT helper AS person, count(*)::int AS n FROM hp GROUP BY helper),
        nt AS (SELECT helper AS person, count(*)::int AS n FROM ht GROUP BY helper),
        nw AS (SELECT person, array_agg(week) AS weeks FROM hw GROUP BY person),
        nth AS (SELECT person, array_agg(theme) AS names, array_agg(count) AS counts
                FROM tp GROUP BY person)
        SELECT person,
               coalesce(np.n, 0) AS new_people,
               coalesce(nt.n, 0) AS new_teams,
               nw.weeks AS new_weeks,
               CASE WHEN nw.weeks IS NOT NULL THEN
                   (SELECT array_agg(h.week) FROM help_weeks h WHERE h.person = nw.person)
               END AS old_weeks,
               pr.last_help_week, pr.longest_streak,
               nth.names AS theme_names,
               nth.counts AS theme_counts
        FROM np FULL JOIN nt USING (person) FULL JOIN nw USING (person)
             FULL JOIN nth USING (person)
             LEFT JOIN progress pr USING (person)
    """
    # Then every counter and streak in one upsert: one new row version per person per batch
    # (progress is the hottest table; see migration 0002 for its HOT-friendly fillfactor).
    # A NULL latest week keeps the stored streak.
    UPSERT_PROGRESS = """
        INSERT INTO progress AS p (person, thanks_received, thanks_given, asks, offers,
                                   people_helped, teams_helped, streak_weeks, longest_streak,
                                   last_help_week)
        SELECT * FROM unnest($1::progress_row[])
        ON CONFLICT (person) DO UPDATE SET
            thanks_received = p.thanks_received + EXCLUDED.thanks_received,
            thanks_given = p.thanks_given + EXCLUDED.thanks_given,
            asks = p.asks + EXCLUDED.asks,
            offers = p.offers + EXCLUDED.offers,
            people_helped = p.people_helped + EXCLUDED.people_helped,
            teams_helped = p.teams_helped + EXCLUDED.teams_helped,
            streak_weeks = CASE WHEN EXCLUDED.last_help_week IS NULL THEN p.streak_weeks
                                ELSE EXCLUDED.streak_weeks END,
            longest_streak = greatest(p.longest_streak, EXCLUDED.longest_streak),
            last_help_week = coalesce(EXCLUDED.last_help_week, p.last_help_week),
            updated_at = now()
        RETURNING p.person, p.thanks_received, p.thanks_given, p.asks, p.offers,
                  p.people_helped, p.teams_helped, p.streak_weeks, p.longest_streak,
                  p.last_help_week
    """
    GET_COUNTS = "SELECT * FROM progress WHERE person = ANY($1::text[])"
    INSERT_MILESTONES = """
        INSERT INTO milestones (id, person, team, rule_id, scope, level, size, title, themes,
                                reached_at)
        SELECT id, person, team, rule_id, scope, level, size, title,
               CASE WHEN themed THEN ARRAY[scope] ELSE '{}'::text[] END, reached_at
        FROM unnest($1::milestone_row[])
        ON CONFLICT DO NOTHING
        RETURNING id
    """
    PERSON_MILESTONES = """
        SELECT * FROM milestones WHERE person = $1 ORDER BY reached_at DESC, id DESC LIMIT 200
    """
    LIST_MILESTONES = """
        SELECT * FROM milestones
        WHERE ($1::text IS NULL OR team = $1)
          AND ($2::text IS NULL OR themes @> ARRAY[$2::text])
          AND ($3::timestamptz IS NULL OR (reached_at, id) < ($3, $4::text))
        ORDER BY reached_at DESC, id DESC
        LIMIT $5
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # people
    async def get_people(self, ids: Sequence[str], *, lock: bool = False) -> dict[str, Person]:
        rows = await self.conn.fetch(
            self.LOCK_AND_GET_PEOPLE if lock else self.GET_PEOPLE, list(ids)
        )
        return {r["id"]: _person(r) for r in rows}

    async def upsert_person(self, person: Person) -> None:
        p = person
        await self.conn.execute(
            self.UPSERT_PERSON,
            p.id,
            p.name,
            p.email,
            p.team,
            p.manager,
            p.timezone,
            p.locale,
            p.active,
        )

    async def lock_people(self, ids: Sequence[str]) -> None:
        await self.conn.execute(self.LOCK_PEOPLE, list(ids))

    async def erase_person(self, person_id: str, *, token: str) -> None:
        for statement in self.ERASE_OWN:
            await self.conn.execute(statement, person_id)
        for statement in self.ERASE_SHARED:
            await self.conn.execute(statement, person_id, token)

    # asks and offers
    async def add_ask(self, ask: Ask) -> None:
        a = ask
        await self.conn.execute(
            self.INSERT_ASK,
            a.id,
            a.asker,
            a.asker_team,
            a.title,
            a.details,
            list(a.themes),
            str(a.size),
            str(a.status),
            a.created_at,
            a.expires_at,
        )

    async def get_ask(self, ask_id: str, *, for_update: bool = False) -> Ask | None:
        row = await self.conn.fetchrow(
            self.GET_ASK_FOR_UPDATE if for_update else self.GET_ASK, ask_id
        )
        return _ask(row) if row else None

    async def save_ask(self, ask: Ask) -> None:
        await self.conn.execute(
            self.SAVE_ASK,
            ask.id,
            str(ask.status),
            ask.accepted_offer_id,
            ask.accepted_helper,
            ask.closed_at,
        )

    async def get_asks(self, ids: Sequence[str]) -> dict[str, Ask]:
        return {r["id"]: _ask(r) for r in await self.conn.fetch(self.GET_ASKS, list(ids))}

    async def list_open_asks(
        self, *, theme: str | None, size: AskSize | None, page: PageRequest
    ) -> Page[Ask]:
        rows = await self.conn.fetch(
            self.LIST_OPEN_ASKS, theme, str(size) if size else None, *_cursor_args(page)
        )
        return _page(rows, page, _ask, "created_at")

    async def expire_due_asks(self, *, now: datetime, limit: int) -> list[Ask]:
        rows = await self.conn.fetch(self.EXPIRE_DUE, now, limit)
        return [_ask(r) for r in rows]

    async def add_offer(self, offer: Offer) -> bool:
        o = offer
        inserted = await self.conn.fetchval(
            self.INSERT_OFFER,
            o.id,
            o.helper,
            o.ask_id,
            list(o.themes),
            o.message,
            o.origin,
            o.external_id,
            o.created_at,
        )
        return inserted is not None

    async def get_offer(self, offer_id: str) -> Offer | None:
        row = await self.conn.fetchrow(self.GET_OFFER, offer_id)
        return _offer(row) if row else None

    async def find_offer(self, *, origin: str, external_id: str) -> Offer | None:
        row = await self.conn.fetchrow(self.FIND_OFFER, origin, external_id)
        return _offer(row) if row else None

    # thanks
    async def add_thanks(self, thanks: Sequence[Thanks]) -> set[str]:
        if not thanks:
            return set()
        rows = await self.conn.fetch(
            self.INSERT_THANKS,
            [
                (
                    t.id,
                    t.giver,
                    t.helper,
                    t.giver_team,
                    t.helper_team,
                    t.message,
                    _join_themes(t.themes),
                    t.ask_id,
                    t.offer_id,
                    str(t.visibility),
                    t.discounted,
                    t.origin,
                    t.external_id,
                    t.given_at,
                )
                for t in thanks
            ],
        )
        return {r["id"] for r in rows}

    async def find_thanks(self, *, origin: str, external_id: str) -> Thanks | None:
        row = await self.conn.fetchrow(self.FIND_THANKS, origin, external_id)
        return _thanks(row) if row else None

    async def get_thanks(self, ids: Sequence[str]) -> dict[str, Thanks]:
        return {r["id"]: _thanks(r) for r in await self.conn.fetch(self.GET_THANKS, list(ids))}

    async def allowance_usage(
        self, *, giver: str, helper: str, windows: AllowanceWindows, origin: str | None
    ) -> Usage:
        spans: list[tuple[datetime, datetime, str | None]] = [
            (w.start, w.end, None) for _, w in windows.limits
        ]
        if windows.pair is not None:
            spans.append((windows.pair[1].start, windows.pair[1].end, helper))
        if not spans:
            return Usage(given=())
        rows = await self.conn.fetch(
            self.ALLOWANCE_USAGE,
            giver,
            [s for s, _, _ in spans],
            [e for _, e, _ in spans],
            [p for _, _, p in spans],
            origin,
        )
        used = [int(r["used"]) for r in rows]
        if windows.pair is not None:
            return Usage(given=tuple(used[:-1]), to_pair=used[-1])
        return Usage(given=tuple(used))

    async def pair_counts(self, pairs: Sequence[tuple[str, str, datetime]]) -> list[int]:
        if not pairs:
            return []
        rows = await self.conn.fetch(self.PAIR_COUNTS, list(pairs))
        return [int(r["n"]) for r in rows]

    async def ring_edges(self, *, start: str, since: datetime, depth: int) -> dict[str, set[str]]:
        edges: dict[str, set[str]] = {}
        for r in await self.conn.fetch(self.RING_EDGES, start, since, depth):
            edges.setdefault(r["giver"], set()).add(r["helper"])
        return edges

    async def list_public_thanks(
        self, *, team: str | None, theme: str | None, page: PageRequest
    ) -> Page[Thanks]:
        rows = await self.conn.fetch(self.LIST_PUBLIC_THANKS, team, theme, *_cursor_args(page))
        return _page(rows, page, _thanks, "given_at")

    async def list_person_thanks(
        self,
        *,
        person: str,
        direction: Direction,
        viewer: str | None,
        admin: bool,
        page: PageRequest,
    ) -> Page[Thanks]:
        sql = self.LIST_THANKS_RECEIVED if direction == "received" else self.LIST_THANKS_GIVEN
        rows = await self.conn.fetch(sql, person, admin, viewer, *_cursor_args(page))
        return _page(rows, page, _thanks, "given_at")

    async def theme_counts(self) -> list[tuple[str, int]]:
        return [(r["theme"], int(r["n"])) for r in await self.conn.fetch(self.THEME_COUNTS)]

    # progress and milestones
    async def apply_progress(self, updates: Sequence[ProgressUpdate]) -> dict[str, Progress]:
        deltas = progress_rules.fold(updates)
        if not deltas:
            return {}
        pairs = [(p, g) for p, d in deltas.items() for g in d.helped_people]
        teams = [(p, t) for p, d in deltas.items() for t in d.helped_teams]
        weeks = [(p, w) for p, d in deltas.items() for w in d.weeks]
        incs = [(p, t, n) for p, d in deltas.items() for t, n in d.themes.items()]
        facts: dict[str, Row] = {}
        if pairs or teams or weeks or incs:  # asks and offers only touch counters
            rows = await self.conn.fetch(self.APPLY_FACTS, pairs, teams, weeks, incs)
            facts = {r["person"]: r for r in rows}
        people = sorted(deltas)  # row locks in one order whoever else writes progress
        new_people: list[int] = []
        new_teams: list[int] = []
        streak: list[int] = []
        longest: list[int] = []
        latest: list[date | None] = []
        runs: dict[str, list[int]] = {}
        for person in people:
            f = facts.get(person)
            if f is None:
                new_people.append(0)
                new_teams.append(0)
                streak.append(0)
                longest.append(0)
                latest.append(None)
                continue
            new_people.append(f["new_people"])
            new_teams.append(f["new_teams"])
            added = f["new_weeks"]
            if not added:
                streak.append(0)
                longest.append(0)
                latest.append(None)
                continue
            all_weeks = {*(f["old_weeks"] or ()), *added}
            runs[person] = person_runs = [run_length(all_weeks, w) for w in added]
            last = max(added) if f["last_help_week"] is None else max(*added, f["last_help_week"])
            streak.append(run_length(all_weeks, last))
            longest.append(max(f["longest_streak"] or 0, *person_runs))
            latest.append(last)
        counters = [deltas[p].counters for p in people]
        rows = await self.conn.fetch(
            self.UPSERT_PROGRESS,
            [
                (p, c["thanks_received"], c["thanks_given"], c["asks"], c["offers"], *rest)
                for p, c, *rest in zip(
                    people, counters, new_people, new_teams, streak, longest, latest, strict=True
                )
            ],
        )
        out: dict[str, Progress] = {}
        for r in rows:
            person = r["person"]
            f = facts.get(person)
            out[person] = progress_rules.result(
                deltas[person],
                counts=_counts(r),
                new_people=f["new_people"] if f is not None else 0,
                new_teams=f["new_teams"] if f is not None else 0,
                themes=dict(zip(f["theme_names"] or (), f["theme_counts"] or (), strict=True))
                if f is not None
                else {},
                new_week_runs=runs.get(person, ()),
            )
        return out

    async def get_counts(self, ids: Sequence[str]) -> dict[str, Counts]:
        rows = await self.conn.fetch(self.GET_COUNTS, list(ids))
        return {r["person"]: _counts(r) for r in rows}

    async def add_milestones(self, milestones: Sequence[Milestone]) -> list[Milestone]:
        if not milestones:
            return []
        rows = await self.conn.fetch(
            self.INSERT_MILESTONES,
            [
                (
                    m.id,
                    m.person,
                    m.team,
                    m.rule_id,
                    m.scope,
                    m.level,
                    str(m.size),
                    m.title,
                    bool(m.themes),
                    m.reached_at,
                )
                for m in milestones
            ],
        )
        new = {r["id"] for r in rows}
        return [m for m in milestones if m.id in new]

    async def person_milestones(self, person: str) -> list[Milestone]:
        return [_milestone(r) for r in await self.conn.fetch(self.PERSON_MILESTONES, person)]

    async def list_milestones(
        self, *, team: str | None, theme: str | None, page: PageRequest
    ) -> Page[Milestone]:
        rows = await self.conn.fetch(self.LIST_MILESTONES, team, theme, *_cursor_args(page))
        return _page(rows, page, _milestone, "reached_at")


def _conforms(repo: SqlRepository) -> Repository:
    return repo  # mypy proves the SQL adapter implements the whole port
