"""Command handlers: each runs inside one unit of work and publishes through its outbox."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from thrive_shared.contracts import (
    AskSize,
    AskStatus,
    AskStatusChanged,
    CelebrationSize,
    EventData,
    ExternalHelp,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    IngestKind,
    MilestoneReached,
    PersonUpserted,
    Visibility,
    make_event,
)

from thrive_recognition.domain import allowance as allowance_rules
from thrive_recognition.domain import rings
from thrive_recognition.domain.allowance import AllowancePolicy
from thrive_recognition.domain.commands import (
    AcceptOffer,
    CreateAsk,
    GiveThanks,
    MakeOffer,
    ResolveAsk,
    WithdrawAsk,
)
from thrive_recognition.domain.errors import (
    Forbidden,
    InactivePerson,
    InvalidState,
    NotFound,
    SelfOffer,
    SelfThanks,
    UnknownPerson,
    ValidationFailed,
)
from thrive_recognition.domain.milestones import RuleBook
from thrive_recognition.domain.model import (
    ERASED_PREFIX,
    OPEN_STATES,
    THRIVE_ORIGIN,
    Ask,
    AskState,
    Milestone,
    Offer,
    Person,
    ProgressUpdate,
    Thanks,
)
from thrive_recognition.domain.periods import is_known_zone, week_start, zone
from thrive_recognition.domain.rings import RingPolicy
from thrive_recognition.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

SOURCE = "thrive/recognition"

DEFAULT_ASK_TTL: Mapping[AskSize, timedelta] = {
    AskSize.QUICK: timedelta(days=2),
    AskSize.CHAT: timedelta(days=7),
    AskSize.SESSION: timedelta(days=14),
}


@dataclass(frozen=True, slots=True)
class Policies:
    """The configurable rules a handler applies."""

    rules: RuleBook
    allowance: AllowancePolicy = field(default_factory=AllowancePolicy)
    rings: RingPolicy = field(default_factory=RingPolicy)
    ask_ttl: Mapping[AskSize, timedelta] = field(default_factory=lambda: dict(DEFAULT_ASK_TTL))
    max_ask_ttl: timedelta = timedelta(days=90)
    # Thanks from other systems (code review, helpdesk) are signals, not a person's
    # deliberate gift, so by default they do not draw on anyone's allowance.
    allowance_for_external: bool = False
    source: str = SOURCE


def new_id() -> str:
    """A fresh resource id."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


async def _publish(uow: UnitOfWork, data: EventData, *, policies: Policies) -> None:
    await uow.publish(make_event(data, source=policies.source))


def _require(people: Mapping[str, Person], person_id: str, *, field: str) -> Person:
    person = people.get(person_id)
    if person is None:
        raise UnknownPerson(
            f"There is no person {person_id!r} in the directory.",
            field=field,
            details={"person": person_id},
        )
    if not person.active:
        raise InactivePerson(
            f"{person_id!r} is no longer active in the directory.",
            field=field,
            details={"person": person_id},
        )
    return person


async def _person(uow: UnitOfWork, person_id: str, *, field: str) -> Person:
    return _require(await uow.repo.get_people([person_id]), person_id, field=field)


async def _progress(
    uow: UnitOfWork, update: ProgressUpdate, *, team: str | None, at: datetime, policies: Policies
) -> list[Milestone]:
    """Apply a progress update; publish the milestones it newly reaches (exactly once)."""
    progress = await uow.repo.apply_progress(update)
    reached = policies.rules.reached(progress)
    if not reached:
        return []
    candidates = [r.milestone(person=update.person, team=team, at=at) for r in reached]
    new = await uow.repo.add_milestones(candidates)
    for m in new:
        await _publish(
            uow,
            MilestoneReached(
                milestone_id=m.id,
                person=m.person,
                team=m.team,
                rule_id=m.rule_id,
                level=m.level,
                size=CelebrationSize(m.size),
                title=m.title,
                themes=list(m.themes),
                reached_at=m.reached_at,
            ),
            policies=policies,
        )
    return new


# --- asks ---------------------------------------------------------------------------


