"""What the notifier reasons about: celebrations, audiences, preferences and deliveries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from functools import cached_property
from typing import Any

from thrive_shared.contracts import Channel

__all__ = [
    "Celebration",
    "Channel",
    "DeliveryKey",
    "DeliveryState",
    "DigestFrequency",
    "Follow",
    "FollowKind",
    "Kind",
    "Mute",
    "MuteKind",
    "Preferences",
    "Profile",
    "Recipient",
    "RecipientKind",
    "TraceContext",
]


class Kind(StrEnum):
    """What is being celebrated or announced; also a target people can mute."""

    THANKS = "thanks"
    MILESTONE = "milestone"
    ASK = "ask"
    REMINDER = "reminder"
    DIGEST = "digest"


class FollowKind(StrEnum):
    PERSON = "person"
    TEAM = "team"
    THEME = "theme"


class MuteKind(StrEnum):
    PERSON = "person"
    THEME = "theme"
    KIND = "kind"


class RecipientKind(StrEnum):
    PERSON = "person"
    TEAM = "team"  # a team's channel (a webhook), not its members


class DigestFrequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    OFF = "off"


class DeliveryState(StrEnum):
    PENDING = "pending"  # reserved, not yet attempted
    DELIVERED = "delivered"
    FAILED = "failed"  # last attempt failed; will be retried at next_attempt_at
    PARKED = "parked"  # gave up; an operator retries it through the CLI
    CANCELLED = "cancelled"  # the recipient was erased before it went out


@dataclass(frozen=True, slots=True)
class Follow:
    kind: FollowKind
    target: str


@dataclass(frozen=True, slots=True)
class Mute:
    kind: MuteKind
    target: str


@dataclass(frozen=True, slots=True)
class Preferences:
    """A person's own attention settings; defaults apply until they change them."""

    daily_budget: int = 10
    quiet_start: time | None = None
    quiet_end: time | None = None
    timezone: str | None = None  # overrides the directory's timezone when set
    channels: frozenset[Channel] = frozenset({Channel.IN_APP})
    digest_frequency: DigestFrequency = DigestFrequency.DAILY
    digest_hour: int = 8
    webhook_url: str | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything needed to deliver to one person: directory facts plus preferences."""

    person: str
    team: str | None = None
    timezone: str = "UTC"
    email: str | None = None
    name: str | None = None
    active: bool = True
    preferences: Preferences = field(default_factory=Preferences)

    @property
    def effective_timezone(self) -> str:
        return self.preferences.timezone or self.timezone


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The W3C trace context of the event a celebration comes from.

    Kept with queued celebrations and pending deliveries, so the webhook or email sent
    seconds (or retries) later continues the trace of the user action that caused it.
    """

    traceparent: str
    tracestate: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TraceContext | None:
        """The context in W3C headers (lower-case names), or None when there is none."""
        parent = headers.get("traceparent")
        if not parent:
            return None
        return cls(parent, headers.get("tracestate") or None)

    def headers(self) -> dict[str, str]:
        """As W3C headers, for OpenTelemetry's propagator."""
        out = {"traceparent": self.traceparent}
        if self.tracestate:
            out["tracestate"] = self.tracestate
        return out


@dataclass(frozen=True, slots=True)
class Celebration:
    """One success (or ask, or reminder) to fan out, derived from one consumed event."""

    event_id: str
    kind: Kind
    subject: str  # the person it is about: the thanked helper, the milestone's person, the asker
    title: str
    occurred_at: datetime
    actor: str | None = None  # who acted, if not the subject: the thanks giver
    team: str | None = None  # the subject's team
    themes: tuple[str, ...] = ()
    large: bool = False  # a large milestone reaches team and followers
    private: bool = False  # private thanks: only the receiver ever hears of it
    message: str = ""
    url: str | None = None
    # Where it came from in tracing terms; not part of what is celebrated.
    trace: TraceContext | None = field(default=None, compare=False)
    # When its audience was planned (quiet hours, local day), if before it is fanned out: a
    # large milestone's sends go first, at the consumer, and its in-app rows later in a
    # lane, both decided as of this instant.
    planned_at: datetime | None = field(default=None, compare=False)

    @property
    def involved(self) -> frozenset[str]:
        """People this celebration is about; a mute on any of them silences it."""
        return frozenset(p for p in (self.subject, self.actor) if p)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the fan-out queue."""
        return {
            "event_id": self.event_id,
            "kind": self.kind.value,
            "subject": self.subject,
            "title": self.title,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "team": self.team,
            "themes": list(self.themes),
            "large": self.large,
            "private": self.private,
            "message": self.message,
            "url": self.url,
            "trace": self.trace.headers() if self.trace else None,
            "planned_at": self.planned_at.isoformat() if self.planned_at else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Celebration:
        """Inverse of to_dict."""
        return cls(
            event_id=d["event_id"],
            kind=Kind(d["kind"]),
            subject=d["subject"],
            title=d["title"],
            occurred_at=datetime.fromisoformat(d["occurred_at"]),
            actor=d.get("actor"),
            team=d.get("team"),
            themes=tuple(d.get("themes") or ()),
            large=bool(d.get("large")),
            private=bool(d.get("private")),
            message=d.get("message") or "",
            url=d.get("url"),
            trace=TraceContext.from_headers(d.get("trace") or {}),
            planned_at=datetime.fromisoformat(p) if (p := d.get("planned_at")) else None,
        )


@dataclass(frozen=True, slots=True, order=True)
class Recipient:
    kind: RecipientKind
    id: str


@dataclass(frozen=True)
class DeliveryKey:
    """The ledger's identity of one delivery: at most one per (event, recipient, channel)."""

    event_id: str
    recipient: Recipient
    channel: Channel

    @cached_property
    def idempotency_key(self) -> str:
        """Stable across retries and restarts; receivers deduplicate on it."""
        raw = "\x1f".join((self.event_id, self.recipient.kind, self.recipient.id, self.channel))
        return hashlib.sha256(raw.encode()).hexdigest()[:40]
