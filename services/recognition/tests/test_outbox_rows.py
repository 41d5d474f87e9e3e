"""The hot path's shortcuts render exactly what the contract models would.

Events of the ingest path are built without validation and rendered by orjson rather than
pydantic (see handlers._construct and unit_of_work.render_rows); these tests pin both to
the models' own results on awkward values.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from thrive_recognition.adapters.unit_of_work import outbox_payload, render_rows
from thrive_recognition.domain.model import Milestone, Thanks
from thrive_recognition.service_layer import handlers
from thrive_shared.contracts import (
    AskSize,
    CelebrationSize,
    ExternalHelp,
    HelpRequested,
    IngestKind,
    Visibility,
    make_event,
    parse_for_topic,
    topics,
)
from thrive_shared.outbox import outbox_rows

MESSAGES = [
    "",
    "plain",
    "héllo — 感谢 🎉",
    "".join(chr(i) for i in range(32)),  # every control character
    '"quoted" \\ back/slash',
    "\x7f\u2028\u2029\ufeff",
    "a" * 2000,
]


def _parsed_times() -> list[datetime]:
    # Datetimes as the consumer gets them: parsed by pydantic from the wire (its own tzinfo).
    env = make_event(
        ExternalHelp(
            kind=IngestKind.HELP_RECEIVED,
            helper="a",
            helped="b",
            occurred_at=datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=2))),
        ),
        source="helpdesk",
    )
    parsed = parse_for_topic(topics.INGEST_HELP, env.to_json())
    return [parsed.data.occurred_at, parsed.time]


TIMES = [
    datetime.now(UTC),
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2026, 6, 1, 12, 30, 5, 120000, tzinfo=ZoneInfo("Europe/Paris")),
    datetime(2026, 1, 1, 12, tzinfo=ZoneInfo("Europe/London")),
    datetime(2026, 6, 1, tzinfo=ZoneInfo("UTC")),
    datetime(2026, 6, 1, tzinfo=timezone(timedelta(0))),
    *_parsed_times(),
]


def _thanks(message: str, at: datetime, *, odd: bool) -> Thanks:
    return Thanks(
        id="T-1",
        giver="ada",
        helper="bob",
        giver_team="data" if odd else None,
        helper_team="web" if odd else None,
        message=message,
        themes=("sql", "kafka") if odd else (),
        visibility=Visibility.PRIVATE if odd else Visibility.PUBLIC,
        given_at=at,
        ask_id="A-1" if odd else None,
        offer_id="O-1" if odd else None,
        discounted=odd,
        origin="helpdesk",
        external_id="E-1",
    )


def _milestone(title: str, at: datetime, *, odd: bool) -> Milestone:
    return Milestone(
        id="M-1",
        person="bob",
        team="web" if odd else None,
        rule_id="thanks-received",
        scope="sql" if odd else "",
        level=12 if odd else 1,
        size=CelebrationSize.LARGE if odd else CelebrationSize.SMALL,
        title=title[:200] or "First thanks",
        themes=("sql",) if odd else (),
        reached_at=at,
    )


def _trusted_events() -> list[Any]:
    out = []
    for message, at, odd in itertools.product(MESSAGES, TIMES, (False, True)):
        thanks = _thanks(message, at, odd=odd)
        out.append(handlers._help_received_event(thanks, source="thrive/recognition", at=at))
        out.append(handlers._milestone_event(_milestone(message, at, odd=odd), source="x", at=at))
    return out


def _events() -> list[Any]:
    trusted = _trusted_events()
    validated = [
        make_event(type(e.data)(**e.data.__dict__), source="x/y", time=e.time) for e in trusted
    ]
    return [e for pair in zip(trusted, validated, strict=True) for e in pair]


def test_trusted_events_equal_what_model_construct_builds() -> None:
    for env in _trusted_events():
        data = type(env.data).model_construct(**env.data.__dict__)
        rebuilt = type(env).model_construct(**{**env.__dict__, "data": data})
        assert env == rebuilt
        assert env.data.model_fields_set == data.model_fields_set
        assert env.model_fields_set == rebuilt.model_fields_set
        # and what the contract parses back, field for field
        assert parse_for_topic(env.data.TOPIC, env.to_json()) == env


def test_flat_payloads_render_byte_for_byte_like_pydantic() -> None:
    events = _events()
    for env in events:
        assert outbox_payload(env) == env.to_json()
    assert render_rows(events) == outbox_rows(events)


def test_other_events_render_through_the_shared_outbox() -> None:
    other = make_event(
        HelpRequested(
            ask_id="A-1", asker="ada", title="SQL?", size=AskSize.QUICK, expires_at=TIMES[0]
        ),
        source="thrive/recognition",
    )
    mixed = [other, *_events()[:3], other]
    assert render_rows(mixed) == outbox_rows(mixed)
