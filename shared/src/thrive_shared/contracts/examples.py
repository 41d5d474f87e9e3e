"""One realistic, deterministic example event per type: for the docs and for tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from thrive_shared.contracts.envelope import Envelope, EventData, make_event
from thrive_shared.contracts.events import (
    AskSize,
    AskStatus,
    AskStatusChanged,
    Board,
    CelebrationDelivered,
    CelebrationSize,
    Channel,
    ExternalHelp,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    IngestKind,
    LeaderboardChanged,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
    RankMove,
    Standing,
    Visibility,
)

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)

EXAMPLES: Mapping[type[EventData], EventData] = {
    HelpRequested: HelpRequested(
        ask_id="ask-7",
        asker="ana",
        title="Pair on a flaky asyncpg test?",
        themes=["python", "testing"],
        size=AskSize.CHAT,
        expires_at=AT + timedelta(days=7),
    ),
    AskStatusChanged: AskStatusChanged(
        ask_id="ask-7",
        asker="ana",
        status=AskStatus.RESOLVED,
        offer_id="offer-3",
        helper="bo",
        themes=["python", "testing"],
    ),
    HelpOffered: HelpOffered(
        offer_id="offer-3",
        helper="bo",
        ask_id="ask-7",
        asker="ana",
        themes=["python"],
        message="Free after lunch, bring the stack trace.",
    ),
    HelpReceived: HelpReceived(
        thanks_id="thanks-12",
        giver="ana",
        helper="bo",
        giver_team="payments",
        helper_team="platform",
        message="Found the race in ten minutes. Thank you!",
        themes=["python", "customer-first"],
        ask_id="ask-7",
        offer_id="offer-3",
        visibility=Visibility.PUBLIC,
        given_at=AT,
    ),
    MilestoneReached: MilestoneReached(
        milestone_id="bo:people-helped:1",
        person="bo",
        team="platform",
        rule_id="people-helped",
        level=1,
        size=CelebrationSize.LARGE,
        title="Helped ten different people",
        themes=["python"],
        reached_at=AT,
    ),
    CelebrationDelivered: CelebrationDelivered(
        delivery_id="delivered-40",
        about="milestone:ana:people-helped:1",
        channel=Channel.IN_APP,
        kind="milestone",
        title="Ana reached: Helped ten different people",
        themes=["python"],
        recipients=["ana", "bo", "cy"],
        teams=["platform", "platform", None],
        delivered_at=AT + timedelta(seconds=2),
    ),
    LeaderboardChanged: LeaderboardChanged(
        board=Board(metric="service", window="week", scope="team", scope_id="platform"),
        period="2026-W48",
        top=[
            Standing(person="bo", rank=1, score=12.5),
            Standing(person="cy", rank=2, score=9.0),
        ],
        moved=[RankMove(person="bo", old_rank=2, new_rank=1)],
    ),
    ExternalHelp: ExternalHelp(
        kind=IngestKind.HELP_RECEIVED,
        helper="cy",
        helped="ana",
        message="Reviewed the migration PR",
        themes=["code-review"],
        url="https://git.example.com/pr/318",
        occurred_at=AT,
    ),
    PersonUpserted: PersonUpserted(
        person="bo",
        name="Bo Lindqvist",
        email="bo@example.com",
        team="platform",
        manager="dee",
        timezone="Europe/Stockholm",
        locale="sv",
    ),
    PersonErased: PersonErased(person="ed"),
}

# Who produces each example: ingest and directory events come from other systems.
_SOURCES: Mapping[type[EventData], str] = {
    ExternalHelp: "helpdesk",
    PersonUpserted: "hr",
    PersonErased: "hr",
    CelebrationDelivered: "thrive/notifier",
    LeaderboardChanged: "thrive/leaderboard",
}


def example_event(cls: type[EventData]) -> Envelope[EventData]:
    """The example of `cls` in its envelope, with a stable id and time."""
    data = EXAMPLES[cls]
    return make_event(
        data,
        source=_SOURCES.get(cls, "thrive/recognition"),
        id=f"example-{cls.TYPE}",
        time=AT,
    )
