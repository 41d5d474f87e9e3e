"""Kafka topic names. Versioned in the name: a new schema means a new topic."""

HELP_REQUESTED = "thrive.help.requested.v1"
ASK_STATUS = "thrive.ask.status.v1"
HELP_OFFERED = "thrive.help.offered.v1"
HELP_RECEIVED = "thrive.help.received.v1"
MILESTONE_REACHED = "thrive.milestone.reached.v1"
# v1 carried one recipient per event; retired (nothing new writes it), still parsed and upcast.
CELEBRATION_DELIVERED = "thrive.celebration.delivered.v1"
CELEBRATION_DELIVERED_V2 = "thrive.celebration.delivered.v2"
LEADERBOARD_CHANGED = "thrive.leaderboard.changed.v1"
INGEST_HELP = "thrive.ingest.help.v1"
DIRECTORY_PERSON = "directory.person.v1"  # compacted
DLQ = "thrive.dlq.v1"

ALL_TOPICS = (
    HELP_REQUESTED,
    ASK_STATUS,
    HELP_OFFERED,
    HELP_RECEIVED,
    MILESTONE_REACHED,
    CELEBRATION_DELIVERED_V2,
    LEADERBOARD_CHANGED,
    INGEST_HELP,
    DIRECTORY_PERSON,
    DLQ,
)

# Topics on their way out (expand/contract): no contract is published on them any more, but
# they stay deployed for one release so that rows an older pod left in its outbox still reach
# Kafka during a rolling upgrade (a relay cannot skip a row it cannot send). Only their old
# writer keeps a Write ACL; nobody reads them. Remove them from deploy/k8s one release later.
RETIRING_TOPICS = (CELEBRATION_DELIVERED,)

# An isolated copy of a topic is named "<topic>-<suffix>" (tests, replays, blue/green runs);
# it carries the same contract. A whole service can be pointed at such copies by setting
# THRIVE_TOPIC_SUFFIX, which `physical` appends to every topic it produces to or consumes.
SUFFIX_ENV = "THRIVE_TOPIC_SUFFIX"


def physical(topic: str) -> str:
    """The topic name to use on the wire: the contract name plus THRIVE_TOPIC_SUFFIX if set."""
    import os

    suffix = os.environ.get(SUFFIX_ENV, "")
    return f"{topic}-{suffix}" if suffix else topic


def contract_of(topic: str) -> str:
    """The contract (canonical) name of a physical topic: strips an isolation suffix."""
    return topic.split("-", 1)[0] if "-" in topic else topic
