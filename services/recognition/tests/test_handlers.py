"""Use cases against the in-memory unit of work: what a user of recognition would see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from thrive_recognition.adapters.memory import InMemoryUnitOfWork
from thrive_recognition.domain.allowance import AllowancePolicy, Limit
from thrive_recognition.domain.commands import (
    AcceptOffer,
    CreateAsk,
    GiveThanks,
    MakeOffer,
    ResolveAsk,
    WithdrawAsk,
)
from thrive_recognition.domain.errors import (
    AllowanceExceeded,
    Forbidden,
    InvalidState,
    NotFound,
    PairCapExceeded,
    SelfThanks,
    UnknownPerson,
    ValidationFailed,
)
from thrive_recognition.domain.milestones import RuleBook
from thrive_recognition.domain.model import AskState, Person, is_erased
from thrive_recognition.domain.pagination import PageRequest
from thrive_recognition.domain.periods import Period
from thrive_recognition.service_layer import handlers, views
from thrive_recognition.service_layer.handlers import Policies
from thrive_shared.contracts import (
    AskStatusChanged,
    ExternalHelp,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    IngestKind,
    MilestoneReached,
    PersonUpserted,
    Visibility,
)

from .conftest import NOW


def thanks(giver: str, helper: str, **kw: object) -> GiveThanks:
    return GiveThanks.model_validate({"giver": giver, "helper": helper, "message": "merci", **kw})


async def test_thanks_is_recorded_and_published_with_teams(uow, policies) -> None:
    t = await handlers.give_thanks(
        uow, thanks("cy", "ada", themes=["#SQL"]), policies=policies, now=NOW
    )
    [event] = uow.events(HelpReceived)
    assert (event.giver, event.helper, event.giver_team, event.helper_team) == (
        "cy",
        "ada",
        "sales",
        "core",
    )
    assert event.themes == ["sql"]
    assert event.thanks_id == t.id
    assert not event.discounted


async def test_first_thanks_given_and_received_are_milestones(uow, policies) -> None:
    await handlers.give_thanks(uow, thanks("cy", "ada"), policies=policies, now=NOW)
    reached = {(m.person, m.rule_id) for m in uow.events(MilestoneReached)}
    assert reached == {("ada", "thanks-received"), ("cy", "first-thanks-given")}
    # The thanks event precedes the milestones it caused (outbox order = publish order).
    assert isinstance(uow.published[0].data, HelpReceived)


async def test_self_thanks_is_refused_and_nothing_is_written(uow, policies) -> None:
    with pytest.raises(SelfThanks):
        await handlers.give_thanks(uow, thanks("ada", "ada"), policies=policies, now=NOW)
    assert uow.repo.thanks == {}
    assert uow.published == []


async def test_unknown_or_inactive_people_are_refused(uow, policies) -> None:
    with pytest.raises(UnknownPerson) as err:
        await handlers.give_thanks(uow, thanks("ada", "zed"), policies=policies, now=NOW)
    assert err.value.field == "helper"
    uow.repo.people["gone"] = Person(
        id="gone", name="Gone", email="g@example.com", team="core", active=False
    )
    with pytest.raises(Exception, match="no longer active"):
        await handlers.give_thanks(uow, thanks("gone", "ada"), policies=policies, now=NOW)
    assert uow.repo.thanks == {}


async def test_daily_allowance_in_givers_timezone(uow, policies) -> None:
    tight = Policies(
        rules=policies.rules,
        allowance=AllowancePolicy(limits=(Limit(2, Period.DAY),), pair_cap=None),
    )
    # dee lives in Tokyo: 14:00 UTC is 23:00 there, 15:30 UTC is the next local day.
    late = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    await handlers.give_thanks(uow, thanks("dee", "ada"), policies=tight, now=late)
    await handlers.give_thanks(uow, thanks("dee", "bob"), policies=tight, now=late)
    with pytest.raises(AllowanceExceeded) as err:
        await handlers.give_thanks(uow, thanks("dee", "cy"), policies=tight, now=late)
    assert err.value.details["resets_at"] == "2026-03-10T15:00:00+00:00"
    assert len(uow.repo.thanks) == 2
    next_local_day = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    await handlers.give_thanks(uow, thanks("dee", "cy"), policies=tight, now=next_local_day)
    assert len(uow.repo.thanks) == 3


async def test_pair_cap_stops_thanking_the_same_person_too_often(uow, policies) -> None:
    capped = Policies(
        rules=policies.rules,
        allowance=AllowancePolicy(limits=(), pair_cap=Limit(2, Period.WEEK)),
    )
    for i in range(2):
        await handlers.give_thanks(
            uow, thanks("ada", "bob"), policies=capped, now=NOW + timedelta(minutes=i)
        )
    with pytest.raises(PairCapExceeded):
        await handlers.give_thanks(uow, thanks("ada", "bob"), policies=capped, now=NOW)
    await handlers.give_thanks(uow, thanks("ada", "cy"), policies=capped, now=NOW)


async def test_repeated_reciprocal_thanks_are_discounted_not_blocked(uow, policies) -> None:
    flags = []
    for i, (giver, helper) in enumerate([("ada", "bob"), ("bob", "ada")] * 2):
        t = await handlers.give_thanks(
            uow, thanks(giver, helper), policies=policies, now=NOW + timedelta(hours=i)
        )
        flags.append(t.discounted)
    assert flags == [False, False, True, True]
    assert [e.discounted for e in uow.events(HelpReceived)] == flags


async def test_milestone_threshold_is_reached_once(uow, policies) -> None:
    book = RuleBook.from_toml(
        '[[rule]]\nid = "ten"\nkind = "count_threshold"\nlevels = [3]\ntitle = "x"'
    )
    loose = Policies(rules=book, allowance=AllowancePolicy(limits=(), pair_cap=None))
    givers = ["bob", "cy", "dee", "eve", "bob", "cy"]
    for i, giver in enumerate(givers):
        await handlers.give_thanks(
            uow, thanks(giver, "ada"), policies=loose, now=NOW + timedelta(minutes=i)
        )
    [m] = uow.events(MilestoneReached)
    assert (m.person, m.rule_id, m.level) == ("ada", "ten", 1)


async def test_streak_counts_weeks_in_the_helpers_timezone(uow) -> None:
    book = RuleBook.from_toml(
        '[[rule]]\nid = "streak"\nkind = "streak"\nlevels = [2]\ntitle = "2 weeks"'
    )
    loose = Policies(rules=book, allowance=AllowancePolicy(limits=(), pair_cap=None))
    # dee is in Tokyo. Monday 2026-03-09 10:00 local, then Sunday 2026-03-15 20:00 UTC,
    # which is Monday 2026-03-16 05:00 in Tokyo: the next week there (not in UTC).
    await handlers.give_thanks(
        uow, thanks("ada", "dee"), policies=loose, now=datetime(2026, 3, 9, 1, tzinfo=UTC)
    )
    assert uow.events(MilestoneReached) == []
    await handlers.give_thanks(
        uow, thanks("bob", "dee"), policies=loose, now=datetime(2026, 3, 15, 20, tzinfo=UTC)
    )
    [m] = uow.events(MilestoneReached)
    assert (m.person, m.rule_id) == ("dee", "streak")


async def test_streak_does_not_bridge_a_missed_week(uow) -> None:
    book = RuleBook.from_toml('[[rule]]\nid = "s"\nkind = "streak"\nlevels = [2]')
    loose = Policies(rules=book, allowance=AllowancePolicy(limits=(), pair_cap=None))
    for day in (2, 16):  # Mondays two weeks apart
        at = datetime(2026, 3, day, 12, tzinfo=UTC)
        await handlers.give_thanks(uow, thanks("ada", "bob"), policies=loose, now=at)
    assert uow.events(MilestoneReached) == []


async def test_cross_team_and_distinct_people(uow) -> None:
    book = RuleBook.from_toml(
        '[[rule]]\nid = "teams"\nkind = "cross_team"\nlevels = [2]\n'
        '[[rule]]\nid = "people"\nkind = "distinct_people"\nlevels = [3]'
    )
    loose = Policies(rules=book, allowance=AllowancePolicy(limits=(), pair_cap=None))
    # ada (core) helps bob (core), cy (sales), cy again, dee (ops).
    for i, giver in enumerate(["bob", "cy", "cy", "dee"]):
        await handlers.give_thanks(
            uow, thanks(giver, "ada"), policies=loose, now=NOW + timedelta(minutes=i)
        )
    assert sorted(m.rule_id for m in uow.events(MilestoneReached)) == ["people", "teams"]
    counts = uow.repo.counts["ada"]
    assert (counts.people_helped, counts.teams_helped, counts.thanks_received) == (3, 2, 4)


async def test_ask_offer_accept_resolve_prompts_thanks(uow, policies) -> None:
    ask = await handlers.create_ask(
        uow,
        CreateAsk(asker="ada", title="Help with a query", size="quick", themes=["sql"]),
        policies=policies,
        now=NOW,
    )
    assert ask.expires_at == NOW + timedelta(days=2)
    [requested] = uow.events(HelpRequested)
    assert requested.ask_id == ask.id
    assert "first-ask" in {m.rule_id for m in uow.events(MilestoneReached)}
    offer = await handlers.make_offer(
        uow, MakeOffer(helper="bob", ask_id=ask.id, message="I can"), policies=policies, now=NOW
    )
    assert uow.events(HelpOffered)[0].asker == "ada"
    assert offer.themes == ("sql",)
    with pytest.raises(Forbidden):
        await handlers.accept_offer(
            uow, AcceptOffer(ask_id=ask.id, person="bob", offer_id=offer.id), policies=policies
        )
    await handlers.accept_offer(
        uow, AcceptOffer(ask_id=ask.id, person="ada", offer_id=offer.id), policies=policies
    )
    resolved = await handlers.resolve_ask(
        uow, ResolveAsk(ask_id=ask.id, person="ada"), policies=policies
    )
    assert resolved.status is AskState.RESOLVED
    statuses = [(e.status, e.helper) for e in uow.events(AskStatusChanged)]
    assert statuses == [("accepted", "bob"), ("resolved", "bob")]
    with pytest.raises(InvalidState):
        await handlers.withdraw_ask(
            uow, WithdrawAsk(ask_id=ask.id, person="ada"), policies=policies
        )


async def test_offer_validation(uow, policies) -> None:
    with pytest.raises(ValidationFailed):
        await handlers.make_offer(uow, MakeOffer(helper="bob"), policies=policies)
    with pytest.raises(NotFound):
        await handlers.make_offer(uow, MakeOffer(helper="bob", ask_id="nope"), policies=policies)
    ask = await handlers.create_ask(
        uow, CreateAsk(asker="ada", title="t", size="chat"), policies=policies, now=NOW
    )
    with pytest.raises(Exception, match="your own ask"):
        await handlers.make_offer(uow, MakeOffer(helper="ada", ask_id=ask.id), policies=policies)


async def test_expiry_sweep_is_quiet(uow, policies) -> None:
    ask = await handlers.create_ask(
        uow, CreateAsk(asker="ada", title="t", size="quick"), policies=policies, now=NOW
    )
    before = len(uow.published)
    assert await handlers.expire_asks(uow, policies=policies, now=NOW + timedelta(days=1)) == []
    expired = await handlers.expire_asks(uow, policies=policies, now=NOW + timedelta(days=3))
    assert [a.id for a in expired] == [ask.id]
    new = [e.data for e in uow.published[before:]]
    # Only the status change: no celebration, nothing public.
    assert [type(e).__name__ for e in new] == ["AskStatusChanged"]
    page = await views.open_asks(uow.repo, theme=None, size=None, page=PageRequest())
    assert page["items"] == []


async def test_external_help_dedupes_on_source_and_id(uow, policies) -> None:
    data = ExternalHelp(
        kind=IngestKind.HELP_RECEIVED,
        helper="ada",
        helped="cy",
        message="resolved ticket",
        themes=["support"],
        occurred_at=NOW,
    )
    first = await handlers.ingest_external(
        uow, source="helpdesk", event_id="T-1", data=data, policies=policies
    )
    again = await handlers.ingest_external(
        uow, source="helpdesk", event_id="T-1", data=data, policies=policies
    )
    other = await handlers.ingest_external(
        uow, source="codereview", event_id="T-1", data=data, policies=policies
    )
    assert first.id == again.id != other.id
    assert len(uow.repo.thanks) == 2
    assert [e.origin for e in uow.events(HelpReceived)] == ["helpdesk", "codereview"]


async def test_external_help_with_unknown_person_is_refused(uow, policies) -> None:
    data = ExternalHelp(kind=IngestKind.HELP_RECEIVED, helper="ada", helped="zed", occurred_at=NOW)
    with pytest.raises(UnknownPerson):
        await handlers.ingest_external(
            uow, source="helpdesk", event_id="T-2", data=data, policies=policies
        )
    missing = ExternalHelp(kind=IngestKind.HELP_RECEIVED, helper="ada", occurred_at=NOW)
    with pytest.raises(ValidationFailed):
        await handlers.ingest_external(
            uow, source="helpdesk", event_id="T-3", data=missing, policies=policies
        )


async def test_private_thanks_are_seen_only_by_the_two_people(uow, policies) -> None:
    t = await handlers.give_thanks(
        uow, thanks("ada", "bob", visibility="private"), policies=policies, now=NOW
    )
    assert t.visibility is Visibility.PRIVATE
    feed = await views.recent_thanks(uow.repo, team=None, theme=None, page=PageRequest())
    assert feed["items"] == []
    for viewer, admin, seen in [
        ("bob", False, 1),
        ("ada", False, 1),
        ("cy", False, 0),
        (None, True, 1),
    ]:
        got = await views.person_thanks(
            uow.repo,
            person="bob",
            direction="received",
            viewer=viewer,
            admin=admin,
            page=PageRequest(),
        )
        assert len(got["items"]) == seen, viewer
        batch = await views.thanks_batch(uow.repo, [t.id], viewer=viewer, admin=admin)
        assert (batch[0] is not None) == bool(seen)


async def test_pagination_walks_all_items_once(uow, policies) -> None:
    loose = Policies(rules=policies.rules, allowance=AllowancePolicy(limits=(), pair_cap=None))
    ids = []
    for i in range(7):
        t = await handlers.give_thanks(
            uow, thanks("ada", "bob"), policies=loose, now=NOW + timedelta(minutes=i)
        )
        ids.append(t.id)
    seen, after = [], None
    while True:
        got = await views.recent_thanks(
            uow.repo, team="core", theme=None, page=PageRequest.parse(3, after)
        )
        seen += [i["id"] for i in got["items"]]
        after = got["next_cursor"]
        if after is None:
            break
    assert seen == list(reversed(ids))


async def test_erasure_keeps_counts_for_others_but_not_the_name(uow, policies) -> None:
    await handlers.give_thanks(
        uow, thanks("ada", "bob", themes=["sql"]), policies=policies, now=NOW
    )
    await handlers.give_thanks(uow, thanks("bob", "cy"), policies=policies, now=NOW)
    await handlers.create_ask(
        uow,
        CreateAsk(asker="bob", title="Bob's secret project", size="chat"),
        policies=policies,
        now=NOW,
    )
    await handlers.erase_person(uow, "bob")
    assert "bob" not in uow.repo.people
    for t in uow.repo.thanks.values():
        assert "bob" not in (t.giver, t.helper)
        assert t.message == ""
    assert all(a.title == "" and is_erased(a.asker) for a in uow.repo.asks.values())
    # cy still counts one distinct person helped; ada still one thanks given.
    assert uow.repo.counts["cy"].people_helped == 1
    assert uow.repo.counts["ada"].thanks_given == 1
    assert "bob" not in uow.repo.counts
    given = await views.person_thanks(
        uow.repo, person="ada", direction="given", viewer="ada", admin=False, page=PageRequest()
    )
    assert given["items"][0]["helper"] is None


async def test_directory_upsert_normalises_unknown_timezone(uow: InMemoryUnitOfWork) -> None:
    person = await handlers.upsert_person(
        uow,
        PersonUpserted(
            person="fay", name="Fay", email="fay@example.com", team="core", timezone="Nowhere/X"
        ),
    )
    assert person.timezone == "UTC"
    profile = await views.profile(uow.repo, "fay", now=NOW)
    assert profile["counts"]["thanks_received"] == 0


def test_new_ids_are_distinct_canonical_random_uuids() -> None:
    import uuid

    from thrive_recognition.service_layer.handlers import new_id

    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for i in ids:
        parsed = uuid.UUID(i)
        assert str(parsed) == i and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_milestone_title_beyond_the_contract_is_refused_not_published() -> None:
    import dataclasses
    from datetime import UTC, datetime

    import pydantic
    import pytest
    from thrive_recognition.domain.model import Milestone
    from thrive_recognition.service_layer.handlers import _milestone_event
    from thrive_shared.contracts import CelebrationSize

    at = datetime(2026, 3, 2, tzinfo=UTC)
    ok = Milestone(
        id="m1",
        person="ada",
        team="platform",
        rule_id="first_thanks",
        scope="",
        level=1,
        size=CelebrationSize.SMALL,
        title="First thanks",
        themes=(),
        reached_at=at,
    )
    assert _milestone_event(ok, source="thrive/recognition", at=at).data.title == "First thanks"
    too_long = dataclasses.replace(ok, title="x" * 201)
    with pytest.raises(pydantic.ValidationError):
        _milestone_event(too_long, source="thrive/recognition", at=at)
