"""Batch ingest (many external events in one unit of work) keeps every per-event rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from thrive_recognition.domain.allowance import AllowancePolicy, Limit
from thrive_recognition.domain.errors import AllowanceExceeded, UnknownPerson
from thrive_recognition.domain.milestones import RuleBook
from thrive_recognition.domain.periods import Period
from thrive_recognition.service_layer import handlers
from thrive_recognition.service_layer.handlers import ExternalEvent, Policies
from thrive_shared.contracts import (
    ExternalHelp,
    HelpReceived,
    IngestKind,
    MilestoneReached,
    parse_for_topic,
)

from .conftest import NOW, make_uow


def ev(i: int, helper: str, helped: str, *, minutes: int = 0, source: str = "helpdesk"):  # type: ignore[no-untyped-def]
    return ExternalEvent(
        source,
        f"E-{i}",
        ExternalHelp(
            kind=IngestKind.HELP_RECEIVED,
            helper=helper,
            helped=helped,
            themes=["sql"],
            occurred_at=NOW + timedelta(minutes=minutes),
        ),
    )


async def test_threshold_crossed_inside_a_batch_is_reached_once(uow) -> None:
    book = RuleBook.from_toml('[[rule]]\nid = "t"\nkind = "count_threshold"\nlevels = [2, 3]')
    policies = Policies(rules=book)
    events = [ev(i, "ada", g, minutes=i) for i, g in enumerate(["bob", "cy", "dee", "eve"])]
    await handlers.ingest_external_many(uow, events, policies=policies, now=NOW)
    reached = sorted((m.person, m.level) for m in uow.events(MilestoneReached))
    assert reached == [("ada", 1), ("ada", 2)]
    # Redelivering the whole batch changes nothing and publishes nothing more.
    before = len(uow.published)
    again = await handlers.ingest_external_many(uow, events, policies=policies, now=NOW)
    assert len(uow.published) == before
    assert len({t.id for t in again}) == 4
    assert uow.repo.counts["ada"].thanks_received == 4


async def test_ring_inside_one_batch_is_discounted(uow, policies) -> None:
    pairs = [("bob", "ada"), ("ada", "bob"), ("bob", "ada"), ("ada", "bob")]
    events = [ev(i, h, g, minutes=i) for i, (h, g) in enumerate(pairs)]
    await handlers.ingest_external_many(uow, events, policies=policies, now=NOW)
    assert [e.discounted for e in uow.events(HelpReceived)] == [False, False, True, True]


async def test_allowance_counts_earlier_events_of_the_same_batch(uow) -> None:
    tight = Policies(
        rules=RuleBook([]),
        allowance=AllowancePolicy(limits=(Limit(2, Period.DAY),), pair_cap=None),
        allowance_for_external=True,
    )
    events = [ev(i, h, "dee") for i, h in enumerate(["ada", "bob", "cy"])]
    with pytest.raises(AllowanceExceeded):
        await handlers.ingest_external_many(uow, events, policies=tight, now=NOW)
    await handlers.ingest_external_many(uow, events[:2], policies=tight, now=NOW)
    assert len(uow.repo.thanks) == 2


async def test_one_bad_event_refuses_the_batch_before_writing(uow, policies) -> None:
    events = [ev(1, "ada", "bob"), ev(2, "ada", "nobody"), ev(3, "cy", "bob")]
    with pytest.raises(UnknownPerson):
        await handlers.ingest_external_many(uow, events, policies=policies, now=NOW)
    assert uow.repo.thanks == {}
    assert uow.published == []


async def test_batch_and_one_by_one_reach_the_same_state(policies) -> None:
    one, many = make_uow(), make_uow()
    people = ["ada", "bob", "cy", "dee", "eve"]
    events = [
        ev(i, people[i % 5], people[(i * 3 + 1) % 5], minutes=i * 600)
        for i in range(40)
        if people[i % 5] != people[(i * 3 + 1) % 5]
    ]
    for e in events:
        await handlers.ingest_external_many(one, [e], policies=policies, now=NOW)
    await handlers.ingest_external_many(many, events, policies=policies, now=NOW)
    assert one.repo.counts == many.repo.counts
    assert set(one.repo.milestones) == set(many.repo.milestones)
    assert [e.discounted for e in one.events(HelpReceived)] == [
        e.discounted for e in many.events(HelpReceived)
    ]


async def test_published_events_are_valid_contract_events(uow, policies) -> None:
    # HelpReceived is built without re-validation on the hot path: it must still be
    # exactly what the contract parses, field for field.
    events = [ev(i, h, g, minutes=i) for i, (h, g) in enumerate([("ada", "cy"), ("bob", "ada")])]
    await handlers.ingest_external_many(uow, events, policies=policies, now=NOW)
    kinds = {type(e.data) for e in uow.published}
    assert HelpReceived in kinds and MilestoneReached in kinds
    for env in uow.published:
        parsed = parse_for_topic(env.data.TOPIC, env.to_json())
        assert parsed == env
        assert parsed.subject == env.data.partition_key()
