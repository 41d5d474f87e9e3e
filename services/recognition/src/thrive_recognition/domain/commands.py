"""Commands: what a caller asks recognition to do, validated before any rule runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from thrive_shared.contracts import AskSize, Visibility
from thrive_shared.contracts.events import PersonId, Themes


def _dedupe(themes: list[str]) -> list[str]:
    return list(dict.fromkeys(themes))


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a timezone offset, e.g. 2026-01-31T12:00:00Z")
    return value


UniqueThemes = Annotated[Themes, AfterValidator(_dedupe)]
Text = Annotated[str, Field(max_length=2000)]
ResourceId = Annotated[str, Field(min_length=1, max_length=100)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CreateAsk(Command):
    """Ask for help: small, sized, themed, expiring."""

    asker: PersonId
    title: str = Field(min_length=1, max_length=200)
    details: str = Field(default="", max_length=5000)
    themes: UniqueThemes = Field(default_factory=list)
    size: AskSize
    expires_at: Annotated[datetime | None, AfterValidator(_aware)] = None


class WithdrawAsk(Command):
    """The asker no longer needs help."""

    ask_id: ResourceId
    person: PersonId


class ResolveAsk(Command):
    """The asker got the help they needed."""

    ask_id: ResourceId
    person: PersonId


class AcceptOffer(Command):
    """The asker accepts one offer made in reply to their ask."""

    ask_id: ResourceId
    person: PersonId
    offer_id: ResourceId


class MakeOffer(Command):
    """Offer help: in reply to an ask, or standing on themes."""

    helper: PersonId
    ask_id: ResourceId | None = None
    themes: UniqueThemes = Field(default_factory=list)
    message: Text = ""


class GiveThanks(Command):
    """`giver` thanks `helper` for their help."""

    giver: PersonId
    helper: PersonId
    message: Text = ""
    themes: UniqueThemes = Field(default_factory=list)
    ask_id: ResourceId | None = None
    offer_id: ResourceId | None = None
    visibility: Visibility = Visibility.PUBLIC