async def create_ask(
    uow: UnitOfWork, cmd: CreateAsk, *, policies: Policies, now: datetime | None = None
) -> Ask:
    """Create an open ask; its expiry defaults by size."""
    now = now or utcnow()
    asker = await _person(uow, cmd.asker, field="asker")
    expires_at = cmd.expires_at or now + policies.ask_ttl[cmd.size]
    if expires_at <= now:
        raise ValidationFailed("The expiry must be in the future.", field="expires_at")
    if expires_at > now + policies.max_ask_ttl:
        raise ValidationFailed(
            f"An ask can stay open at most {policies.max_ask_ttl.days} days.",
            field="expires_at",
        )
    ask = Ask(
        id=new_id(),
        asker=asker.id,
        asker_team=asker.team,
        title=cmd.title,
        details=cmd.details,
        themes=tuple(cmd.themes),
        size=cmd.size,
        status=AskState.OPEN,
        created_at=now,
        expires_at=expires_at,
    )
    await uow.repo.lock_people([asker.id])
    await uow.repo.add_ask(ask)
    await _publish(
        uow,
        HelpRequested(
            ask_id=ask.id,
            asker=ask.asker,
            title=ask.title,
            themes=list(ask.themes),
            size=ask.size,
            expires_at=ask.expires_at,
        ),
        policies=policies,
    )
    await _progress(
        uow, ProgressUpdate(person=asker.id, asks=1), team=asker.team, at=now, policies=policies
    )
    return ask


async def _own_open_ask(uow: UnitOfWork, ask_id: str, person: str) -> Ask:
    ask = await uow.repo.get_ask(ask_id, for_update=True)
    if ask is None:
        raise NotFound(f"There is no ask {ask_id!r}.", field="ask_id")
    if ask.asker != person:
        raise Forbidden("Only the person who asked can change this ask.", field="person")
    if ask.status not in OPEN_STATES:
        raise InvalidState(
            f"This ask is already {ask.status}.",
            field="ask_id",
            details={"status": str(ask.status)},
        )
    return ask


async def _ask_changed(uow: UnitOfWork, ask: Ask, *, policies: Policies) -> None:
    await _publish(
        uow,
        AskStatusChanged(
            ask_id=ask.id,
            asker=ask.asker,
            status=AskStatus(ask.status.value),
            offer_id=ask.accepted_offer_id,
            helper=ask.accepted_helper,
            themes=list(ask.themes),
        ),
        policies=policies,
    )


async def withdraw_ask(
    uow: UnitOfWork, cmd: WithdrawAsk, *, policies: Policies, now: datetime | None = None
) -> Ask:
    """The asker withdraws their ask."""
    ask = await _own_open_ask(uow, cmd.ask_id, cmd.person)
    ask = ask.with_status(AskState.WITHDRAWN, at=now or utcnow())
    await uow.repo.save_ask(ask)
    await _ask_changed(uow, ask, policies=policies)
    return ask


async def resolve_ask(
    uow: UnitOfWork, cmd: ResolveAsk, *, policies: Policies, now: datetime | None = None
) -> Ask:
    """The asker marks the ask resolved; with an accepted offer, the event names the helper
    so the notifier can prompt the asker to say thanks."""
    ask = await _own_open_ask(uow, cmd.ask_id, cmd.person)
    ask = ask.with_status(AskState.RESOLVED, at=now or utcnow())
    await uow.repo.save_ask(ask)
    await _ask_changed(uow, ask, policies=policies)
    return ask


async def accept_offer(
    uow: UnitOfWork, cmd: AcceptOffer, *, policies: Policies, now: datetime | None = None
) -> Ask:
    """The asker accepts an offer made in reply to their ask."""
    ask = await _own_open_ask(uow, cmd.ask_id, cmd.person)
    if ask.status is not AskState.OPEN:
        raise InvalidState("This ask has already accepted an offer.", field="ask_id")
    offer = await uow.repo.get_offer(cmd.offer_id)
    if offer is None or offer.ask_id != ask.id:
        raise NotFound(f"There is no offer {cmd.offer_id!r} on this ask.", field="offer_id")
    ask = ask.with_status(
        AskState.ACCEPTED, at=now or utcnow(), offer_id=offer.id, helper=offer.helper
    )
    await uow.repo.save_ask(ask)
    await _ask_changed(uow, ask, policies=policies)
    return ask


async def expire_asks(
    uow: UnitOfWork, *, policies: Policies, now: datetime | None = None, limit: int = 500
) -> list[Ask]:
    """Expire open asks past their time, quietly: only a status event, nothing celebratory."""
    expired = await uow.repo.expire_due_asks(now=now or utcnow(), limit=limit)
    for ask in expired:
        await _ask_changed(uow, ask, policies=policies)
    return expired


# --- offers -------------------------------------------------------------------------


