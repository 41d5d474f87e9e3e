"""Command handlers: each runs inside one unit of work and publishes through its outbox."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from thrive_shared.contracts import (
    AskSize,
    AskStatus,
    AskStatusChanged,
    CelebrationSize,
    Envelope,
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
from thrive_shared.contracts.envelope import SPECVERSION, envelope_type

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
    hot_record,
)
from thrive_recognition.domain.periods import is_known_zone, zone
from thrive_recognition.domain.rings import RingPolicy
from thrive_recognition.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)

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


_VARIANT = "89ab"
_ID_BYTES = 4096  # random bytes drawn per system call: 256 ids
_id_lock = threading.Lock()
_id_hex = ""
_id_pos = 0


def _forget_random_ids() -> None:
    global _id_hex, _id_pos
    _id_hex, _id_pos = "", 0


# A forked child must not hand out the ids its parent has in its buffer.
os.register_at_fork(after_in_child=_forget_random_ids)


def new_id() -> str:
    """A fresh resource id: a random (version 4) UUID in its canonical text form."""
    # Straight from random bytes to text, the bytes drawn 4 KiB at a time: uuid.uuid4()
    # makes one getrandom() system call and builds a UUID object per id, a few times per
    # ingested event, and system calls are slow on this kind of virtual machine.
    global _id_hex, _id_pos
    with _id_lock:
        if _id_pos >= len(_id_hex):
            _id_hex, _id_pos = os.urandom(_ID_BYTES).hex(), 0
        h = _id_hex[_id_pos : _id_pos + 32]
        _id_pos += 32
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


async def _publish(uow: UnitOfWork, data: EventData, *, policies: Policies) -> None:
    await uow.publish(make_event(data, source=policies.source))


_HELP_RECEIVED_ENVELOPE = envelope_type(HelpReceived)
_SET_ATTR = object.__setattr__


def _construct(cls: type[Model], values: dict[str, Any]) -> Model:
    """`cls.model_construct(**values)` for values of every field, in field order.

    What model_construct ends with, without its per-field walk (aliases, defaults), which
    costs more than the rest of building an event: the model's __dict__, its fields set,
    no extra, no private attributes. Tests check the result equals model_construct's.
    """
    m = cls.__new__(cls)
    _SET_ATTR(m, "__dict__", values)
    _SET_ATTR(m, "__pydantic_fields_set__", set(values))
    _SET_ATTR(m, "__pydantic_extra__", None)
    _SET_ATTR(m, "__pydantic_private__", None)
    return m


def _help_received_event(t: Thanks, *, source: str, at: datetime) -> Envelope[HelpReceived]:
    """The HelpReceived envelope of a stored thanks, built without re-validation.

    Every value already passed the same contract types on the way in (people and teams
    from the directory events, message and themes from the command or ExternalHelp), and
    this runs once per ingested event, where validation would cost more than the SQL.
    Tests parse these back as the contract.
    """
    data = _construct(
        HelpReceived,
        {
            "thanks_id": t.id,
            "giver": t.giver,
            "helper": t.helper,
            "giver_team": t.giver_team,
            "helper_team": t.helper_team,
            "message": t.message,
            "themes": list(t.themes),
            "ask_id": t.ask_id,
            "offer_id": t.offer_id,
            "visibility": t.visibility,
            "discounted": t.discounted,
            "origin": t.origin,
            "given_at": t.given_at,
        },
    )
    return _trusted_envelope(_HELP_RECEIVED_ENVELOPE, data, source=source, at=at, subject=t.helper)


def _trusted_envelope(
    envelope: type[Envelope[Any]],
    data: HelpReceived | MilestoneReached,
    *,
    source: str,
    at: datetime,
    subject: str,
) -> Envelope[Any]:
    """An envelope of `envelope_type(type(data))` around already-trusted data, unvalidated."""
    return _construct(
        envelope,
        {
            "specversion": SPECVERSION,
            "id": new_id(),
            "source": source,
            "type": data.TYPE,
            "time": at,
            "subject": subject,
            "datacontenttype": "application/json",
            "schemaversion": data.SCHEMA_VERSION,
            "data": data,
        },
    )


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
    uow: UnitOfWork,
    updates: Sequence[ProgressUpdate],
    *,
    teams: Mapping[str, str | None],
    at: datetime,
    policies: Policies,
) -> list[Milestone]:
    """Apply progress updates; publish the milestones they newly reach (exactly once)."""
    # While Postgres applies the progress (the batch's costliest statements), this process
    # serialises the events published so far for the outbox.
    applying = asyncio.ensure_future(uow.repo.apply_progress(updates))
    try:
        await asyncio.sleep(0)  # let the first statement go out
        uow.render()
    except BaseException:
        await asyncio.gather(applying, return_exceptions=True)
        raise
    progress = await applying
    candidates = [
        r.milestone(person=person, team=teams.get(person), at=at)
        for person, p in progress.items()
        for r in policies.rules.reached(p)
    ]
    if not candidates:
        return []
    new = await uow.repo.add_milestones(candidates)
    stamp = utcnow()
    for m in new:
        await uow.publish(_milestone_event(m, source=policies.source, at=stamp))
    return new


_MILESTONE_ENVELOPE = envelope_type(MilestoneReached)
# The contract's bounds on the two values that come from the rule file, not from validated
# events: beyond them, the event is built (and refused) by the validating path.
_MAX_TITLE, _MAX_RULE_ID = 200, 100


def _milestone_event(m: Milestone, *, source: str, at: datetime) -> Envelope[MilestoneReached]:
    """The MilestoneReached envelope of a newly stored milestone.

    Built without re-validation, like HelpReceived (about one per ingested event): person,
    team and themes come from validated events, the level from the rule book.
    """
    fields: dict[str, Any] = {
        "milestone_id": m.id,
        "person": m.person,
        "team": m.team,
        "rule_id": m.rule_id,
        "level": m.level,
        "size": CelebrationSize(m.size),
        "title": m.title,
        "themes": list(m.themes),
        "reached_at": m.reached_at,
    }
    if len(m.title) > _MAX_TITLE or len(m.rule_id) > _MAX_RULE_ID or m.level < 1:
        return make_event(MilestoneReached(**fields), source=source, time=at)
    data = _construct(MilestoneReached, fields)
    return _trusted_envelope(_MILESTONE_ENVELOPE, data, source=source, at=at, subject=m.person)


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
        uow,
        [ProgressUpdate(person=asker.id, asks=1)],
        teams={asker.id: asker.team},
        at=now,
        policies=policies,
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
        uow,
        [ProgressUpdate(person=helper.id, offers=1)],
        teams={helper.id: helper.team},
        at=now,
        policies=policies,
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
    [thanks] = await record_thanks(
        uow,
        [
            ThanksDraft(
                giver=giver,
                helper=helper,
                message=cmd.message,
                themes=themes,
                visibility=cmd.visibility,
                given_at=now,
                ask_id=cmd.ask_id,
                offer_id=cmd.offer_id,
            )
        ],
        apply_allowance=True,
        policies=policies,
        now=now,
    )
    return thanks


@hot_record
class ThanksDraft:
    """A validated thanks about to be recorded."""

    giver: Person
    helper: Person
    message: str
    themes: Sequence[str]
    visibility: Visibility
    given_at: datetime
    ask_id: str | None = None
    offer_id: str | None = None
    origin: str = THRIVE_ORIGIN
    external_id: str | None = None


async def _check_allowances(
    uow: UnitOfWork, drafts: Sequence[ThanksDraft], *, policies: Policies, now: datetime
) -> None:
    """Raise if any draft would exceed its giver's allowance (earlier drafts count too)."""
    origin = None if policies.allowance_for_external else THRIVE_ORIGIN
    accepted: list[ThanksDraft] = []
    for d in drafts:
        windows = policies.allowance.windows(now, zone(d.giver.timezone))
        usage = await uow.repo.allowance_usage(
            giver=d.giver.id, helper=d.helper.id, windows=windows, origin=origin
        )
        mine = [a for a in accepted if a.giver.id == d.giver.id]
        usage = allowance_rules.Usage(
            given=tuple(
                used + sum(1 for a in mine if w.start <= a.given_at < w.end)
                for used, (_, w) in zip(usage.given, windows.limits, strict=True)
            ),
            to_pair=usage.to_pair
            + sum(
                1
                for a in mine
                if windows.pair
                and a.helper.id == d.helper.id
                and windows.pair[1].start <= a.given_at < windows.pair[1].end
            ),
        )
        allowance_rules.check(windows, usage)
        accepted.append(d)


