"""An in-memory Repository with the same behaviour as the SQL one, for fast unit tests."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from thrive_shared.contracts import Envelope, parse_for_topic, topics

from thrive_notifier.domain.audience import AudienceFacts, AudienceQuery
from thrive_notifier.domain.digest import DigestEntry
from thrive_notifier.domain.messages import REDACTED_TITLE, Message
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    DeliveryState,
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
    NewDelivery,
    Page,
    ParkedDelivery,
    PersonRecord,
)


def erased_digest(person: str) -> bytes:
    return hashlib.sha256(person.encode()).digest()


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("\x1f".join(map(str, parts)).encode()).decode()


def decode_cursor(cursor: str, n: int) -> list[str]:
    """Parts of a cursor made by encode_cursor; ValueError if it was not."""
    try:
        parts = base64.urlsafe_b64decode(cursor.encode()).decode().split("\x1f")
    except Exception as exc:
        raise ValueError("not a cursor from this API") from exc
    if len(parts) != n:
        raise ValueError("not a cursor from this API")
    return parts


@dataclass
class _Delivery:
    id: int
    key: DeliveryKey
    kind: str
    state: DeliveryState
    payload: dict[str, Any]
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    trace: TraceContext | None = None


@dataclass
class _DigestItem:
    id: int
    person: str
    event_id: str
    kind: str
    reason: str
    title: str
    themes: tuple[str, ...]
    payload: dict[str, Any]
    created_at: datetime
    digest_id: int | None = None


@dataclass
class MemoryStore:
    """All state, shared by every InMemoryRepository made from it."""

    people: dict[str, PersonRecord] = field(default_factory=dict)
    erased: set[bytes] = field(default_factory=set)
    prefs: dict[str, Preferences] = field(default_factory=dict)
    follows: set[tuple[str, Follow]] = field(default_factory=set)
    mutes: set[tuple[str, Mute]] = field(default_factory=set)
    offers: dict[tuple[str, str], int] = field(default_factory=dict)
    asks: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: dict[tuple[str, date], int] = field(default_factory=dict)
    spent: set[tuple[str, date, str]] = field(default_factory=set)
    queue: list[Celebration] = field(default_factory=list)
    sends_woken: int = 0  # transactions that woke the delivery workers
    teams: dict[str, str] = field(default_factory=dict)
    deliveries: dict[int, _Delivery] = field(default_factory=dict)
    ledger: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    attempts: list[tuple[int, int, str, int | None, str | None]] = field(default_factory=list)
    inbox: dict[int, InboxItem] = field(default_factory=dict)
    inbox_owner: dict[int, str] = field(default_factory=dict)
    digest_items: dict[int, _DigestItem] = field(default_factory=dict)
    digests: list[tuple[int, str, date, int]] = field(default_factory=list)
    published: list[Envelope[Any]] = field(default_factory=list)
    seq: int = 0
    clock_now: datetime | None = None

    def next_id(self) -> int:
        self.seq += 1
        return self.seq


class InMemoryRepository:
    """Repository over a MemoryStore; no transactions (tests run one use case at a time)."""

    def __init__(self, store: MemoryStore) -> None:
        self.s = store

    # directory mirror -----------------------------------------------------------------
    async def upsert_person(self, p: PersonRecord) -> None:
        if erased_digest(p.person) in self.s.erased:
            return
        self.s.people[p.person] = p

    async def erase_person(self, person: str) -> None:
        s = self.s
        s.erased.add(erased_digest(person))
        s.people.pop(person, None)
        s.prefs.pop(person, None)
        s.follows = {
            (p, f)
            for p, f in s.follows
            if p != person and not (f.kind is FollowKind.PERSON and f.target == person)
        }
        s.mutes = {
            (p, m)
            for p, m in s.mutes
            if p != person and not (m.kind is MuteKind.PERSON and m.target == person)
        }
        s.offers = {k: v for k, v in s.offers.items() if k[0] != person}
        s.asks = {
            k: v for k, v in s.asks.items() if person not in (v.get("asker"), v.get("helper"))
        }
        s.budget = {k: v for k, v in s.budget.items() if k[0] != person}
        for iid in [i for i, owner in s.inbox_owner.items() if owner == person]:
            del s.inbox[iid]
            del s.inbox_owner[iid]
        for iid, item in list(s.inbox.items()):
            if item.subject == person:
                s.inbox[iid] = replace(
                    item, subject=None, title=REDACTED_TITLE, body="", payload={}
                )
        s.digest_items = {k: v for k, v in s.digest_items.items() if v.person != person}
        for di in s.digest_items.values():
            if di.payload.get("subject") == person:
                di.title, di.payload = REDACTED_TITLE, {}
        for d in s.deliveries.values():
            if d.payload.get("subject") == person:
                d.payload = {**d.payload, "subject": None, "title": REDACTED_TITLE, "body": ""}
        token = "erased:" + erased_digest(person).hex()[:16]
        for d in s.deliveries.values():
            if d.key.recipient == Recipient(RecipientKind.PERSON, person):
                s.ledger.pop(_ledger_key(d.key))
                d.key = DeliveryKey(
                    d.key.event_id, Recipient(RecipientKind.PERSON, token), d.key.channel
                )
                s.ledger[_ledger_key(d.key)] = d.id
                d.payload = {}
                d.last_error = None
                if d.state in (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.PARKED):
                    d.state = DeliveryState.CANCELLED

    async def profiles(self, persons: Iterable[str]) -> dict[str, Profile]:
        out: dict[str, Profile] = {}
        for p in persons:
            if erased_digest(p) in self.s.erased:
                continue
            rec = self.s.people.get(p)
            prefs = self.s.prefs.get(p, Preferences())
            if rec is None:
                out[p] = Profile(person=p, preferences=prefs)
            else:
                out[p] = Profile(
                    person=p,
                    team=rec.team,
                    timezone=rec.timezone,
                    email=rec.email,
                    name=rec.name,
                    active=rec.active,
                    preferences=prefs,
                )
        return out

    # preferences, follows, mutes --------------------------------------------------------
    async def get_preferences(self, person: str) -> Preferences | None:
        return self.s.prefs.get(person)

    async def put_preferences(self, person: str, prefs: Preferences) -> None:
        self.s.prefs[person] = prefs

    async def add_follow(self, person: str, follow: Follow) -> bool:
        new = (person, follow) not in self.s.follows
        self.s.follows.add((person, follow))
        return new

    async def remove_follow(self, person: str, follow: Follow) -> bool:
        had = (person, follow) in self.s.follows
        self.s.follows.discard((person, follow))
        return had

    async def list_follows(self, person: str, *, first: int, after: str | None) -> Page[Follow]:
        items = sorted(
            (f for p, f in self.s.follows if p == person), key=lambda f: (f.kind.value, f.target)
        )
        return _page(items, first, after, lambda f: (f.kind.value, f.target))

    async def add_mute(self, person: str, mute: Mute) -> bool:
        new = (person, mute) not in self.s.mutes
        self.s.mutes.add((person, mute))
        return new

    async def remove_mute(self, person: str, mute: Mute) -> bool:
        had = (person, mute) in self.s.mutes
        self.s.mutes.discard((person, mute))
        return had

    async def list_mutes(self, person: str, *, first: int, after: str | None) -> Page[Mute]:
        items = sorted(
            (m for p, m in self.s.mutes if p == person), key=lambda m: (m.kind.value, m.target)
        )
        return _page(items, first, after, lambda m: (m.kind.value, m.target))

    async def audience_facts(self, q: AudienceQuery) -> AudienceFacts:
        def followers(kind: FollowKind, targets: Iterable[str]) -> frozenset[str]:
            ts = set(targets)
            return frozenset(p for p, f in self.s.follows if f.kind is kind and f.target in ts)

        return AudienceFacts(
            person_followers=followers(
                FollowKind.PERSON, [q.person_followers] if q.person_followers else []
            ),
            team_followers=followers(
                FollowKind.TEAM, [q.team_followers] if q.team_followers else []
            ),
            theme_followers=followers(FollowKind.THEME, q.theme_followers),
            theme_offerers=frozenset(p for (p, t) in self.s.offers if t in q.theme_offerers),
        )

    async def audience_data(self, persons: Iterable[str], *, now: datetime) -> AudienceData:
        profiles = await self.profiles(persons)
        mutes: dict[str, list[Mute]] = {}
        for p, m in sorted(self.s.mutes, key=lambda pm: (pm[0], pm[1].kind, pm[1].target)):
            if p in profiles:
                mutes.setdefault(p, []).append(m)
        days = {now.date() + timedelta(days=d) for d in (-1, 0, 1)}
        used = {k: v for k, v in self.s.budget.items() if k[0] in profiles and k[1] in days}
        return AudienceData(profiles, mutes, used)

    async def team_channels(self, teams: Iterable[str]) -> dict[str, str]:
        return {t: self.s.teams[t] for t in teams if t in self.s.teams}

    async def set_team_channel(self, team: str, url: str | None) -> None:
        if url is None:
            self.s.teams.pop(team, None)
        else:
            self.s.teams[team] = url

    # offers and asks --------------------------------------------------------------------
    async def record_offer(self, person: str, themes: Sequence[str], at: datetime) -> None:
        for t in themes:
            self.s.offers[(person, t)] = self.s.offers.get((person, t), 0) + 1

    async def ask_requested(self, *, ask_id: str, asker: str, title: str) -> None:
        self.s.asks.setdefault(ask_id, {}).update(asker=asker, title=title)

    async def ask_resolved(self, *, ask_id: str, asker: str, helper: str, at: datetime) -> None:
        a = self.s.asks.setdefault(ask_id, {})
        a.update(asker=asker, helper=helper)
        a.setdefault("resolved_at", at)

    async def ask_closed(self, ask_id: str) -> None:
        self.s.asks.pop(ask_id, None)

    async def ask_thanked(self, ask_id: str, at: datetime) -> None:
        self.s.asks.setdefault(ask_id, {}).setdefault("thanked_at", at)

    async def due_reminders(self, *, resolved_before: datetime, limit: int) -> list[DueReminder]:
        out = [
            DueReminder(
                k, a["asker"], a.get("helper"), a.get("title") or "your ask", a["resolved_at"]
            )
            for k, a in self.s.asks.items()
            if a.get("resolved_at")
            and a["resolved_at"] <= resolved_before
            and not a.get("thanked_at")
            and not a.get("reminded_at")
        ]
        return sorted(out, key=lambda r: r.resolved_at)[:limit]

    async def mark_reminded(self, ask_id: str, at: datetime) -> None:
        self.s.asks[ask_id]["reminded_at"] = at

    # attention --------------------------------------------------------------------------
    async def commit_fanout(
        self,
        *,
        spend: Sequence[tuple[str, date, str]],
        deliveries: Sequence[NewDelivery],
        deferrals: Sequence[Deferral],
        now: datetime,
    ) -> list[NewDelivery]:
        for person, day, event_id in spend:
            if (person, day, event_id) not in self.s.spent:
                self.s.spent.add((person, day, event_id))
                self.s.budget[(person, day)] = self.s.budget.get((person, day), 0) + 1
        await self.defer(deferrals, now=now)
        return [d for d, _id in await self.reserve(deliveries, now=now)]

    async def enqueue_celebrations(self, cs: Sequence[Celebration]) -> None:
        self.s.queue.extend(cs)

    async def take_celebrations(self, *, limit: int) -> list[Celebration]:
        taken, self.s.queue = self.s.queue[:limit], self.s.queue[limit:]
        return taken

    async def prune_budget(self, before: date) -> None:
        self.s.budget = {k: v for k, v in self.s.budget.items() if k[1] >= before}

    # ledger, inbox, digests -------------------------------------------------------------
    async def reserve(
        self, deliveries: Sequence[NewDelivery], *, now: datetime
    ) -> list[tuple[NewDelivery, int]]:
        created = []
        for d in deliveries:
            lk = _ledger_key(d.key)
            if lk in self.s.ledger:
                continue
            did = self.s.next_id()
            self.s.ledger[lk] = did
            self.s.deliveries[did] = _Delivery(
                id=did,
                key=d.key,
                kind=d.message.kind.value,
                state=d.state,
                payload=d.message.to_payload(),
                next_attempt_at=now,
                created_at=now,
                delivered_at=now if d.state is DeliveryState.DELIVERED else None,
                trace=d.trace,
            )
            if d.key.channel is Channel.IN_APP and d.key.recipient.kind is RecipientKind.PERSON:
                iid = self.s.next_id()
                m = d.message
                self.s.inbox[iid] = InboxItem(
                    id=iid,
                    kind=m.kind.value,
                    about=m.about,
                    subject=m.subject,
                    title=m.title,
                    body=m.body,
                    themes=m.themes,
                    quiet=d.quiet,
                    created_at=now,
                    read_at=None,
                    payload=m.to_payload(),
                )
                self.s.inbox_owner[iid] = d.key.recipient.id
            created.append((d, did))
        return created

    async def defer(self, deferrals: Sequence[Deferral], *, now: datetime) -> int:
        n = 0
        for d in deferrals:
            if any(
                i.person == d.person and i.event_id == d.event_id
                for i in self.s.digest_items.values()
            ):
                continue
            iid = self.s.next_id()
            self.s.digest_items[iid] = _DigestItem(
                id=iid,
                person=d.person,
                event_id=d.event_id,
                kind=d.message.kind.value,
                reason=d.reason.value,
                title=d.message.title,
                themes=d.message.themes,
                payload=d.message.to_payload(),
                created_at=now,
            )
            n += 1
        return n

    async def publish(self, envelopes: Sequence[Envelope[Any]]) -> None:
        self.s.published.extend(envelopes)

    async def wake_senders(self) -> None:
        self.s.sends_woken += 1

    async def announce(self, items: Sequence[Announcement]) -> None:
        # Parsed back as the contract: a rendering that drifted from it fails here.
        self.s.published.extend(
            parse_for_topic(topics.CELEBRATION_DELIVERED_V2, a.payload) for a in items
        )

    async def inbox(
        self, person: str, *, unread: bool | None, first: int, after: str | None
    ) -> Page[InboxItem]:
        items = [
            i
            for i in self.s.inbox.values()
            if self.s.inbox_owner[i.id] == person
            and (unread is None or (i.read_at is None) == unread)
        ]
        items.sort(key=lambda i: -i.id)
        start = 0
        if after:
            last = int(decode_cursor(after, 1)[0])
            start = next((n for n, i in enumerate(items) if i.id < last), len(items))
        page = items[start : start + first]
        more = start + first < len(items)
        return Page(page, encode_cursor(page[-1].id) if more and page else None)

    async def mark_read(self, person: str, ids: Sequence[int], at: datetime) -> int:
        n = 0
        for i in ids:
            item = self.s.inbox.get(i)
            if item and self.s.inbox_owner[i] == person and item.read_at is None:
                self.s.inbox[i] = replace(item, read_at=at)
                n += 1
        return n

    async def digest_candidates(self, *, limit: int) -> list[str]:
        return sorted({i.person for i in self.s.digest_items.values() if i.digest_id is None})[
            :limit
        ]

    async def last_digest_day(self, person: str) -> date | None:
        days = [d for _, p, d, _ in self.s.digests if p == person]
        return max(days) if days else None

    async def take_digest_entries(self, person: str) -> list[DigestEntry]:
        return [
            DigestEntry(i.id, Kind(i.kind), i.title, i.themes, i.created_at)
            for i in sorted(self.s.digest_items.values(), key=lambda i: i.id)
            if i.person == person and i.digest_id is None
        ]

    async def create_digest(self, person: str, *, local_day: date, item_ids: Sequence[int]) -> int:
        did = self.s.next_id()
        self.s.digests.append((did, person, local_day, len(item_ids)))
        for i in item_ids:
            self.s.digest_items[i].digest_id = did
        return did

    # delivery worker --------------------------------------------------------------------
    async def claim(
        self, *, channels: Sequence[Channel], limit: int, lease_seconds: float, now: datetime
    ) -> list[ClaimedDelivery]:
        out: list[ClaimedDelivery] = []
        for d in sorted(self.s.deliveries.values(), key=lambda d: (d.next_attempt_at or now, d.id)):
            if len(out) >= limit:
                break
            if d.state not in (DeliveryState.PENDING, DeliveryState.FAILED):
                continue
            if d.key.channel not in channels or (d.next_attempt_at and d.next_attempt_at > now):
                continue
            if d.lease_until and d.lease_until > now:
                continue
            d.lease_until = now + timedelta(seconds=lease_seconds)
            d.attempts += 1
            out.append(
                ClaimedDelivery(
                    id=d.id,
                    key=d.key,
                    idempotency_key=d.key.idempotency_key,
                    message=Message.from_payload(d.payload),
                    attempts=d.attempts,
                    destination=self._destination(d.key),
                    trace=d.trace,
                )
            )
        return out

    def _destination(self, key: DeliveryKey) -> str | None:
        r = key.recipient
        if r.kind is RecipientKind.TEAM:
            return self.s.teams.get(r.id)
        if key.channel is Channel.EMAIL:
            rec = self.s.people.get(r.id)
            return rec.email if rec else None
        if key.channel is Channel.WEBHOOK:
            prefs = self.s.prefs.get(r.id)
            return prefs.webhook_url if prefs else None
        return None

    async def record(self, records: Sequence[AttemptRecord], now: datetime) -> None:
        for rec in records:
            d = self.s.deliveries[rec.delivery.id]
            self.s.attempts.append(
                (
                    d.id,
                    rec.delivery.attempts,
                    rec.result.outcome.value,
                    rec.result.status,
                    rec.result.error,
                )
            )
            if d.state is DeliveryState.CANCELLED:
                continue
            d.state = rec.state
            d.lease_until = None
            d.last_error = rec.result.error
            if rec.state is DeliveryState.DELIVERED:
                d.delivered_at = now
            if rec.next_attempt_at is not None:
                d.next_attempt_at = rec.next_attempt_at

    async def parked(self, *, limit: int) -> list[ParkedDelivery]:
        return [
            ParkedDelivery(
                d.id,
                d.key.event_id,
                d.key.recipient.kind.value,
                d.key.recipient.id,
                d.key.channel.value,
                d.kind,
                d.attempts,
                d.last_error,
                d.created_at or datetime.now().astimezone(),
            )
            for d in sorted(self.s.deliveries.values(), key=lambda d: d.id)
            if d.state is DeliveryState.PARKED
        ][:limit]

    async def unpark(self, ids: Sequence[int] | None, now: datetime) -> int:
        n = 0
        for d in self.s.deliveries.values():
            if d.state is DeliveryState.PARKED and (ids is None or d.id in ids):
                d.state, d.attempts, d.next_attempt_at, d.lease_until = (
                    DeliveryState.PENDING,
                    0,
                    now,
                    None,
                )
                n += 1
        return n

    async def parked_count(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.s.deliveries.values():
            if d.state is DeliveryState.PARKED:
                out[d.key.channel.value] = out.get(d.key.channel.value, 0) + 1
        return out


def _ledger_key(k: DeliveryKey) -> tuple[str, str, str, str]:
    return (k.event_id, k.recipient.kind.value, k.recipient.id, k.channel.value)


def _page(items: list[Any], first: int, after: str | None, key: Any) -> Page[Any]:
    start = 0
    if after:
        kind, target = decode_cursor(after, 2)
        start = next((n for n, i in enumerate(items) if key(i) > (kind, target)), len(items))
    page = items[start : start + first]
    more = start + first < len(items)
    return Page(page, encode_cursor(*key(page[-1])) if more and page else None)


class MemoryUnitOfWork:
    """UnitOfWork over a MemoryStore."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.store = store or MemoryStore()

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[InMemoryRepository]:
        yield InMemoryRepository(self.store)
