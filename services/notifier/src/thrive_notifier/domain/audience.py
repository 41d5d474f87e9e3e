"""Who hears about a celebration: audiences from follows and offers, filtered by mutes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from thrive_notifier.domain.model import Celebration, Kind, Mute, MuteKind, Recipient, RecipientKind


@dataclass(frozen=True, slots=True)
class AudienceQuery:
    """Which follow and offer lookups a celebration needs before its audience can be resolved."""

    person_followers: str | None = None
    team_followers: str | None = None
    theme_followers: tuple[str, ...] = ()
    theme_offerers: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (
            self.person_followers
            or self.team_followers
            or self.theme_followers
            or self.theme_offerers
        )


@dataclass(frozen=True, slots=True)
class AudienceFacts:
    """The answers to an AudienceQuery, as sets of person ids."""

    person_followers: frozenset[str] = field(default_factory=frozenset)
    team_followers: frozenset[str] = field(default_factory=frozenset)
    theme_followers: frozenset[str] = field(default_factory=frozenset)
    theme_offerers: frozenset[str] = field(default_factory=frozenset)


def audience_query(c: Celebration) -> AudienceQuery:
    """The lookups this celebration's audience depends on (none for personal ones)."""
    if c.kind is Kind.MILESTONE and c.large and not c.private:
        return AudienceQuery(
            person_followers=c.subject, team_followers=c.team, theme_followers=c.themes
        )
    if c.kind is Kind.ASK and c.themes:
        return AudienceQuery(theme_followers=c.themes, theme_offerers=c.themes)
    return AudienceQuery()


def candidates(c: Celebration, facts: AudienceFacts) -> list[Recipient]:
    """Everyone the celebration would reach before mutes apply, each once, in a stable order."""
    people: set[str] = set()
    teams: list[Recipient] = []
    if c.kind in (Kind.THANKS, Kind.REMINDER):
        people.add(c.subject)
    elif c.kind is Kind.MILESTONE:
        people.add(c.subject)
        if c.large and not c.private:
            people |= facts.person_followers | facts.team_followers | facts.theme_followers
            if c.team:
                teams.append(Recipient(RecipientKind.TEAM, c.team))
    elif c.kind is Kind.ASK:
        # A gentle nudge only to people who follow the themes and have helped on them before.
        people |= facts.theme_followers & facts.theme_offerers
        people.discard(c.subject)
    # Nobody is told about their own act of thanking.
    if c.actor and c.actor != c.subject:
        people.discard(c.actor)
    return [Recipient(RecipientKind.PERSON, p) for p in sorted(people)] + teams


def is_muted(c: Celebration, mutes: Iterable[Mute]) -> bool:
    """True when any of the recipient's mutes covers a person, theme or kind of this celebration."""
    for m in mutes:
        if m.kind is MuteKind.PERSON and m.target in c.involved:
            return True
        if m.kind is MuteKind.THEME and m.target in c.themes:
            return True
        if m.kind is MuteKind.KIND and m.target == c.kind.value:
            return True
    return False


def resolve_audience(
    c: Celebration,
    facts: AudienceFacts,
    mutes: Mapping[str, Iterable[Mute]],
) -> list[Recipient]:
    """The final audience: candidates minus everyone whose mutes cover it (mutes beat follows)."""
    return [
        r
        for r in candidates(c, facts)
        if r.kind is RecipientKind.TEAM or not is_muted(c, mutes.get(r.id, ()))
    ]
