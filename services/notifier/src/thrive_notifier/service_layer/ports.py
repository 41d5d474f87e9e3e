"""What the service layer needs from the outside world; adapters and fakes implement these."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from thrive_shared.contracts import Envelope

from thrive_notifier.domain.attention import DeferReason
from thrive_notifier.domain.audience import AudienceFacts, AudienceQuery
from thrive_notifier.domain.digest import DigestEntry
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import (
    Celebration,
    Channel,
    DeliveryKey,
    DeliveryState,
    Follow,
    Mute,
    Preferences,
    Profile,
    TraceContext,
)
from thrive_notifier.domain.retry import SendResult

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PersonRecord:
    person: str
    name: str
    email: str | None
    team: str | None
    timezone: str
    locale: str = "en"
    active: bool = True


@dataclass(frozen=True, slots=True)
class NewDelivery:
    key: DeliveryKey
    message: Message
    state: DeliveryState  # DELIVERED for in-app (written with the inbox item), else PENDING
    quiet: bool = False
    team: str | None = None  # recipient's team, for CelebrationDelivered
    trace: TraceContext | None = None  # the event's, for the send to continue its trace


@dataclass(frozen=True, slots=True)
class Announcement:
    """A rendered CelebrationDelivered event, for the outbox (the gateway pushes it)."""

    event_id: str
    key: str  # partition key: the recipient
    payload: bytes  # the envelope's JSON, exactly as Envelope.to_json() writes it
    trace: TraceContext | None = None  # the celebrated event's, so the push joins its trace


@dataclass(frozen=True, slots=True)
class Deferral:
    person: str
    event_id: str
    reason: DeferReason
    message: Message


@dataclass(frozen=True, slots=True)
class AudienceData:
    """What a fan-out reads in one round trip about its candidate recipients."""

    profiles: dict[str, Profile]  # known or defaulted; erased people are absent
    mutes: dict[str, list[Mute]]
    used: dict[tuple[str, date], int]  # live pings already counted, days around now


@dataclass(frozen=True, slots=True)
class LargeFanOutResult:
    """What one set-based fan-out wrote, as counts, plus the new announced in-app rows.

    `recipients`, `teams`, `keys` and `mine` are the new, non-quiet in-app deliveries (for
    CelebrationDelivered) in recipient order: who, their team, the ledger key, and whether
    they got the subject's own message.
    """

    delivered: dict[str, int]  # new in-app rows, by channel
    reserved: dict[str, int]  # new email/webhook rows, by channel
    deferred: dict[str, int]  # by reason (budget, quiet_hours), as planned
    skipped: int  # erased or inactive recipients
    recipients: list[str] = field(default_factory=list)
    teams: list[str | None] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    mine: list[bool] = field(default_factory=list)


@runtime_checkable
class LargeFanOut(Protocol):
    """A repository that fans a large milestone out set-based (in the store itself).

    Same rules and the same ledger keys as the per-recipient path (audience from follows,
    mutes win, quiet hours in the person's timezone, budget, digests; nothing dropped),
    without a Python object per recipient. `mine` is the subject's message, `others`
    everyone else's (and the team channel's).
    """

    async def fan_out_large(
        self, c: Celebration, *, mine: Message, others: Message, now: datetime
    ) -> LargeFanOutResult: ...

    async def reserve_large_sends(
        self, c: Celebration, *, mine: Message, others: Message, now: datetime
    ) -> dict[str, int] | None:
        """Only its email/webhook sends (people whose preferences name those channels, and
        the team channel), planned as `fan_out_large` will plan them at `c.planned_at`, which
        then keeps to that decision; new rows by channel, or None when the defaults may send
        (then no small set of people can go first)."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A pending delivery leased to this worker, with its current destination (if any)."""

    id: int
    key: DeliveryKey
    idempotency_key: str
    message: Message
    attempts: int  # including the one about to be made
    destination: str | None
    trace: TraceContext | None = None  # the send's parent: the event's consumer span


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    delivery: ClaimedDelivery
    result: SendResult
    state: DeliveryState
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    kind: str
    about: str
    subject: str | None
    title: str
    body: str
    themes: tuple[str, ...]
    quiet: bool
    created_at: datetime
    read_at: datetime | None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParkedDelivery:
    id: int
    event_id: str
    recipient_kind: str
    recipient: str
    channel: str
    kind: str
    attempts: int
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueReminder:
    ask_id: str
    asker: str
    helper: str | None
    title: str
    resolved_at: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class Repository(Protocol):
    """Everything the notifier stores, used inside one transaction."""

    # directory mirror
    async def upsert_person(self, p: PersonRecord) -> None: ...
    async def erase_person(self, person: str) -> None: ...
    async def profiles(self, persons: Iterable[str]) -> dict[str, Profile]:
        """People with preferences; unknown people get defaults, erased ones are absent."""
        ...

    # preferences, follows, mutes
    async def get_preferences(self, person: str) -> Preferences | None: ...
    async def put_preferences(self, person: str, prefs: Preferences) -> None: ...
    async def add_follow(self, person: str, follow: Follow) -> bool: ...
    async def remove_follow(self, person: str, follow: Follow) -> bool: ...
    async def list_follows(self, person: str, *, first: int, after: str | None) -> Page[Follow]: ...
    async def add_mute(self, person: str, mute: Mute) -> bool: ...
    async def remove_mute(self, person: str, mute: Mute) -> bool: ...
    async def list_mutes(self, person: str, *, first: int, after: str | None) -> Page[Mute]: ...
    async def audience_facts(self, q: AudienceQuery) -> AudienceFacts: ...
    async def audience_data(self, persons: Iterable[str], *, now: datetime) -> AudienceData:
        """Profiles, mutes and recent budget use of these people, in one read."""
        ...

    async def team_channels(self, teams: Iterable[str]) -> dict[str, str]: ...
    async def set_team_channel(self, team: str, url: str | None) -> None: ...

    # offers and asks
    async def record_offer(self, person: str, themes: Sequence[str], at: datetime) -> None: ...
    async def ask_requested(self, *, ask_id: str, asker: str, title: str) -> None: ...
    async def ask_resolved(self, *, ask_id: str, asker: str, helper: str, at: datetime) -> None: ...
    async def ask_closed(self, ask_id: str) -> None: ...
    async def ask_thanked(self, ask_id: str, at: datetime) -> None: ...
    async def due_reminders(
        self, *, resolved_before: datetime, limit: int
    ) -> list[DueReminder]: ...
    async def mark_reminded(self, ask_id: str, at: datetime) -> None: ...

    # attention
    async def prune_budget(self, before: date) -> None: ...

    # ledger, inbox, digests
    async def reserve(
        self, deliveries: Sequence[NewDelivery], *, now: datetime
    ) -> list[tuple[NewDelivery, int]]:
        """Insert ledger rows (and inbox items for delivered in-app ones); returns the new ones."""
        ...

    async def defer(self, deferrals: Sequence[Deferral], *, now: datetime) -> int: ...
    async def commit_fanout(
        self,
        *,
        spend: Sequence[tuple[str, date, str]],
        deliveries: Sequence[NewDelivery],
        deferrals: Sequence[Deferral],
        now: datetime,
    ) -> list[NewDelivery]:
        """Count budget (person, day, event), reserve deliveries, defer: one write. Returns
        the deliveries that were new (not already in the ledger)."""
        ...

    async def enqueue_celebrations(self, cs: Sequence[Celebration]) -> None:
        """Queue celebrations for the fan-out worker (in the caller's transaction)."""
        ...

    async def take_celebrations(self, *, limit: int) -> list[Celebration]:
        """Remove and return the oldest queued celebrations no other worker holds."""
        ...

    async def wake_senders(self) -> None:
        """Wake the delivery workers when this transaction commits (it reserved sends)."""
        ...

    async def publish(self, envelopes: Sequence[Envelope[Any]]) -> None: ...
    async def announce(self, items: Sequence[Announcement]) -> None:
        """Add rendered CelebrationDelivered events to the outbox, in order."""
        ...

    async def inbox(
        self, person: str, *, unread: bool | None, first: int, after: str | None
    ) -> Page[InboxItem]: ...
    async def mark_read(self, person: str, ids: Sequence[int], at: datetime) -> int: ...
    async def digest_candidates(self, *, limit: int) -> list[str]: ...
    async def last_digest_day(self, person: str) -> date | None: ...
    async def take_digest_entries(self, person: str) -> list[DigestEntry]:
        """Lock this person's waiting digest items (skipping ones another worker holds)."""
        ...

    async def create_digest(
        self, person: str, *, local_day: date, item_ids: Sequence[int]
    ) -> int: ...

    # delivery worker
    async def claim(
        self, *, channels: Sequence[Channel], limit: int, lease_seconds: float, now: datetime
    ) -> list[ClaimedDelivery]: ...
    async def record(self, records: Sequence[AttemptRecord], now: datetime) -> None: ...
    async def parked(self, *, limit: int) -> list[ParkedDelivery]: ...
    async def unpark(self, ids: Sequence[int] | None, now: datetime) -> int: ...
    async def parked_count(self) -> dict[str, int]: ...


class UnitOfWork(Protocol):
    """Opens one transaction and hands out the repository bound to it."""

    def __call__(self) -> AbstractAsyncContextManager[Repository]: ...


class Sender(Protocol):
    """Sends one delivery through one channel; never raises for delivery failures."""

    async def send(self, d: ClaimedDelivery) -> SendResult: ...