async def make_offer(
    uow: UnitOfWork,
    cmd: MakeOffer,
    *,
    policies: Policies,
    now: datetime | None = None,
    origin: str = THRIVE_ORIGIN,
    external_id: str | None = None,
) -> Offer:
    """Offer help on an open ask, or a standing offer on themes."""
    now = now or utcnow()
    helper = await _person(uow, cmd.helper, field="helper")
    ask: Ask | None = None
    if cmd.ask_id is not None:
        ask = await uow.repo.get_ask(cmd.ask_id)
        if ask is None:
            raise NotFound(f"There is no ask {cmd.ask_id!r}.", field="ask_id")
        if ask.status not in OPEN_STATES:
            raise InvalidState(f"This ask is already {ask.status}.", field="ask_id")
        if ask.asker == helper.id:
            raise SelfOffer("You cannot offer help on your own ask.", field="helper")
    elif not cmd.themes:
        raise ValidationFailed(
            "A standing offer needs at least one theme (or reply to an ask).", field="themes"
        )
    offer = Offer(
        id=new_id(),
        helper=helper.id,
        ask_id=ask.id if ask else None,
        themes=tuple(cmd.themes) or (ask.themes if ask else ()),
        message=cmd.message,
        created_at=now,
        origin=origin,
        external_id=external_id,
    )
    await uow.repo.lock_people([helper.id])
    if not await uow.repo.add_offer(offer):
        # The same external event raced us; its offer stands.
        assert external_id is not None
        existing = await uow.repo.find_offer(origin=origin, external_id=external_id)
        assert existing is not None
        return existing
    await _publish(
        uow,
        HelpOffered(
            offer_id=offer.id,
            helper=offer.helper,
            ask_id=offer.ask_id,
            asker=ask.asker if ask else None,
            themes=list(offer.themes),
            message=offer.message,
            origin=origin,
        ),
        policies=policies,
    )
    await _progress(
        uow, ProgressUpdate(person=helper.id, offers=1), team=helper.team, at=now, policies=policies
    )
    return offer


# --- thanks -------------------------------------------------------------------------


async def give_thanks(
    uow: UnitOfWork, cmd: GiveThanks, *, policies: Policies, now: datetime | None = None
) -> Thanks:
    """`giver` thanks `helper`: checked against allowances, marked if part of a ring."""
    now = now or utcnow()
    if cmd.giver == cmd.helper:
        raise SelfThanks("You cannot thank yourself.", field="helper")
    people = await uow.repo.get_people([cmd.giver, cmd.helper])
    giver = _require(people, cmd.giver, field="giver")
    helper = _require(people, cmd.helper, field="helper")
    themes = tuple(cmd.themes)
    if cmd.ask_id is not None:
        ask = await uow.repo.get_ask(cmd.ask_id)
        if ask is None or ask.asker != giver.id:
            raise NotFound(f"You have no ask {cmd.ask_id!r}.", field="ask_id")
        themes = themes or ask.themes
    if cmd.offer_id is not None:
        offer = await uow.repo.get_offer(cmd.offer_id)
        if offer is None or offer.helper != helper.id:
            raise NotFound(f"{helper.id!r} made no offer {cmd.offer_id!r}.", field="offer_id")
        themes = themes or offer.themes
    return await _record_thanks(
        uow,
        giver=giver,
        helper=helper,
        message=cmd.message,
        themes=themes,
        visibility=cmd.visibility,
        given_at=now,
        ask_id=cmd.ask_id,
        offer_id=cmd.offer_id,
        origin=THRIVE_ORIGIN,
        external_id=None,
        apply_allowance=True,
        policies=policies,
        now=now,
    )