async def _discounts(
    uow: UnitOfWork, drafts: Sequence[ThanksDraft], *, policies: Policies
) -> list[bool]:
    """Which drafts close a repeated small cycle (the drafts before each one included)."""
    ring = policies.rings
    sinces = [d.given_at - ring.window for d in drafts]
    stored = await uow.repo.pair_counts(
        [(d.giver.id, d.helper.id, since) for d, since in zip(drafts, sinces, strict=True)]
    )
    flags: list[bool] = []
    seen: dict[tuple[str, str], list[datetime]] = {}  # pairs earlier in this batch
    for i, d in enumerate(drafts):
        key = (d.giver.id, d.helper.id)
        before = seen.setdefault(key, [])
        pair = stored[i] + 1 + sum(1 for at in before if at >= sinces[i])
        before.append(d.given_at)
        if pair < ring.min_repeats:
            flags.append(False)
            continue
        edges = await uow.repo.ring_edges(
            start=d.helper.id, since=sinces[i], depth=ring.search_depth
        )
        for e in drafts[:i]:
            if e.given_at >= sinces[i]:
                edges.setdefault(e.giver.id, set()).add(e.helper.id)
        flags.append(
            rings.is_discounted(
                giver=d.giver.id, helper=d.helper.id, pair_count=pair, edges=edges, policy=ring
            )
        )
    return flags


