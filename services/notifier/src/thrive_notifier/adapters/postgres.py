"""The Postgres Repository: SQL as named constants, bulk statements for the fan-out path."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson
from thrive_shared.contracts import CelebrationDelivered, Envelope
from thrive_shared.contracts.topics import physical
from thrive_shared.outbox import enqueue_many, enqueue_rendered

from thrive_notifier.adapters.memory import decode_cursor, encode_cursor
from thrive_notifier.domain.attention import local_now
from thrive_notifier.domain.audience import AudienceFacts, AudienceQuery
from thrive_notifier.domain.digest import DigestEntry
from thrive_notifier.domain.messages import REDACTED_TITLE, Message
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    DigestFrequency,
    Follow,
    FollowKind,
    Kind,
    Mute,
    MuteKind,
    Preferences,
    Profile,
    Recipient,
    RecipientKind,
    TraceContext,
)
from thrive_notifier.service_layer.ports import (
    Announcement,
    AttemptRecord,
    AudienceData,
    ClaimedDelivery,
    Deferral,
    DueReminder,
    InboxItem,
    LargeFanOutResult,
    NewDelivery,
    Page,
    ParkedDelivery,
    PersonRecord,
)


def _as_texts(args: list[Any]) -> list[Any] | None:
    """COMMIT_FANOUT's parameters $1..$16 as COMMIT_FANOUT_TEXT takes them (each list one
    SEP-separated text), or None when a value would not survive that: holds SEP, or is an
    empty text where no value may be NULL."""
    out: list[Any] = []
    for n, value in enumerate(args, 1):
        if not isinstance(value, list):
            out.append(value)  # $10: now
            continue
        if n == 8:
            out.append(SEP.join(map(str, value)))
            continue
        if n == 9:
            out.append(SEP.join("t" if v else "f" for v in value))
            continue
        if n == 15:
            out.append(SEP.join(d.isoformat() for d in value))
            continue
        nullable = n in (11, 12)
        texts = ["" if v is None else v for v in value] if nullable else value
        if not nullable and not all(texts):
            return None
        joined = SEP.join(texts)
        if texts and joined.count(SEP) != len(texts) - 1:
            return None
        out.append(joined)
    return out


# The channels LARGE_FANOUT_SENDS reserves (what a delivery worker sends).
SENDING = frozenset({Channel.EMAIL, Channel.WEBHOOK})

# Timezones LARGE_FANOUT has been given local times for (it names any other it meets).
_ZONES: set[str] = {"UTC"}


def _zone_table(now: datetime) -> list[list[Any]]:
    """LARGE_FANOUT's $12..$14: each known zone's local time and day at `now`, by the
    domain's rules (an unknown name is UTC there, as everywhere in the notifier)."""
    names = sorted(_ZONES)
    local = [local_now(now, n) for n in names]
    return [names, [t.time() for t in local], [t.date() for t in local]]


def person_digest(person: str) -> bytes:
    """What is kept of an erased person: a digest, to refuse their replayed events."""
    return hashlib.sha256(person.encode()).digest()


# Parameters as arrays (asyncpg encodes them element by element)...
_ARRAYS = {
    **{f"t{n}": f"${n}::text[]" for n in range(1, 8)},
    "i8": "$8::int[]",
    "b9": "$9::bool[]",
    "n11": "$11::text[]",
    "n12": "$12::text[]",
    "m13": "$13::text[]",
    "s14": "$14::text[]",
    "d15": "$15::date[]",
    "s16": "$16::text[]",
}
# ... or, much cheaper to send, each column as one text of SEP-separated values, split by
# Postgres (an empty value of traceparent/tracestate is NULL). Used when no value holds
# SEP; messages are JSON, where a control character is always escaped.
SEP = "\x1f"
_SPLIT = "string_to_array(${n}::text, E'\\x1f'{null})"
_TEXTS = {
    **{f"t{n}": _SPLIT.format(n=n, null="") for n in range(1, 8)},
    "i8": _SPLIT.format(n=8, null="") + "::int[]",
    "b9": _SPLIT.format(n=9, null="") + "::bool[]",
    "n11": _SPLIT.format(n=11, null=", ''"),
    "n12": _SPLIT.format(n=12, null=", ''"),
    "m13": _SPLIT.format(n=13, null=""),
    "s14": _SPLIT.format(n=14, null=""),
    "d15": _SPLIT.format(n=15, null="") + "::date[]",
    "s16": _SPLIT.format(n=16, null=""),
}