async def _record_thanks(
    uow: UnitOfWork,
    *,
    giver: Person,
    helper: Person,
    message: str,
    themes: Sequence[str],
    visibility: Visibility,
    given_at: datetime,
    ask_id: str | None,
    offer_id: str | None,
    origin: str,
    external_id: str | None,
    apply_allowance: bool,
    policies: Policies,
    now: datetime,
) -> Thanks:
    repo = uow.repo
    # Serialise per person (sorted, so two people thanking each other cannot deadlock):
    # allowances are per giver, counters and streaks per helper.
    await repo.lock_people(sorted({giver.id, helper.id}))
    if apply_allowance:
        windows = policies.allowance.windows(now, zone(giver.timezone))
        # Allowances count the thanks people give in Thrive, unless configured otherwise.
        usage = await repo.allowance_usage(
            giver=giver.id,
            helper=helper.id,
            windows=windows,
            origin=None if policies.allowance_for_external else THRIVE_ORIGIN,
        )
        allowance_rules.check(windows, usage)

    ring = policies.rings
    since = given_at - ring.window
    pair = await repo.pair_count(giver=giver.id, helper=helper.id, since=since) + 1
    discounted = False
    if pair >= ring.min_repeats:
        edges = await repo.ring_edges(start=helper.id, since=since, depth=ring.search_depth)
        discounted = rings.is_discounted(
            giver=giver.id, helper=helper.id, pair_count=pair, edges=edges, policy=ring
        )

    thanks = Thanks(
        id=new_id(),
        giver=giver.id,
        helper=helper.id,
        giver_team=giver.team,
        helper_team=helper.team,
        message=message,
        themes=tuple(themes),
        visibility=visibility,
        given_at=given_at,
        ask_id=ask_id,
        offer_id=offer_id,
        discounted=discounted,
        origin=origin,
        external_id=external_id,
    )
    if not await repo.add_thanks(thanks):
        assert external_id is not None
        existing = await repo.find_thanks(origin=origin, external_id=external_id)
        assert existing is not None
        return existing
    await _publish(
        uow,
        HelpReceived(
            thanks_id=thanks.id,
            giver=thanks.giver,
            helper=thanks.helper,
            giver_team=thanks.giver_team,
            helper_team=thanks.helper_team,
            message=thanks.message,
            themes=list(thanks.themes),
            ask_id=thanks.ask_id,
            offer_id=thanks.offer_id,
            visibility=thanks.visibility,
            discounted=thanks.discounted,
            origin=thanks.origin,
            given_at=thanks.given_at,
        ),
        policies=policies,
    )
    await _progress(
        uow,
        ProgressUpdate(
            person=helper.id,
            thanks_received=1,
            helped_person=giver.id,
            helped_team=giver.team if giver.team != helper.team else None,
            themes=thanks.themes,
            help_week=week_start(given_at, zone(helper.timezone)),
        ),
        team=helper.team,
        at=now,
        policies=policies,
    )
    await _progress(
        uow,
        ProgressUpdate(person=giver.id, thanks_given=1),
        team=giver.team,
        at=now,
        policies=policies,
    )
    return thanks


async def ingest_external(
    uow: UnitOfWork,
    *,
    source: str,
    event_id: str,
    data: ExternalHelp,
    policies: Policies,
    now: datetime | None = None,
) -> Thanks | Offer:
    """Help from another system takes the same path as the UI; (source, id) dedupes it."""
    now = now or utcnow()
    if data.kind is IngestKind.HELP_OFFERED:
        existing_offer = await uow.repo.find_offer(origin=source, external_id=event_id)
        if existing_offer is not None:
            return existing_offer
        cmd = MakeOffer(helper=data.helper, themes=data.themes, message=data.message)
        if not cmd.themes:
            raise ValidationFailed("help_offered needs at least one theme.", field="data.themes")
        return await make_offer(
            uow, cmd, policies=policies, now=now, origin=source, external_id=event_id
        )
    if data.helped is None:
        raise ValidationFailed("help_received needs `helped`.", field="data.helped")
    existing = await uow.repo.find_thanks(origin=source, external_id=event_id)
    if existing is not None:
        return existing
    if data.helped == data.helper:
        raise SelfThanks("A person cannot thank themselves.", field="data.helped")
    people = await uow.repo.get_people([data.helped, data.helper])
    giver = _require(people, data.helped, field="data.helped")
    helper = _require(people, data.helper, field="data.helper")
    return await _record_thanks(
        uow,
        giver=giver,
        helper=helper,
        message=data.message,
        themes=tuple(dict.fromkeys(data.themes)),
        visibility=Visibility.PUBLIC,
        given_at=data.occurred_at,
        ask_id=None,
        offer_id=None,
        origin=source,
        external_id=event_id,
        apply_allowance=policies.allowance_for_external,
        policies=policies,
        now=now,
    )


# --- directory ----------------------------------------------------------------------


async def upsert_person(uow: UnitOfWork, data: PersonUpserted) -> Person:
    """Mirror a person from the HR directory."""
    tz = data.timezone
    if not is_known_zone(tz):
        # One bad field must not lose the person; their periods fall back to UTC.
        log.warning("unknown timezone, using UTC", extra={"person": data.person, "tz": tz})
        tz = "UTC"
    person = Person(
        id=data.person,
        name=data.name,
        email=data.email,
        team=data.team,
        timezone=tz,
        locale=data.locale,
        manager=data.manager,
        active=data.active,
    )
    await uow.repo.upsert_person(person)
    return person


async def erase_person(uow: UnitOfWork, person_id: str) -> str:
    """Forget a person: their own data goes; what others did stays countable, unnamed."""
    # A random pseudonym (not a hash of the id) cannot be turned back into the person.
    token = f"{ERASED_PREFIX}{uuid.uuid4().hex}"
    await uow.repo.lock_people([person_id])
    await uow.repo.erase_person(person_id, token=token)
    return token