async def record_thanks(
    uow: UnitOfWork,
    drafts: Sequence[ThanksDraft],
    *,
    apply_allowance: bool,
    policies: Policies,
    now: datetime,
    locked: bool = False,
) -> list[Thanks]:
    """Record thanks in a few set-based statements, whether one or a batch of hundreds.

    Returns one Thanks per draft: the stored one when its (origin, external id) was known.
    `locked`: the caller already holds every giver's and helper's lock.
    """
    repo = uow.repo
    # Serialise per person (sorted, so two units of work cannot deadlock): allowances are
    # per giver, counters and streaks per helper.
    if not locked:
        await repo.lock_people(sorted({p.id for d in drafts for p in (d.giver, d.helper)}))
    if apply_allowance:
        await _check_allowances(uow, drafts, policies=policies, now=now)
    discounted = await _discounts(uow, drafts, policies=policies)
    made = [
        Thanks(
            id=new_id(),
            giver=d.giver.id,
            helper=d.helper.id,
            giver_team=d.giver.team,
            helper_team=d.helper.team,
            message=d.message,
            themes=tuple(dict.fromkeys(d.themes)),
            visibility=d.visibility,
            given_at=d.given_at,
            ask_id=d.ask_id,
            offer_id=d.offer_id,
            discounted=flag,
            origin=d.origin,
            external_id=d.external_id,
        )
        for d, flag in zip(drafts, discounted, strict=True)
    ]
    # The insert runs in Postgres while this process prepares every thanks' event and
    # progress (two cores at work instead of one waiting for the other); only the thanks
    # actually inserted use them.
    insert = asyncio.ensure_future(repo.add_thanks(made))
    try:
        await asyncio.sleep(0)  # let the insert go out first
        prepared = _prepare_effects(drafts, made, source=policies.source, at=utcnow())
    except BaseException:
        await asyncio.gather(insert, return_exceptions=True)
        raise
    inserted = await insert
    out: list[Thanks] = []
    updates: list[ProgressUpdate] = []
    teams: dict[str, str | None] = {}
    publish = uow.publish
    for d, t, (event, received, given) in zip(drafts, made, prepared, strict=True):
        if t.id not in inserted:
            # The same external event was recorded before: its thanks stands, once.
            assert t.external_id is not None
            existing = await repo.find_thanks(origin=t.origin, external_id=t.external_id)
            assert existing is not None
            out.append(existing)
            continue
        out.append(t)
        await publish(event)
        updates.append(received)
        updates.append(given)
        teams[t.helper], teams[t.giver] = d.helper.team, d.giver.team
    if updates:
        await _progress(uow, updates, teams=teams, at=now, policies=policies)
    return out


