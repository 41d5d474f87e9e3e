"""What the services' internal APIs return, parsed leniently at the boundary.

Unknown fields are ignored so a service can add fields without breaking the gateway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Dto(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class MilestoneDTO(_Dto):
    id: str = Field(validation_alias=AliasChoices("id", "milestone_id"))
    person: str | None = None
    team: str | None = None
    rule_id: str
    level: int = 1
    size: str = "small"
    title: str
    themes: list[str] = Field(default_factory=list)
    reached_at: datetime


class PersonDTO(_Dto):
    id: str = Field(validation_alias=AliasChoices("id", "person"))
    name: str = ""
    team: str | None = None
    timezone: str = "UTC"
    counts: dict[str, int] = Field(default_factory=dict)
    milestones: list[MilestoneDTO] = Field(default_factory=list)


class ThanksDTO(_Dto):
    id: str = Field(validation_alias=AliasChoices("id", "thanks_id"))
    giver: str | None = None
    helper: str | None = None
    giver_team: str | None = None
    helper_team: str | None = None
    message: str = ""
    themes: list[str] = Field(default_factory=list)
    ask_id: str | None = None
    offer_id: str | None = None
    visibility: str = "public"
    discounted: bool = False
    given_at: datetime


class AskDTO(_Dto):
    id: str = Field(validation_alias=AliasChoices("id", "ask_id"))
    asker: str | None = None
    title: str
    details: str = ""
    themes: list[str] = Field(default_factory=list)
    size: str = "quick"
    status: str = "open"
    expires_at: datetime | None = None
    created_at: datetime | None = None


class OfferDTO(_Dto):
    id: str = Field(validation_alias=AliasChoices("id", "offer_id"))
    helper: str | None = None
    ask_id: str | None = None
    themes: list[str] = Field(default_factory=list)
    message: str = ""
    created_at: datetime | None = None


class Page(_Dto, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class StandingDTO(_Dto):
    person: str = Field(validation_alias=AliasChoices("person", "team"))
    rank: int
    score: float


class BoardDTO(_Dto):
    period: str | None = None
    items: list[StandingDTO] = Field(
        default_factory=list, validation_alias=AliasChoices("items", "top")
    )


class RankDTO(_Dto):
    person: str
    rank: int | None = None
    score: float | None = None
    opted_out: bool = False


class ThemeCountDTO(_Dto):
    theme: str
    count: int = 0


class QuietHoursDTO(_Dto):
    start: str
    end: str


class PreferencesDTO(_Dto):
    """The notifier's preferences document (its PUT takes exactly these keys)."""

    daily_budget: int = 10
    quiet_hours: QuietHoursDTO | None = None
    timezone: str | None = None
    channels: list[str] = Field(default_factory=lambda: ["in_app"])
    digest_frequency: str = "daily"
    digest_hour: int = 8
    webhook_url: str | None = None

    def as_payload(self) -> dict[str, Any]:
        """The JSON body for PUT."""
        return self.model_dump(mode="json")


class FilterDTO(_Dto):
    kind: str
    target: str


class InboxItemDTO(_Dto):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    id: str
    kind: str
    title: str = ""
    body: str = ""
    about: str | None = None
    themes: list[str] = Field(default_factory=list)
    created_at: datetime
    read_at: datetime | None = None

    @property
    def read(self) -> bool:
        return self.read_at is not None