class SQL:
    """Every statement the notifier runs, by name."""

    UPSERT_PERSON = """
        INSERT INTO person (person, name, email, team, timezone, locale, active, updated_at)
        SELECT $1, $2, $3, $4, $5, $6, $7, now()
        WHERE NOT EXISTS (SELECT 1 FROM erased_person WHERE person_digest = $8)
        ON CONFLICT (person) DO UPDATE SET
            name = EXCLUDED.name, email = EXCLUDED.email, team = EXCLUDED.team,
            timezone = EXCLUDED.timezone, locale = EXCLUDED.locale, active = EXCLUDED.active,
            updated_at = now()
    """
    ERASE_REMEMBER = "INSERT INTO erased_person (person_digest) VALUES ($1) ON CONFLICT DO NOTHING"
    # Each takes the person id as $1.
    ERASE_ROWS = (
        "DELETE FROM person WHERE person = $1",
        "DELETE FROM preferences WHERE person = $1",
        "DELETE FROM follow WHERE person = $1 OR (kind = 'person' AND target = $1)",
        "DELETE FROM mute WHERE person = $1 OR (kind = 'person' AND target = $1)",
        "DELETE FROM offer_history WHERE person = $1",
        "DELETE FROM ask_followup WHERE asker = $1 OR helper = $1",
        "DELETE FROM budget_spend WHERE person = $1",
        "DELETE FROM budget_used WHERE person = $1",
        "DELETE FROM inbox_item WHERE person = $1",
        "DELETE FROM digest_item WHERE person = $1",
        "DELETE FROM digest WHERE person = $1",
    )
    # What others were told about the erased person is redacted; $2 is the neutral title.
    ERASE_REDACT = (
        """UPDATE inbox_item SET subject = NULL, title = $2, body = '', payload = '{}'::jsonb
            WHERE subject = $1""",
        """UPDATE digest_item SET subject = NULL, title = $2, payload = '{}'::jsonb
            WHERE subject = $1""",
        """UPDATE delivery SET payload = payload || jsonb_build_object(
                'subject', NULL, 'title', $2::text, 'body', '')
            WHERE state IN ('pending', 'failed', 'parked') AND payload ->> 'subject' = $1""",
    )
    # The ledger keeps its rows (they prove what was sent) under a random, unlinkable name.
    ERASE_LEDGER = """UPDATE delivery SET recipient = $2, payload = '{}'::jsonb, last_error = NULL,
                state = CASE WHEN state IN ('pending', 'failed', 'parked') THEN 'cancelled'
                             ELSE state END
            WHERE recipient_kind = 'person' AND recipient = $1"""
    PROFILES = """
        SELECT u.p AS person, pe.name, pe.email, pe.team, pe.timezone, pe.active,
               pr.daily_budget, pr.quiet_start, pr.quiet_end, pr.timezone AS pref_timezone,
               pr.channels, pr.digest_frequency, pr.digest_hour, pr.webhook_url,
               EXISTS (SELECT 1 FROM erased_person e
                       WHERE e.person_digest = sha256(convert_to(u.p, 'UTF8'))) AS erased
        FROM unnest($1::text[]) AS u(p)
        LEFT JOIN person pe ON pe.person = u.p
        LEFT JOIN preferences pr ON pr.person = u.p
    """
    # PROFILES plus each person's mutes and budget use around $2 (a UTC date; everyone's
    # local day is within a day of it): one round trip for a whole batch of celebrations.
    AUDIENCE_DATA = PROFILES.replace(
        "AS erased",
        """AS erased,
               ARRAY(SELECT m.kind || ':' || m.target FROM mute m WHERE m.person = u.p
                     ORDER BY m.kind, m.target) AS mutes,
               ARRAY(SELECT b.day::text || '=' || sum(b.n) FROM budget_used b
                     WHERE b.person = u.p AND b.day BETWEEN $2::date - 1 AND $2::date + 1
                     GROUP BY b.day) AS used""",
    )
    ENQUEUE = "INSERT INTO fanout_queue (celebration) SELECT c::jsonb FROM unnest($1::text[]) AS c"
    TAKE_QUEUED = """
        DELETE FROM fanout_queue WHERE id IN (
            SELECT id FROM fanout_queue ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING id, celebration
    """
    GET_PREFERENCES = "SELECT * FROM preferences WHERE person = $1"
    PUT_PREFERENCES = """
        INSERT INTO preferences (person, daily_budget, quiet_start, quiet_end, timezone, channels,
                                 digest_frequency, digest_hour, webhook_url, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
        ON CONFLICT (person) DO UPDATE SET
            daily_budget = EXCLUDED.daily_budget, quiet_start = EXCLUDED.quiet_start,
            quiet_end = EXCLUDED.quiet_end, timezone = EXCLUDED.timezone,
            channels = EXCLUDED.channels, digest_frequency = EXCLUDED.digest_frequency,
            digest_hour = EXCLUDED.digest_hour, webhook_url = EXCLUDED.webhook_url,
            updated_at = now()
    """
    ADD_FOLLOW = """
        INSERT INTO follow (person, kind, target) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING 1
    """
    REMOVE_FOLLOW = "DELETE FROM follow WHERE person = $1 AND kind = $2 AND target = $3 RETURNING 1"
    LIST_FOLLOWS = """
        SELECT kind, target FROM follow
        WHERE person = $1 AND ($2::text IS NULL OR (kind, target) > ($2, $3))
        ORDER BY kind, target LIMIT $4
    """
    ADD_MUTE = """
        INSERT INTO mute (person, kind, target) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING 1
    """
    REMOVE_MUTE = "DELETE FROM mute WHERE person = $1 AND kind = $2 AND target = $3 RETURNING 1"
    LIST_MUTES = """
        SELECT kind, target FROM mute
        WHERE person = $1 AND ($2::text IS NULL OR (kind, target) > ($2, $3))
        ORDER BY kind, target LIMIT $4
    """
    AUDIENCE = """
        SELECT 'person' AS src, person FROM follow WHERE kind = 'person' AND target = $1
        UNION ALL
        SELECT 'team', person FROM follow WHERE kind = 'team' AND target = $2
        UNION ALL
        SELECT 'theme', person FROM follow WHERE kind = 'theme' AND target = ANY($3::text[])
        UNION ALL
        SELECT 'offer', person FROM offer_history WHERE theme = ANY($4::text[])
    """
    TEAM_CHANNELS = "SELECT team, webhook_url FROM team_channel WHERE team = ANY($1::text[])"
    SET_TEAM_CHANNEL = """
        INSERT INTO team_channel (team, webhook_url) VALUES ($1, $2)
        ON CONFLICT (team) DO UPDATE SET webhook_url = EXCLUDED.webhook_url, updated_at = now()
    """
    DELETE_TEAM_CHANNEL = "DELETE FROM team_channel WHERE team = $1"
    RECORD_OFFER = """
        INSERT INTO offer_history (person, theme, offers, last_offered_at)
        SELECT $1, t, 1, $3 FROM unnest($2::text[]) AS t
        ON CONFLICT (theme, person) DO UPDATE SET
            offers = offer_history.offers + 1,
            last_offered_at = greatest(offer_history.last_offered_at, EXCLUDED.last_offered_at)
    """
    ASK_REQUESTED = """
        INSERT INTO ask_followup (ask_id, asker, title) VALUES ($1, $2, $3)
        ON CONFLICT (ask_id) DO UPDATE SET asker = EXCLUDED.asker, title = EXCLUDED.title
    """
    ASK_RESOLVED = """
        INSERT INTO ask_followup (ask_id, asker, helper, resolved_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (ask_id) DO UPDATE SET asker = EXCLUDED.asker, helper = EXCLUDED.helper,
            resolved_at = coalesce(ask_followup.resolved_at, EXCLUDED.resolved_at)
    """
    ASK_CLOSED = "DELETE FROM ask_followup WHERE ask_id = $1"
    ASK_THANKED = """
        INSERT INTO ask_followup (ask_id, thanked_at) VALUES ($1, $2)
        ON CONFLICT (ask_id) DO UPDATE SET
            thanked_at = coalesce(ask_followup.thanked_at, EXCLUDED.thanked_at)
    """
    DUE_REMINDERS = """
        SELECT ask_id, asker, helper, coalesce(title, 'your ask') AS title, resolved_at
        FROM ask_followup
        WHERE thanked_at IS NULL AND reminded_at IS NULL AND resolved_at IS NOT NULL
          AND resolved_at <= $1 AND asker IS NOT NULL
        ORDER BY resolved_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    """
    MARK_REMINDED = "UPDATE ask_followup SET reminded_at = $2 WHERE ask_id = $1"
    PRUNE_BUDGET = (
        "DELETE FROM budget_spend WHERE day < $1",
        "DELETE FROM budget_used WHERE day < $1",
    )
    # Adds the budget_spend rows a statement's `spend` CTE really inserted (RETURNING person,
    # day) to this backend's counters (migration 0005: no two transactions share a row).
    _COUNT_SPEND = """, counted AS (
            INSERT INTO budget_used (person, day, writer, n)
            SELECT s.person, s.day, pg_backend_pid(), count(*) FROM spend s
            GROUP BY s.person, s.day
            ON CONFLICT (person, day, writer) DO UPDATE SET n = budget_used.n + EXCLUDED.n
        )"""
    # A fan-out tells many people the same thing: each distinct message ($13) is parsed and
    # taken apart once; a delivery names its message by position ($8).
    _DELIVER = """
        msgs AS (
            SELECT t.n, j.p, j.p ->> 'kind' AS kind, j.p ->> 'about' AS about,
                   j.p ->> 'subject' AS subject, j.p ->> 'title' AS title,
                   coalesce(j.p ->> 'body', '') AS body,
                   ARRAY(SELECT jsonb_array_elements_text(j.p -> 'themes')) AS themes
            FROM unnest({m13}) WITH ORDINALITY AS t(m, n),
                 LATERAL (SELECT t.m::jsonb AS p) AS j
        ), input AS (
            SELECT * FROM unnest({t1}, {t2}, {t3}, {t4}, {t5}, {t6}, {t7}, {i8}, {b9}, {n11},
                                 {n12})
                AS u(event_id, recipient_kind, recipient, channel, ikey, kind, state, msg,
                     quiet, traceparent, tracestate)
        ), ins AS (
            INSERT INTO delivery (event_id, recipient_kind, recipient, channel, idempotency_key,
                                  kind, state, payload, next_attempt_at, delivered_at,
                                  traceparent, tracestate)
            -- An in-app row is delivered as it is written: its content lives in the inbox.
            SELECT i.event_id, i.recipient_kind, i.recipient, i.channel, i.ikey, i.kind, i.state,
                   CASE WHEN i.channel = 'in_app' THEN '{{}}'::jsonb ELSE m.p END, $10,
                   CASE WHEN i.state = 'delivered' THEN $10::timestamptz END,
                   i.traceparent, i.tracestate
            FROM input i JOIN msgs m ON m.n = i.msg
            ON CONFLICT DO NOTHING
            RETURNING id, idempotency_key, recipient_kind, recipient, channel
        ), inbox AS (
            INSERT INTO inbox_item (person, delivery_id, kind, about, subject, title, body,
                                    themes, payload, quiet, created_at)
            SELECT ins.recipient, ins.id, m.kind, m.about, m.subject, m.title, m.body,
                   m.themes, m.p, i.quiet, $10
            FROM ins JOIN input i ON i.ikey = ins.idempotency_key
                     JOIN msgs m ON m.n = i.msg
            WHERE ins.channel = 'in_app' AND ins.recipient_kind = 'person'
        )
    """
    RESERVE = "".join(("WITH ", _DELIVER.format(**_ARRAYS), "SELECT id, idempotency_key FROM ins"))
    # Everything one fan-out writes, in one statement: budget counted for the live pings,
    # deferrals into digests, deliveries reserved (and in-app ones into the inbox). Returns
    # how many deliveries were new and, only when some were not ($24 = how many were sent),
    # the keys of the new ones.
    _COMMIT_FANOUT = "".join(
        (
            """WITH spend AS (
            INSERT INTO budget_spend (person, day, event_id)
            SELECT p, d, e FROM unnest({s14}, {d15}, {s16}) AS s(p, d, e)
            ON CONFLICT DO NOTHING
            RETURNING person, day
        )""",
            _COUNT_SPEND,
            """, deferred AS (
            INSERT INTO digest_item (person, event_id, kind, reason, subject, title, themes,
                                     payload, created_at)
            SELECT f.person, f.event_id, f.kind, f.reason, f.subject, f.title,
                   ARRAY(SELECT jsonb_array_elements_text(f.payload::jsonb -> 'themes')),
                   f.payload::jsonb, $10
            FROM unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
                        $22::text[], $23::text[])
                AS f(person, event_id, kind, reason, subject, title, payload)
            ON CONFLICT (person, event_id) DO NOTHING
            RETURNING 1
        ), """,
            _DELIVER,
            """, created AS (SELECT count(*) AS n FROM ins)
            SELECT c.n, CASE WHEN c.n < $24::bigint
                             THEN (SELECT array_agg(idempotency_key) FROM ins) END AS keys
            FROM created c""",
        )
    )
    # A large milestone, set-based (the rules of fanout._Batch.plan, in SQL): its audience
    # (the subject, followers of the person, the team and the themes) minus everyone whose
    # mutes cover it; erased and inactive people skipped; each person's preferences (or the
    # defaults, $15..$21) and local time and day from $12..$14 (computed in Python with the
    # domain's zone rules); quiet hours, then budget (today's use, this transaction's
    # included), then digest or quiet inbox; ledger keys hashed as DeliveryKey does. If a
    # reachable person's timezone is not in $12, nothing is written and it is named in
    # `unknown_zones` (the caller computes it and runs the statement again).
    _LARGE_FANOUT = "".join(
        (
            """
        WITH zones AS (
            SELECT * FROM unnest($12::text[], $13::time[], $14::date[])
                AS z(name, local_time, local_day)
        ), cand AS (
            SELECT $2::text AS person
            UNION SELECT person FROM follow WHERE kind = 'person' AND target = $2
            UNION SELECT person FROM follow WHERE kind = 'team' AND target = $3
            UNION SELECT person FROM follow WHERE kind = 'theme' AND target = ANY($4::text[])
        ), people AS (
            SELECT c.person, pe.team, pe.email,
                   EXISTS (SELECT 1 FROM erased_person e
                           WHERE e.person_digest = sha256(convert_to(c.person, 'UTF8')))
                       OR NOT coalesce(pe.active, true) AS skipped,
                   pr.person IS NULL AS dflt, pr.daily_budget, pr.quiet_start, pr.quiet_end,
                   pr.channels, pr.digest_frequency, pr.webhook_url,
                   coalesce(nullif(CASE WHEN pr.person IS NULL THEN $18::text
                                        ELSE pr.timezone END, ''),
                            nullif(pe.timezone, ''), 'UTC') AS tz
            FROM cand c
            LEFT JOIN person pe ON pe.person = c.person
            /*PREFERENCES*/
            WHERE NOT EXISTS (
                SELECT 1 FROM mute m WHERE m.person = c.person AND (
                    (m.kind = 'person' AND m.target = ANY($5::text[]))
                    OR (m.kind = 'theme' AND m.target = ANY($4::text[]))
                    OR (m.kind = 'kind' AND m.target = $6)))
        ), reach AS (
            SELECT p.person, p.team, p.email, p.tz, z.local_time, z.local_day,
                   CASE WHEN p.dflt THEN $15::int ELSE p.daily_budget END AS budget,
                   CASE WHEN p.dflt THEN $16::time ELSE p.quiet_start END AS qs,
                   CASE WHEN p.dflt THEN $17::time ELSE p.quiet_end END AS qe,
                   CASE WHEN p.dflt THEN $19::text[] ELSE p.channels END AS channels,
                   CASE WHEN p.dflt THEN $20::text ELSE p.digest_frequency END AS frequency,
                   CASE WHEN p.dflt THEN $21::text ELSE p.webhook_url END AS webhook_url
            FROM people p LEFT JOIN zones z ON z.name = p.tz
            WHERE NOT p.skipped
        ), ok AS (
            SELECT NOT EXISTS (SELECT 1 FROM reach WHERE local_day IS NULL) AS ok
        ), reasoned AS MATERIALIZED (  -- each person's budget use counted once
            SELECT r.*,
                   CASE WHEN r.qs IS NOT NULL AND r.qe IS NOT NULL AND r.qs <> r.qe
                             AND CASE WHEN r.qs < r.qe
                                      THEN r.local_time >= r.qs AND r.local_time < r.qe
                                      ELSE r.local_time >= r.qs OR r.local_time < r.qe END
                        THEN 'quiet_hours'
                        WHEN r.budget <= 0 THEN 'budget'
                        WHEN (SELECT coalesce(sum(b.n), 0) FROM budget_used b
                              WHERE b.person = r.person AND b.day = r.local_day) >= r.budget
                             -- this event's ping already counted (its sends went first): live
                             AND NOT EXISTS (SELECT 1 FROM budget_spend s
                                             WHERE s.person = r.person AND s.day = r.local_day
                                               AND s.event_id = $1)
                        THEN 'budget'
                   END AS reason
            FROM reach r
        ), plan AS (
            SELECT r.*, r.person = $2 AS mine,
                   CASE WHEN r.reason IS NULL THEN 'live'
                        WHEN r.frequency = 'off' THEN 'quiet'
                        ELSE 'deferred' END AS mode
            FROM reasoned r
        ), msgs AS (
            SELECT v.mine, v.p, v.p ->> 'kind' AS kind, v.p ->> 'about' AS about,
                   v.p ->> 'subject' AS subject, v.p ->> 'title' AS title,
                   coalesce(v.p ->> 'body', '') AS body,
                   ARRAY(SELECT jsonb_array_elements_text(v.p -> 'themes')) AS themes
            FROM (VALUES (true, $8::text::jsonb), (false, $9::text::jsonb)) AS v(mine, p)
        ), spend AS (
            INSERT INTO budget_spend (person, day, event_id)
            SELECT pl.person, pl.local_day, $1 FROM plan pl, ok
            WHERE ok.ok AND pl.mode = 'live'
            ON CONFLICT DO NOTHING
            RETURNING person, day
        )""",
            _COUNT_SPEND,
            """, deferred AS (
            INSERT INTO digest_item (person, event_id, kind, reason, subject, title, themes,
                                     payload, created_at)
            SELECT pl.person, $1, m.kind, pl.reason, m.subject, m.title, m.themes, m.p, $7
            FROM plan pl JOIN msgs m ON m.mine = pl.mine, ok
            WHERE ok.ok AND pl.mode = 'deferred'
            ON CONFLICT (person, event_id) DO NOTHING
        ), input AS (
            SELECT 'person' AS rkind, pl.person AS recipient, ch.channel, pl.mine,
                   pl.mode = 'quiet' AS quiet, pl.team
            FROM plan pl CROSS JOIN LATERAL (
                /*IN_APP*/
                SELECT 'email' AS channel WHERE pl.mode = 'live'
                    AND 'email' = ANY(pl.channels) AND pl.email <> ''
                UNION ALL SELECT 'webhook' WHERE pl.mode = 'live'
                    AND 'webhook' = ANY(pl.channels) AND pl.webhook_url <> ''
            ) AS ch
            WHERE pl.mode <> 'deferred'
            UNION ALL
            SELECT 'team', t.team, 'webhook', false, false, t.team
            FROM team_channel t WHERE t.team = $3
        ), ins AS (
            INSERT INTO delivery (event_id, recipient_kind, recipient, channel, idempotency_key,
                                  kind, state, payload, next_attempt_at, delivered_at,
                                  traceparent, tracestate)
            SELECT $1, i.rkind, i.recipient, i.channel,
                   left(encode(sha256(convert_to(
                       concat_ws(E'\\x1f', $1::text, i.rkind, i.recipient, i.channel), 'UTF8')),
                       'hex'), 40),
                   m.kind, CASE WHEN i.channel = 'in_app' THEN 'delivered' ELSE 'pending' END,
                   CASE WHEN i.channel = 'in_app' THEN '{}'::jsonb ELSE m.p END, $7,
                   CASE WHEN i.channel = 'in_app' THEN $7::timestamptz END,
                   CASE WHEN i.channel <> 'in_app' THEN $10::text END,
                   CASE WHEN i.channel <> 'in_app' THEN $11::text END
            FROM input i JOIN msgs m ON m.mine = i.mine, ok
            WHERE ok.ok
            ON CONFLICT DO NOTHING
            RETURNING id, recipient_kind, recipient, channel, idempotency_key
        ), created AS (
            SELECT ins.id, ins.recipient, ins.channel, ins.idempotency_key, i.mine, i.quiet,
                   i.team, i.rkind
            FROM ins JOIN input i ON i.rkind = ins.recipient_kind
                                 AND i.recipient = ins.recipient AND i.channel = ins.channel
        ), inbox AS (
            INSERT INTO inbox_item (person, delivery_id, kind, about, subject, title, body,
                                    themes, payload, quiet, created_at)
            SELECT c.recipient, c.id, m.kind, m.about, m.subject, m.title, m.body, m.themes,
                   m.p, c.quiet, $7
            FROM created c JOIN msgs m ON m.mine = c.mine
            WHERE c.channel = 'in_app' AND c.rkind = 'person'
        ), shown AS (
            SELECT * FROM created WHERE channel = 'in_app' AND rkind = 'person' AND NOT quiet
        )
        SELECT ARRAY(SELECT DISTINCT tz FROM reach WHERE local_day IS NULL) AS unknown_zones,
               (SELECT count(*) FROM people WHERE skipped) AS skipped,
               (SELECT count(*) FROM plan WHERE reason = 'budget') AS budget,
               (SELECT count(*) FROM plan WHERE reason = 'quiet_hours') AS quiet_hours,
               ARRAY(SELECT channel || '=' || count(*) FROM created GROUP BY channel)
                   AS created,
               ARRAY(SELECT recipient FROM shown ORDER BY recipient COLLATE "C")
                   AS recipients,
               ARRAY(SELECT team FROM shown ORDER BY recipient COLLATE "C") AS teams,
               ARRAY(SELECT idempotency_key FROM shown ORDER BY recipient COLLATE "C")
                   AS keys,
               ARRAY(SELECT mine FROM shown ORDER BY recipient COLLATE "C") AS mine
    """,
        )
    )
    LARGE_FANOUT = _LARGE_FANOUT.replace(
        "/*PREFERENCES*/", "LEFT JOIN preferences pr ON pr.person = c.person"
    ).replace("/*IN_APP*/", "SELECT 'in_app' AS channel UNION ALL")
    # LARGE_FANOUT's sends only, reserved first (the consumer's transaction), for a large
    # milestone whose in-app rows a fan-out lane writes later: the same rules and keys, for
    # the people whose own preferences name email or webhook (so never the defaults: the
    # caller checks that they name neither) and the team channel. The decision is shared,
    # not taken twice: a live person's budget is spent here, and LARGE_FANOUT, planned at
    # the same instant, finds this event's spend row and keeps them live; a deferred one is
    # still over budget or in quiet hours then (budgets only grow within a day).
    LARGE_FANOUT_SENDS = _LARGE_FANOUT.replace(
        "/*PREFERENCES*/",
        "JOIN preferences pr ON pr.person = c.person"
        " AND pr.channels && ARRAY['email', 'webhook']::text[]",
    ).replace("/*IN_APP*/", "")
    COMMIT_FANOUT = _COMMIT_FANOUT.format(**_ARRAYS)
    COMMIT_FANOUT_TEXT = _COMMIT_FANOUT.format(**_TEXTS)
    DEFER = """
        INSERT INTO digest_item (person, event_id, kind, reason, subject, title, themes, payload,
                                 created_at)
        SELECT u.person, u.event_id, u.kind, u.reason, u.subject, u.title,
               ARRAY(SELECT jsonb_array_elements_text(u.payload::jsonb -> 'themes')),
               u.payload::jsonb, $8
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[]) AS u(person, event_id, kind, reason, subject, title, payload)
        ON CONFLICT (person, event_id) DO NOTHING
    """
    INBOX = """
        SELECT id, kind, about, subject, title, body, themes, quiet, created_at, read_at, payload
        FROM inbox_item
        WHERE person = $1 AND ($2::bool IS NULL OR (read_at IS NULL) = $2)
          AND ($3::bigint IS NULL OR id < $3)
        ORDER BY id DESC LIMIT $4
    """
    MARK_READ = """
        UPDATE inbox_item SET read_at = $3
        WHERE person = $1 AND id = ANY($2::bigint[]) AND read_at IS NULL
    """
    DIGEST_CANDIDATES = """
        SELECT DISTINCT person FROM digest_item WHERE digest_id IS NULL ORDER BY person LIMIT $1
    """
    LAST_DIGEST_DAY = "SELECT max(local_day) FROM digest WHERE person = $1"
    TAKE_DIGEST_ENTRIES = """
        SELECT id, kind, title, themes, created_at FROM digest_item
        WHERE person = $1 AND digest_id IS NULL ORDER BY id
        FOR UPDATE SKIP LOCKED
    """
    CREATE_DIGEST = "INSERT INTO digest (person, local_day, size) VALUES ($1, $2, $3) RETURNING id"
    ASSIGN_DIGEST = "UPDATE digest_item SET digest_id = $1 WHERE id = ANY($2::bigint[])"
    CLAIM = """
        WITH due AS (
            SELECT id FROM delivery
            WHERE state IN ('pending', 'failed') AND next_attempt_at <= $3
              AND channel = ANY($1::text[])
              AND (lease_until IS NULL OR lease_until < $3)
            ORDER BY next_attempt_at, id
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE delivery d
        SET lease_until = $3 + make_interval(secs => $4), attempts = d.attempts + 1
        FROM due WHERE d.id = due.id
        RETURNING d.id, d.event_id, d.recipient_kind, d.recipient, d.channel,
                  d.idempotency_key, d.payload, d.attempts, d.traceparent, d.tracestate,
                  CASE WHEN d.recipient_kind = 'team'
                           THEN (SELECT webhook_url FROM team_channel t WHERE t.team = d.recipient)
                       WHEN d.channel = 'email'
                           THEN (SELECT email FROM person p WHERE p.person = d.recipient)
                       WHEN d.channel = 'webhook'
                           THEN (SELECT webhook_url FROM preferences p WHERE p.person = d.recipient)
                  END AS destination
    """
    # Only the holder of the current attempt may record it: a worker whose lease ran out
    # and whose row was claimed again must not overwrite the newer outcome.
    RECORD = """
        WITH u AS (
            SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::int[],
                                 $6::text[], $7::timestamptz[])
                AS u(id, attempt, state, outcome, status, error, next_at)
        ), upd AS (
            UPDATE delivery d SET
                state = u.state, lease_until = NULL, last_error = u.error,
                delivered_at = CASE WHEN u.state = 'delivered' THEN $8 ELSE d.delivered_at END,
                next_attempt_at = coalesce(u.next_at, d.next_attempt_at)
            FROM u WHERE d.id = u.id AND d.attempts = u.attempt AND d.state <> 'cancelled'
            RETURNING d.id
        )
        INSERT INTO delivery_attempt (delivery_id, attempt, at, outcome, status, error)
        SELECT u.id, u.attempt, $8, u.outcome, u.status, u.error FROM u
        WHERE EXISTS (SELECT 1 FROM delivery d WHERE d.id = u.id)
    """
    PARKED = """
        SELECT id, event_id, recipient_kind, recipient, channel, kind, attempts, last_error,
               created_at
        FROM delivery WHERE state = 'parked' ORDER BY id LIMIT $1
    """
    UNPARK = """
        UPDATE delivery SET state = 'pending', attempts = 0, next_attempt_at = $2,
            lease_until = NULL
        WHERE state = 'parked' AND ($1::bigint[] IS NULL OR id = ANY($1::bigint[]))
    """
    # Delivered at commit: wakes the delivery processes (entrypoints.delivery_process).
    NOTIFY_SENDS = "SELECT pg_notify('thrive_notifier_sends', '')"
    PARKED_COUNT = "SELECT channel, count(*) FROM delivery WHERE state = 'parked' GROUP BY channel"


