"""Event payloads: one class per CloudEvents type, each bound to a versioned topic.

Past tense for events. A payload's schema only changes by adding a new class on a
new topic version; old versions are upcast on consume.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from thrive_shared.contracts import topics
from thrive_shared.contracts.envelope import EventData


def _normalise_theme(value: str) -> str:
    value = value.strip().lstrip("#").lower()
    if not value:
        raise ValueError("a theme cannot be empty")
    return value


def _dedupe(values: list[str]) -> list[str]:
    # '#Python' and 'python' are one theme once normalised; count it once.
    return list(dict.fromkeys(values))


PersonId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@:-]+$")]
TeamId = Annotated[str, Field(min_length=1, max_length=100)]
Theme = Annotated[
    str,
    Field(min_length=1, max_length=50, pattern=r"^#?[A-Za-z0-9][A-Za-z0-9_-]*$"),
    AfterValidator(_normalise_theme),
]
Themes = Annotated[list[Theme], Field(max_length=10), AfterValidator(_dedupe)]


class AskSize(StrEnum):
    """How big an ask is: a coffee, not a trip abroad."""

    QUICK = "quick"  # ~5 minutes
    CHAT = "chat"  # ~30 minutes
    SESSION = "session"  # ~2 hours


class AskStatus(StrEnum):
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"  # only giver and helper see it


class CelebrationSize(StrEnum):
    SMALL = "small"
    LARGE = "large"


class Channel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


class HelpRequested(EventData):
    """Someone asked for help."""

    TOPIC: ClassVar[str] = topics.HELP_REQUESTED
    TYPE: ClassVar[str] = "thrive.help.requested"

    ask_id: str = Field(min_length=1, max_length=100)
    asker: PersonId
    title: str = Field(min_length=1, max_length=200)
    themes: Themes = Field(default_factory=list)
    size: AskSize
    expires_at: datetime

    def partition_key(self) -> str:
        return self.asker


class AskStatusChanged(EventData):
    """An ask was accepted, resolved, withdrawn or expired (expiry is never shown publicly)."""

    TOPIC: ClassVar[str] = topics.ASK_STATUS
    TYPE: ClassVar[str] = "thrive.ask.status_changed"

    ask_id: str = Field(min_length=1, max_length=100)
    asker: PersonId
    status: AskStatus
    offer_id: str | None = None
    helper: PersonId | None = Field(
        default=None,
        description="Whose accepted offer resolved it: the asker is prompted to thank them.",
    )
    themes: Themes = Field(default_factory=list)

    def partition_key(self) -> str:
        return self.asker


class HelpOffered(EventData):
    """Someone offered help: in reply to an ask, or standing on themes."""

    TOPIC: ClassVar[str] = topics.HELP_OFFERED
    TYPE: ClassVar[str] = "thrive.help.offered"

    offer_id: str = Field(min_length=1, max_length=100)
    helper: PersonId
    ask_id: str | None = None
    asker: PersonId | None = None
    themes: Themes = Field(default_factory=list)
    message: str = Field(default="", max_length=2000)
    origin: str = Field(default="thrive", description="System the offer came from.")

    def partition_key(self) -> str:
        return self.helper


class HelpReceived(EventData):
    """A thanks B: the core recognition act. `giver` was helped, `helper` is thanked."""

    TOPIC: ClassVar[str] = topics.HELP_RECEIVED
    TYPE: ClassVar[str] = "thrive.help.received"

    thanks_id: str = Field(min_length=1, max_length=100)
    giver: PersonId | None = Field(description="Who was helped; null once erased.")
    helper: PersonId | None = Field(description="Who is thanked; null once erased.")
    giver_team: TeamId | None = None
    helper_team: TeamId | None = None
    message: str = Field(default="", max_length=2000)
    themes: Themes = Field(default_factory=list)
    ask_id: str | None = None
    offer_id: str | None = None
    visibility: Visibility = Visibility.PUBLIC
    discounted: bool = Field(
        default=False, description="Part of a reciprocal ring: leaderboards weigh it less."
    )
    origin: str = Field(default="thrive", description="System the thanks came from.")
    given_at: datetime

    def partition_key(self) -> str:
        return self.helper or self.thanks_id


class MilestoneReached(EventData):
    """A person reached a milestone level; reached once, never taken back."""

    TOPIC: ClassVar[str] = topics.MILESTONE_REACHED
    TYPE: ClassVar[str] = "thrive.milestone.reached"

    milestone_id: str = Field(min_length=1, max_length=200)
    person: PersonId
    team: TeamId | None = None
    rule_id: str = Field(min_length=1, max_length=100)
    level: int = Field(ge=1)
    size: CelebrationSize
    title: str = Field(min_length=1, max_length=200)
    themes: Themes = Field(default_factory=list)
    reached_at: datetime

    def partition_key(self) -> str:
        return self.person


class CelebrationDelivered(EventData):
    """The notifier delivered a celebration in-app to its recipients (the gateway pushes it).

    One event per celebration and fan-out, not one per recipient: a large milestone reaches
    ~1,500 people. Past MAX_RECIPIENTS the notifier splits it into several events, so a
    record stays far below Kafka's message size (at most ~210 kB with the longest ids).
    """

    TOPIC: ClassVar[str] = topics.CELEBRATION_DELIVERED_V2
    TYPE: ClassVar[str] = "thrive.celebration.delivered"
    SCHEMA_VERSION: ClassVar[int] = 2
    PAST_TOPICS: ClassVar[tuple[str, ...]] = (topics.CELEBRATION_DELIVERED,)
    MAX_RECIPIENTS: ClassVar[int] = 1_000

    delivery_id: str = Field(
        min_length=1,
        max_length=200,
        description="Id of this announcement: one per (celebration, recipients) it names.",
    )
    about: str = Field(min_length=1, max_length=200, description="Id of the event celebrated.")
    channel: Channel
    kind: str = Field(description="thanks, milestone, ask, reminder, digest")
    title: str = Field(default="", max_length=300)
    themes: Themes = Field(default_factory=list)
    recipients: list[PersonId] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="Who the celebration reached, each once.",
    )
    teams: list[TeamId | None] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description="teams[i] is recipients[i]'s team (null when they have none).",
    )
    delivered_at: datetime

    @model_validator(mode="after")
    def _one_team_per_recipient(self) -> CelebrationDelivered:
        if len(self.teams) != len(self.recipients):
            raise ValueError(
                f"teams has {len(self.teams)} entries for {len(self.recipients)} recipients"
            )
        if len(set(self.recipients)) != len(self.recipients):
            raise ValueError("recipients must not repeat")
        return self

    def partition_key(self) -> str:
        return self.about


class Board(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    window: str
    scope: str = "company"
    scope_id: str | None = None

    def key(self) -> str:
        return ":".join([self.metric, self.window, self.scope, self.scope_id or "*"])


class Standing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    person: PersonId
    rank: int = Field(ge=1)
    score: float


class RankMove(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    person: PersonId
    old_rank: int | None
    new_rank: int | None


class LeaderboardChanged(EventData):
    """A board's top N changed or people moved; coalesced to at most one per board per second."""

    TOPIC: ClassVar[str] = topics.LEADERBOARD_CHANGED
    TYPE: ClassVar[str] = "thrive.leaderboard.changed"

    board: Board
    period: str = Field(description="e.g. '2026-W48', '2026-11', '2026-Q4', '2026', 'all'")
    top: list[Standing]
    moved: list[RankMove] = Field(default_factory=list)

    def partition_key(self) -> str:
        return self.board.key()


