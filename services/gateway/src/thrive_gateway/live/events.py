"""What the live topics do to the gateway: push to subscribers and invalidate caches.

`LiveState.apply` is a plain function of one event, so it is tested without Kafka; the
Kafka consumer only parses records and calls it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from thrive_shared.contracts import (
    CelebrationDelivered,
    Envelope,
    HelpReceived,
    LeaderboardChanged,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
    Visibility,
)

from thrive_gateway.clients.models import MilestoneDTO, PersonDTO, ThanksDTO
from thrive_gateway.live.cache import TtlCache
from thrive_gateway.live.hub import Hub
from thrive_gateway.live.responses import (
    BOARDS_TAG,
    FEED_TAG,
    ResponseCache,
    board_tag,
    person_tag,
)

log = logging.getLogger(__name__)

FEED = "feed"


# Celebrations and boards go to keyed channels: a socket only ever receives what it
# subscribed to, so 1,000 sockets and 1,000 celebrations cost 1,000 queue puts, not 10^6.
def celebrations_for(audience: str, key: str) -> str:
    """The channel of celebrations for one person, team or theme."""
    return f"celebrations:{audience}:{key}"


def leaderboard_channel(board_key: str) -> str:
    """The channel of one board's changes."""
    return f"leaderboard:{board_key}"


@dataclass(frozen=True, slots=True)
class CelebrationNotice:
    """A celebration delivered to someone, as pushed to subscriptions."""

    id: str
    recipient: str
    team: str | None
    kind: str
    title: str
    about: str
    themes: tuple[str, ...]
    delivered_at: Any


@dataclass(frozen=True, slots=True)
class BoardNotice:
    """A board's top changed."""

    board_key: str
    metric: str
    window: str
    scope: str
    scope_id: str | None
    period: str
    top: tuple[tuple[str, int, float], ...]


@dataclass
class LiveState:
    """Hub plus the hot read models the events keep fresh."""

    hub: Hub = field(default_factory=Hub)
    feed_cache: TtlCache[tuple[Any, ...], Any] = field(
        default_factory=lambda: TtlCache(ttl=30.0, max_entries=2_000)
    )
    board_cache: TtlCache[tuple[Any, ...], Any] = field(
        default_factory=lambda: TtlCache(ttl=30.0, max_entries=2_000)
    )
    people_cache: TtlCache[str, PersonDTO | None] = field(
        default_factory=lambda: TtlCache(ttl=60.0, max_entries=50_000)
    )
    # Full profiles (with milestones) for `me`: same invalidation as people.
    profile_cache: TtlCache[str, PersonDTO | None] = field(
        default_factory=lambda: TtlCache(ttl=60.0, max_entries=50_000)
    )
    # Serialized responses of shared queries (feed, boards) and of `me`, by tag.
    responses: ResponseCache = field(default_factory=lambda: ResponseCache(ttl=30.0))
    applied: int = 0

    def forget_people(self, *people: str | None) -> None:
        """Drop cached people and profiles whose counts or names an event changed."""
        gone = {p for p in people if p is not None}
        self.people_cache.invalidate(lambda k: k in gone)
        self.profile_cache.invalidate(lambda k: k in gone)
        self.responses.invalidate(*(person_tag(p) for p in gone))

    def forget_feed(self) -> None:
        """The company feed changed: drop its cached pages and responses."""
        self.feed_cache.invalidate()
        self.responses.invalidate(FEED_TAG)

    def forget_boards(self) -> None:
        """Every board may have changed (someone opted out or back in): drop them all."""
        self.board_cache.invalidate()
        self.responses.invalidate(BOARDS_TAG)

    def apply(self, event: Envelope[Any]) -> None:
        """Apply one live event: invalidate what it changes, then notify subscribers."""
        data = event.data
        self.applied += 1
        if isinstance(data, HelpReceived):
            self.forget_people(data.giver, data.helper)
            if data.visibility == Visibility.PUBLIC:
                self.forget_feed()
                self.hub.publish(FEED, _thanks_item(data))
            # Boards are invalidated by LeaderboardChanged, which the leaderboard coalesces.
        elif isinstance(data, MilestoneReached):
            self.forget_people(data.person)
            self.forget_feed()
            self.hub.publish(FEED, _milestone_item(data))
        elif isinstance(data, CelebrationDelivered):
            self._celebrate(data)
        elif isinstance(data, LeaderboardChanged):
            key = data.board.key()
            self.board_cache.invalidate(lambda k: k[0] == key)
            self.responses.invalidate(board_tag(key))
            self.hub.publish(
                leaderboard_channel(key),
                BoardNotice(
                    board_key=key,
                    metric=data.board.metric,
                    window=data.board.window,
                    scope=data.board.scope,
                    scope_id=data.board.scope_id,
                    period=data.period,
                    top=tuple((s.person, s.rank, s.score) for s in data.top),
                ),
            )
        elif isinstance(data, PersonUpserted | PersonErased):
            self.forget_people(data.person)
            self.forget_feed()

    def _celebrate(self, data: CelebrationDelivered) -> None:
        """Push one celebration to each recipient's own channel, and once to its teams and themes.

        A recipient's notice names only them; a team's or theme's notice is that of the
        first recipient in the team (or of the first recipient), as each member's own
        delivery was shown once per celebration there before.
        """
        hub = self.hub
        themes = tuple(data.themes)
        team_notices: dict[str, CelebrationNotice] = {}
        first: CelebrationNotice | None = None
        for person, team in zip(data.recipients, data.teams, strict=True):
            mine = celebrations_for("person", person)
            wanted = (
                first is None
                or hub.subscriber_count(mine) > 0
                or (team is not None and team not in team_notices)
            )
            if not wanted:  # nobody listens for this one: most recipients of a large milestone
                continue
            notice = CelebrationNotice(
                id=f"{data.about}:{person}",
                recipient=person,
                team=team,
                kind=data.kind,
                title=data.title,
                about=data.about,
                themes=themes,
                delivered_at=data.delivered_at,
            )
            first = first or notice
            hub.publish(mine, notice)
            if team is not None and team not in team_notices:
                team_notices[team] = notice
        for team, notice in team_notices.items():
            hub.publish(celebrations_for("team", team), notice)
        if first is not None:
            for theme in themes:
                hub.publish(celebrations_for("theme", theme), first)


def _thanks_item(data: HelpReceived) -> ThanksDTO:
    return ThanksDTO(
        id=data.thanks_id,
        giver=data.giver,
        helper=data.helper,
        giver_team=data.giver_team,
        helper_team=data.helper_team,
        message=data.message,
        themes=list(data.themes),
        ask_id=data.ask_id,
        offer_id=data.offer_id,
        visibility=data.visibility.value,
        discounted=data.discounted,
        given_at=data.given_at,
    )


def _milestone_item(data: MilestoneReached) -> MilestoneDTO:
    return MilestoneDTO(
        id=data.milestone_id,
        person=data.person,
        team=data.team,
        rule_id=data.rule_id,
        level=data.level,
        size=data.size.value,
        title=data.title,
        themes=list(data.themes),
        reached_at=data.reached_at,
    )