class PostgresRepository:
    """Repository on one asyncpg connection; the caller owns the transaction."""

    def __init__(self, conn: asyncpg.Connection, *, defaults: Preferences | None = None) -> None:
        self.conn = conn
        self.defaults = defaults or Preferences()

    # directory mirror -----------------------------------------------------------------
    async def upsert_person(self, p: PersonRecord) -> None:
        await self.conn.execute(
            SQL.UPSERT_PERSON,
            p.person,
            p.name,
            p.email,
            p.team,
            p.timezone,
            p.locale,
            p.active,
            person_digest(p.person),
        )

    async def erase_person(self, person: str) -> None:
        await self.conn.execute(SQL.ERASE_REMEMBER, person_digest(person))
        for stmt in SQL.ERASE_ROWS:
            await self.conn.execute(stmt, person)
        for stmt in SQL.ERASE_REDACT:
            await self.conn.execute(stmt, person, REDACTED_TITLE)
        await self.conn.execute(SQL.ERASE_LEDGER, person, "erased:" + secrets.token_hex(8))

    async def profiles(self, persons: Iterable[str]) -> dict[str, Profile]:
        rows = await self.conn.fetch(SQL.PROFILES, list(set(persons)))
        return {r["person"]: self._profile(r) for r in rows if not r["erased"]}

    async def audience_data(self, persons: Iterable[str], *, now: datetime) -> AudienceData:
        rows = await self.conn.fetch(
            SQL.AUDIENCE_DATA, list(set(persons)), now.astimezone(UTC).date()
        )
        profiles: dict[str, Profile] = {}
        mutes: dict[str, list[Mute]] = {}
        used: dict[tuple[str, date], int] = {}
        for r in rows:
            if r["erased"]:
                continue
            person = r["person"]
            profiles[person] = self._profile(r)
            if r["mutes"]:
                mutes[person] = [
                    Mute(MuteKind(kind), target)
                    for kind, _, target in (m.partition(":") for m in r["mutes"])
                ]
            for entry in r["used"]:
                day, _, n = entry.partition("=")
                used[(person, date.fromisoformat(day))] = int(n)
        return AudienceData(profiles, mutes, used)

    def _profile(self, r: Any) -> Profile:
        return Profile(
            person=r["person"],
            team=r["team"],
            timezone=r["timezone"] or "UTC",
            email=r["email"],
            name=r["name"],
            active=True if r["active"] is None else r["active"],
            preferences=self._prefs_from_row(r, tz_column="pref_timezone"),
        )

    def _prefs_from_row(self, r: Any, *, tz_column: str = "timezone") -> Preferences:
        if r["daily_budget"] is None:
            return self.defaults
        return Preferences(
            daily_budget=r["daily_budget"],
            quiet_start=r["quiet_start"],
            quiet_end=r["quiet_end"],
            timezone=r[tz_column],
            channels=frozenset(Channel(c) for c in r["channels"]),
            digest_frequency=DigestFrequency(r["digest_frequency"]),
            digest_hour=r["digest_hour"],
            webhook_url=r["webhook_url"],
        )

    # preferences, follows, mutes --------------------------------------------------------
    async def get_preferences(self, person: str) -> Preferences | None:
        row = await self.conn.fetchrow(SQL.GET_PREFERENCES, person)
        return self._prefs_from_row(row) if row else None

    async def put_preferences(self, person: str, prefs: Preferences) -> None:
        await self.conn.execute(
            SQL.PUT_PREFERENCES,
            person,
            prefs.daily_budget,
            prefs.quiet_start,
            prefs.quiet_end,
            prefs.timezone,
            sorted(c.value for c in prefs.channels),
            prefs.digest_frequency.value,
            prefs.digest_hour,
            prefs.webhook_url,
        )

    async def add_follow(self, person: str, follow: Follow) -> bool:
        return bool(
            await self.conn.fetchval(SQL.ADD_FOLLOW, person, follow.kind.value, follow.target)
        )

    async def remove_follow(self, person: str, follow: Follow) -> bool:
        return bool(
            await self.conn.fetchval(SQL.REMOVE_FOLLOW, person, follow.kind.value, follow.target)
        )

    async def list_follows(self, person: str, *, first: int, after: str | None) -> Page[Follow]:
        rows = await self._keyset(SQL.LIST_FOLLOWS, person, first, after)
        items = [Follow(FollowKind(r["kind"]), r["target"]) for r in rows[:first]]
        return Page(items, _next(rows, first, lambda r: (r["kind"], r["target"])))

    async def add_mute(self, person: str, mute: Mute) -> bool:
        return bool(await self.conn.fetchval(SQL.ADD_MUTE, person, mute.kind.value, mute.target))

    async def remove_mute(self, person: str, mute: Mute) -> bool:
        return bool(await self.conn.fetchval(SQL.REMOVE_MUTE, person, mute.kind.value, mute.target))

    async def list_mutes(self, person: str, *, first: int, after: str | None) -> Page[Mute]:
        rows = await self._keyset(SQL.LIST_MUTES, person, first, after)
        items = [Mute(MuteKind(r["kind"]), r["target"]) for r in rows[:first]]
        return Page(items, _next(rows, first, lambda r: (r["kind"], r["target"])))

    async def _keyset(self, sql: str, person: str, first: int, after: str | None) -> list[Any]:
        kind, target = decode_cursor(after, 2) if after else (None, None)
        return list(await self.conn.fetch(sql, person, kind, target, first + 1))

    async def audience_facts(self, q: AudienceQuery) -> AudienceFacts:
        rows = await self.conn.fetch(
            SQL.AUDIENCE,
            q.person_followers,
            q.team_followers,
            list(q.theme_followers),
            list(q.theme_offerers),
        )
        groups: dict[str, set[str]] = {
            "person": set(),
            "team": set(),
            "theme": set(),
            "offer": set(),
        }
        for r in rows:
            groups[r["src"]].add(r["person"])
        return AudienceFacts(
            person_followers=frozenset(groups["person"]),
            team_followers=frozenset(groups["team"]),
            theme_followers=frozenset(groups["theme"]),
            theme_offerers=frozenset(groups["offer"]),
        )

    async def team_channels(self, teams: Iterable[str]) -> dict[str, str]:
        rows = await self.conn.fetch(SQL.TEAM_CHANNELS, list(teams))
        return {r["team"]: r["webhook_url"] for r in rows}

    async def set_team_channel(self, team: str, url: str | None) -> None:
        if url is None:
            await self.conn.execute(SQL.DELETE_TEAM_CHANNEL, team)
        else:
            await self.conn.execute(SQL.SET_TEAM_CHANNEL, team, url)

    # offers and asks --------------------------------------------------------------------
    async def record_offer(self, person: str, themes: Sequence[str], at: datetime) -> None:
        await self.conn.execute(SQL.RECORD_OFFER, person, sorted(set(themes)), at)

    async def ask_requested(self, *, ask_id: str, asker: str, title: str) -> None:
        await self.conn.execute(SQL.ASK_REQUESTED, ask_id, asker, title)

    async def ask_resolved(self, *, ask_id: str, asker: str, helper: str, at: datetime) -> None:
        await self.conn.execute(SQL.ASK_RESOLVED, ask_id, asker, helper, at)

    async def ask_closed(self, ask_id: str) -> None:
        await self.conn.execute(SQL.ASK_CLOSED, ask_id)

    async def ask_thanked(self, ask_id: str, at: datetime) -> None:
        await self.conn.execute(SQL.ASK_THANKED, ask_id, at)

    async def due_reminders(self, *, resolved_before: datetime, limit: int) -> list[DueReminder]:
        rows = await self.conn.fetch(SQL.DUE_REMINDERS, resolved_before, limit)
        return [
            DueReminder(r["ask_id"], r["asker"], r["helper"], r["title"], r["resolved_at"])
            for r in rows
        ]

    async def mark_reminded(self, ask_id: str, at: datetime) -> None:
        await self.conn.execute(SQL.MARK_REMINDED, ask_id, at)

    # attention --------------------------------------------------------------------------
    async def enqueue_celebrations(self, cs: Sequence[Celebration]) -> None:
        await self.conn.execute(SQL.ENQUEUE, [orjson.dumps(c.to_dict()).decode() for c in cs])

    async def take_celebrations(self, *, limit: int) -> list[Celebration]:
        rows = await self.conn.fetch(SQL.TAKE_QUEUED, limit)
        return [Celebration.from_dict(r["celebration"]) for r in sorted(rows, key=lambda r: r[0])]

    async def prune_budget(self, before: date) -> None:
        for stmt in SQL.PRUNE_BUDGET:
            await self.conn.execute(stmt, before)

    # ledger, inbox, digests -------------------------------------------------------------
    async def reserve(
        self, deliveries: Sequence[NewDelivery], *, now: datetime
    ) -> list[tuple[NewDelivery, int]]:
        by_key = {d.key.idempotency_key: d for d in deliveries}
        rows = await self.conn.fetch(SQL.RESERVE, *self._delivery_args(deliveries, now))
        return [(by_key[r["idempotency_key"]], r["id"]) for r in rows]

    async def commit_fanout(
        self,
        *,
        spend: Sequence[tuple[str, date, str]],
        deliveries: Sequence[NewDelivery],
        deferrals: Sequence[Deferral],
        now: datetime,
    ) -> list[NewDelivery]:
        args = [
            *self._delivery_args(deliveries, now),
            [s[0] for s in spend],
            [s[1] for s in spend],
            [s[2] for s in spend],
        ]
        texts = _as_texts(args)
        row = await self.conn.fetchrow(
            SQL.COMMIT_FANOUT if texts is None else SQL.COMMIT_FANOUT_TEXT,
            *(args if texts is None else texts),
            *self._deferral_args(deferrals),
            len(deliveries),
        )
        if row["n"] == len(deliveries):
            return list(deliveries)  # all new: the usual case, no keys sent back
        fresh = set(row["keys"] or ())
        out = []
        for d in deliveries:  # each new key once
            if (k := d.key.idempotency_key) in fresh:
                fresh.discard(k)
                out.append(d)
        return out

    async def fan_out_large(
        self, c: Celebration, *, mine: Message, others: Message, now: datetime
    ) -> LargeFanOutResult:
        row = await self._large(SQL.LARGE_FANOUT, c, mine=mine, others=others, now=now)
        created = dict(entry.split("=") for entry in row["created"])
        deferred = {r: n for r in ("budget", "quiet_hours") if (n := row[r])}
        return LargeFanOutResult(
            delivered={k: int(n) for k, n in created.items() if k == Channel.IN_APP.value},
            reserved={k: int(n) for k, n in created.items() if k != Channel.IN_APP.value},
            deferred=deferred,
            skipped=row["skipped"],
            recipients=row["recipients"],
            teams=row["teams"],
            keys=row["keys"],
            mine=row["mine"],
        )

    async def reserve_large_sends(
        self, c: Celebration, *, mine: Message, others: Message, now: datetime
    ) -> dict[str, int] | None:
        if self.defaults.channels & SENDING:
            return None  # everyone on the defaults may have sends: no small set to go first
        row = await self._large(SQL.LARGE_FANOUT_SENDS, c, mine=mine, others=others, now=now)
        return {k: int(n) for k, n in (entry.split("=") for entry in row["created"])}

    async def _large(
        self, sql: str, c: Celebration, *, mine: Message, others: Message, now: datetime
    ) -> Any:
        d = self.defaults
        args = [
            c.event_id,
            c.subject,
            c.team,
            list(c.themes),
            sorted(c.involved),
            c.kind.value,
            now,
            orjson.dumps(mine.to_payload()).decode(),
            orjson.dumps(others.to_payload()).decode(),
            c.trace.traceparent if c.trace else None,
            c.trace.tracestate if c.trace else None,
        ]
        defaults = [
            d.daily_budget,
            d.quiet_start,
            d.quiet_end,
            d.timezone,
            sorted(ch.value for ch in d.channels),
            d.digest_frequency.value,
            d.webhook_url,
        ]
        # Planned (quiet hours, local day) as of c.planned_at when its sends went first.
        planned = c.planned_at or now
        row = await self.conn.fetchrow(sql, *args, *_zone_table(planned), *defaults)
        if row["unknown_zones"]:  # a timezone not seen before: learn it, then write
            _ZONES.update(row["unknown_zones"])
            row = await self.conn.fetchrow(sql, *args, *_zone_table(planned), *defaults)
            assert not row["unknown_zones"]
        return row

    @staticmethod
    def _delivery_args(deliveries: Sequence[NewDelivery], now: datetime) -> list[Any]:
        """Parameters $1..$13 of RESERVE and COMMIT_FANOUT."""
        # A fan-out shares one Message among its followers: serialise (and send) each once.
        index: dict[int, int] = {}
        messages: list[str] = []
        for d in deliveries:
            if id(d.message) not in index:
                messages.append(orjson.dumps(d.message.to_payload()).decode())
                index[id(d.message)] = len(messages)  # WITH ORDINALITY counts from 1
        # Only what is sent later needs the trace: in-app rows are done when written.
        traces = [None if d.key.channel is Channel.IN_APP else d.trace for d in deliveries]
        return [
            [d.key.event_id for d in deliveries],
            [d.key.recipient.kind.value for d in deliveries],
            [d.key.recipient.id for d in deliveries],
            [d.key.channel.value for d in deliveries],
            [d.key.idempotency_key for d in deliveries],
            [d.message.kind.value for d in deliveries],
            [d.state.value for d in deliveries],
            [index[id(d.message)] for d in deliveries],
            [d.quiet for d in deliveries],
            now,
            [t.traceparent if t else None for t in traces],
            [t.tracestate if t else None for t in traces],
            messages,
        ]

    @staticmethod
    def _deferral_args(deferrals: Sequence[Deferral]) -> list[list[Any]]:
        return [
            [d.person for d in deferrals],
            [d.event_id for d in deferrals],
            [d.message.kind.value for d in deferrals],
            [d.reason.value for d in deferrals],
            [d.message.subject for d in deferrals],
            [d.message.title for d in deferrals],
            [orjson.dumps(d.message.to_payload()).decode() for d in deferrals],
        ]

    async def defer(self, deferrals: Sequence[Deferral], *, now: datetime) -> int:
        if not deferrals:
            return 0
        result = await self.conn.execute(SQL.DEFER, *self._deferral_args(deferrals), now)
        return int(result.split()[-1])

    async def publish(self, envelopes: Sequence[Envelope[Any]]) -> None:
        await enqueue_many(self.conn, list(envelopes))

    async def wake_senders(self) -> None:
        await self.conn.execute(SQL.NOTIFY_SENDS)

    async def announce(self, items: Sequence[Announcement]) -> None:
        # Rendered CelebrationDelivered facts; the relay publishes them after commit.
        await enqueue_rendered(
            self.conn,
            topic=physical(CelebrationDelivered.TOPIC),
            event_type=CelebrationDelivered.TYPE,
            keys=[a.key for a in items],
            event_ids=[a.event_id for a in items],
            payloads=[a.payload for a in items],
            traceparents=[a.trace.traceparent if a.trace else None for a in items],
            tracestates=[a.trace.tracestate if a.trace else None for a in items],
        )

    async def inbox(
        self, person: str, *, unread: bool | None, first: int, after: str | None
    ) -> Page[InboxItem]:
        before = int(decode_cursor(after, 1)[0]) if after else None
        rows = await self.conn.fetch(SQL.INBOX, person, unread, before, first + 1)
        items = [
            InboxItem(
                id=r["id"],
                kind=r["kind"],
                about=r["about"],
                subject=r["subject"],
                title=r["title"],
                body=r["body"],
                themes=tuple(r["themes"]),
                quiet=r["quiet"],
                created_at=r["created_at"],
                read_at=r["read_at"],
                payload=r["payload"] or {},
            )
            for r in rows[:first]
        ]
        return Page(items, _next(rows, first, lambda r: (r["id"],)))

    async def mark_read(self, person: str, ids: Sequence[int], at: datetime) -> int:
        result = await self.conn.execute(SQL.MARK_READ, person, list(ids), at)
        return int(result.split()[-1])

    async def digest_candidates(self, *, limit: int) -> list[str]:
        return [r["person"] for r in await self.conn.fetch(SQL.DIGEST_CANDIDATES, limit)]

    async def last_digest_day(self, person: str) -> date | None:
        day: date | None = await self.conn.fetchval(SQL.LAST_DIGEST_DAY, person)
        return day

    async def take_digest_entries(self, person: str) -> list[DigestEntry]:
        rows = await self.conn.fetch(SQL.TAKE_DIGEST_ENTRIES, person)
        return [
            DigestEntry(r["id"], Kind(r["kind"]), r["title"], tuple(r["themes"]), r["created_at"])
            for r in rows
        ]

    async def create_digest(self, person: str, *, local_day: date, item_ids: Sequence[int]) -> int:
        digest_id: int = await self.conn.fetchval(
            SQL.CREATE_DIGEST, person, local_day, len(item_ids)
        )
        await self.conn.execute(SQL.ASSIGN_DIGEST, digest_id, list(item_ids))
        return digest_id

    # delivery worker --------------------------------------------------------------------
    async def claim(
        self, *, channels: Sequence[Channel], limit: int, lease_seconds: float, now: datetime
    ) -> list[ClaimedDelivery]:
        rows = await self.conn.fetch(
            SQL.CLAIM, [c.value for c in channels], limit, now, float(lease_seconds)
        )
        return [
            ClaimedDelivery(
                id=r["id"],
                key=DeliveryKey(
                    r["event_id"],
                    Recipient(RecipientKind(r["recipient_kind"]), r["recipient"]),
                    Channel(r["channel"]),
                ),
                idempotency_key=r["idempotency_key"],
                message=Message.from_payload(r["payload"]),
                attempts=r["attempts"],
                destination=r["destination"],
                trace=(
                    TraceContext(r["traceparent"], r["tracestate"]) if r["traceparent"] else None
                ),
            )
            for r in sorted(rows, key=lambda r: r["id"])
        ]

    async def record(self, records: Sequence[AttemptRecord], now: datetime) -> None:
        if not records:
            return
        await self.conn.execute(
            SQL.RECORD,
            [r.delivery.id for r in records],
            [r.delivery.attempts for r in records],
            [r.state.value for r in records],
            [r.result.outcome.value for r in records],
            [r.result.status for r in records],
            [(r.result.error or "")[:500] or None for r in records],
            [r.next_attempt_at for r in records],
            now,
        )

    async def parked(self, *, limit: int) -> list[ParkedDelivery]:
        rows = await self.conn.fetch(SQL.PARKED, limit)
        return [
            ParkedDelivery(
                r["id"],
                r["event_id"],
                r["recipient_kind"],
                r["recipient"],
                r["channel"],
                r["kind"],
                r["attempts"],
                r["last_error"],
                r["created_at"],
            )
            for r in rows
        ]

    async def unpark(self, ids: Sequence[int] | None, now: datetime) -> int:
        result = await self.conn.execute(SQL.UNPARK, list(ids) if ids is not None else None, now)
        return int(result.split()[-1])

    async def parked_count(self) -> dict[str, int]:
        return {r["channel"]: r["count"] for r in await self.conn.fetch(SQL.PARKED_COUNT)}


def _next(rows: Sequence[Any], first: int, key: Any) -> str | None:
    """Cursor after the last returned row, if one more row was fetched than asked for."""
    if len(rows) <= first or first == 0:
        return None
    return encode_cursor(*key(rows[first - 1]))


class PostgresUnitOfWork:
    """Opens a transaction on a pooled connection and yields a PostgresRepository on it."""

    def __init__(
        self,
        pool: asyncpg.Pool | Callable[[], asyncpg.Pool],
        *,
        defaults: Preferences | None = None,
    ) -> None:
        # A callable defers to the runtime's pool, which exists only once the service started.
        self._pool = pool
        self.defaults = defaults

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool if isinstance(self._pool, asyncpg.Pool) else self._pool()

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[PostgresRepository]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield PostgresRepository(conn, defaults=self.defaults)
