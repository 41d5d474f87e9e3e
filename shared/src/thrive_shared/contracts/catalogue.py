"""The event catalogue: per topic, its key, who writes it, who reads it, what it carries.

Documentation as data: the README, the AsyncAPI document and the tests read it, so a
new topic or type that is not described here fails the contract tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from thrive_shared.contracts import topics
from thrive_shared.contracts.envelope import EventData
from thrive_shared.contracts.events import (
    AskStatusChanged,
    CelebrationDelivered,
    ExternalHelp,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    LeaderboardChanged,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One Kafka topic as the contract describes it."""

    topic: str
    summary: str
    key: str
    writers: tuple[str, ...]
    readers: tuple[str, ...]
    events: tuple[type[EventData], ...]
    compacted: bool = False


# What the partition key (= envelope `subject`) is for each type: the person the
# event is mostly about, so that per-person order holds for milestones and standings.
KEYS: Mapping[type[EventData], str] = {
    HelpRequested: "`asker` (the person asking for help)",
    AskStatusChanged: "`asker` (the person whose ask changed)",
    HelpOffered: "`helper` (the person offering help)",
    HelpReceived: "`helper`, the person thanked (`thanks_id` once the helper is erased)",
    MilestoneReached: "`person` (who reached the milestone)",
    CelebrationDelivered: "`about` (the id of the celebrated event)",
    LeaderboardChanged: "the board, `metric:window:scope:scope_id` (`*` without a scope id)",
    ExternalHelp: "`helper` (the person who helped)",
    PersonUpserted: "`person` (the employee)",
    PersonErased: "`person` (the employee to forget)",
}

CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(
        topic=topics.HELP_REQUESTED,
        summary="Someone asked for help: sized, themed, expiring.",
        key="asker",
        writers=("recognition",),
        readers=("leaderboard", "notifier"),
        events=(HelpRequested,),
    ),
    TopicSpec(
        topic=topics.ASK_STATUS,
        summary="An ask was accepted, resolved, withdrawn or expired.",
        key="asker",
        writers=("recognition",),
        readers=("notifier",),
        events=(AskStatusChanged,),
    ),
    TopicSpec(
        topic=topics.HELP_OFFERED,
        summary="Someone offered help, in reply to an ask or standing on themes.",
        key="helper",
        writers=("recognition",),
        readers=("leaderboard", "notifier"),
        events=(HelpOffered,),
    ),
    TopicSpec(
        topic=topics.HELP_RECEIVED,
        summary="A thanks B: the core recognition act.",
        key="helper (the person thanked)",
        writers=("recognition",),
        readers=("leaderboard", "notifier"),
        events=(HelpReceived,),
    ),
    TopicSpec(
        topic=topics.MILESTONE_REACHED,
        summary="A person reached a milestone level; never taken back.",
        key="person",
        writers=("recognition",),
        readers=("leaderboard", "notifier"),
        events=(MilestoneReached,),
    ),
    TopicSpec(
        topic=topics.CELEBRATION_DELIVERED_V2,
        summary=(
            "The notifier delivered a celebration in-app to its recipients: one event per "
            "celebration (split past 1,000 recipients), the gateway pushes it to each one."
        ),
        key="about (the celebrated event)",
        writers=("notifier",),
        readers=("gateway",),
        events=(CelebrationDelivered,),
    ),
    TopicSpec(
        topic=topics.LEADERBOARD_CHANGED,
        summary="A board's top N changed or people moved (coalesced per board).",
        key="board",
        writers=("leaderboard",),
        readers=("gateway",),
        events=(LeaderboardChanged,),
    ),
    TopicSpec(
        topic=topics.INGEST_HELP,
        summary=(
            "Help offered or received in another enterprise system; recognition validates, "
            "deduplicates and republishes it on the canonical topics."
        ),
        key="helper",
        writers=("other enterprise systems (helpdesk, code review, ...)",),
        readers=("recognition",),
        events=(ExternalHelp,),
    ),
    TopicSpec(
        topic=topics.DIRECTORY_PERSON,
        summary="People mirrored from the HR system; compacted, so the latest per person stays.",
        key="person",
        writers=("the HR system",),
        readers=("recognition", "leaderboard", "notifier"),
        events=(PersonUpserted, PersonErased),
        compacted=True,
    ),
    TopicSpec(
        topic=topics.DLQ,
        summary=(
            "Records a consumer could not apply: original key and value bytes untouched, "
            "x-dlq-* headers naming where they came from and why they failed."
        ),
        key="the original record's key",
        writers=("every consumer",),
        readers=("operators (inspection and replay)",),
        events=(),
    ),
)

BY_TOPIC: Mapping[str, TopicSpec] = {spec.topic: spec for spec in CATALOGUE}