class IngestKind(StrEnum):
    HELP_OFFERED = "help_offered"
    HELP_RECEIVED = "help_received"


class ExternalHelp(EventData):
    """Help offered or received in another enterprise system (helpdesk, code review, ...).

    The envelope's `source` names that system; recognition validates, deduplicates on
    (source, id) and republishes on the canonical topics.
    """

    TOPIC: ClassVar[str] = topics.INGEST_HELP
    TYPE: ClassVar[str] = "thrive.ingest.help"

    kind: IngestKind
    helper: PersonId
    helped: PersonId | None = Field(
        default=None, description="Who was helped; required for help_received."
    )
    message: str = Field(default="", max_length=2000)
    themes: Themes = Field(default_factory=list)
    url: str | None = Field(default=None, max_length=2000)
    occurred_at: datetime

    def partition_key(self) -> str:
        return self.helper


class PersonUpserted(EventData):
    """The HR system created or changed a person."""

    TOPIC: ClassVar[str] = topics.DIRECTORY_PERSON
    TYPE: ClassVar[str] = "directory.person.upserted"

    person: PersonId
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    team: TeamId
    manager: PersonId | None = None
    timezone: str = Field(default="UTC", max_length=64)
    locale: str = Field(default="en", max_length=35)
    active: bool = True

    def partition_key(self) -> str:
        return self.person


class PersonErased(EventData):
    """The HR system asks every service to forget this person (right to erasure)."""

    TOPIC: ClassVar[str] = topics.DIRECTORY_PERSON
    TYPE: ClassVar[str] = "directory.person.erased"

    person: PersonId

    def partition_key(self) -> str:
        return self.person


ALL_EVENTS: tuple[type[EventData], ...] = (
    HelpRequested,
    AskStatusChanged,
    HelpOffered,
    HelpReceived,
    MilestoneReached,
    CelebrationDelivered,
    LeaderboardChanged,
    ExternalHelp,
    PersonUpserted,
    PersonErased,
)