def _prepare_effects(
    drafts: Sequence[ThanksDraft], made: Sequence[Thanks], *, source: str, at: datetime
) -> list[tuple[Envelope[HelpReceived], ProgressUpdate, ProgressUpdate]]:
    """Per thanks: its HelpReceived event, the helper's and the giver's progress."""
    out = []
    weeks: dict[tuple[str, date], date] = {}  # (timezone, local day) -> Monday, per batch
    for d, t in zip(drafts, made, strict=True):
        giver, helper = d.giver, d.helper
        tz = helper.timezone
        local = t.given_at.astimezone(zone(tz)).date()
        week = weeks.get((tz, local))
        if week is None:
            week = weeks[(tz, local)] = local - timedelta(days=local.weekday())
        out.append(
            (
                _help_received_event(t, source=source, at=at),
                ProgressUpdate(
                    person=t.helper,
                    thanks_received=1,
                    helped_person=t.giver,
                    helped_team=giver.team if giver.team != helper.team else None,
                    themes=t.themes,
                    help_week=week,
                ),
                ProgressUpdate(person=t.giver, thanks_given=1),
            )
        )
    return out


@hot_record
class ExternalEvent:
    """Help reported by another system: its source, its event id, the payload."""

    source: str
    event_id: str
    data: ExternalHelp


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
    [result] = await ingest_external_many(
        uow, [ExternalEvent(source, event_id, data)], policies=policies, now=now
    )
    return result


async def ingest_external_many(
    uow: UnitOfWork,
    events: Sequence[ExternalEvent],
    *,
    policies: Policies,
    now: datetime | None = None,
) -> list[Thanks | Offer]:
    """A batch of external help, validated up front and recorded set-based.

    Raises on the first invalid event (nothing is written): the caller retries the events
    one by one to set the bad ones aside with their reason.
    """
    now = now or utcnow()
    received = [e for e in events if e.data.kind is IngestKind.HELP_RECEIVED]
    for e in received:
        if e.data.helped is None:
            raise ValidationFailed("help_received needs `helped`.", field="data.helped")
        if e.data.helped == e.data.helper:
            raise SelfThanks("A person cannot thank themselves.", field="data.helped")
    # The people's locks come with their rows: one round trip instead of two per batch.
    people = await uow.repo.get_people(
        list({p for e in received for p in (e.data.helped or "", e.data.helper)}), lock=True
    )
    drafts = [
        ThanksDraft(
            giver=_require(people, e.data.helped or "", field="data.helped"),
            helper=_require(people, e.data.helper, field="data.helper"),
            message=e.data.message,
            themes=e.data.themes,
            visibility=Visibility.PUBLIC,
            given_at=e.data.occurred_at,
            origin=e.source,
            external_id=e.event_id,
        )
        for e in received
    ]
    recorded = iter(
        await record_thanks(
            uow,
            drafts,
            apply_allowance=policies.allowance_for_external,
            policies=policies,
            now=now,
            locked=True,
        )
        if drafts
        else []
    )
    out: list[Thanks | Offer] = []
    for e in events:
        if e.data.kind is IngestKind.HELP_RECEIVED:
            out.append(next(recorded))
        else:
            out.append(await _external_offer(uow, e, policies=policies, now=now))
    return out


async def _external_offer(
    uow: UnitOfWork, e: ExternalEvent, *, policies: Policies, now: datetime
) -> Offer:
    existing = await uow.repo.find_offer(origin=e.source, external_id=e.event_id)
    if existing is not None:
        return existing
    if not e.data.themes:
        raise ValidationFailed("help_offered needs at least one theme.", field="data.themes")
    cmd = MakeOffer(helper=e.data.helper, themes=e.data.themes, message=e.data.message)
    return await make_offer(
        uow, cmd, policies=policies, now=now, origin=e.source, external_id=e.event_id
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
