"""Which payload types travel on which topic, and parsing bytes by topic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from thrive_shared.contracts.envelope import (
    Envelope,
    EventData,
    InvalidEvent,
    Tombstone,
    load_json_object,
    parse_event_object,
)
from thrive_shared.contracts.events import ALL_EVENTS
from thrive_shared.contracts.topics import contract_of
from thrive_shared.contracts.upcast import UPCASTERS, Upcasters

TypesByTopic = Mapping[str, Mapping[str, type[EventData]]]


def build_types_by_topic(
    events: Iterable[type[EventData]],
) -> dict[str, dict[str, type[EventData]]]:
    """Map each topic (current and past versions) to the payload classes it carries, by type."""
    out: dict[str, dict[str, type[EventData]]] = {}
    for cls in events:
        for topic in (cls.TOPIC, *cls.PAST_TOPICS):
            known = out.setdefault(topic, {})
            if cls.TYPE in known:
                raise ValueError(f"{cls.TYPE!r} is declared twice on {topic!r}")
            known[cls.TYPE] = cls
    return out


TYPES_BY_TOPIC: dict[str, dict[str, type[EventData]]] = build_types_by_topic(ALL_EVENTS)


def parse_for_topic(
    topic: str,
    raw: bytes | None,
    *,
    types: TypesByTopic = TYPES_BY_TOPIC,
    upcasters: Upcasters = UPCASTERS,
) -> Envelope[EventData]:
    """Parse a record's value by the types its topic carries, or raise InvalidEvent."""
    if raw is None:
        raise Tombstone()
    known = types.get(topic) or types.get(contract_of(topic))
    if not known:
        raise InvalidEvent(f"topic: {topic!r} carries no known event type")
    obj = load_json_object(raw)
    event_type = obj.get("type")
    cls = known.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        if event_type is None:
            raise InvalidEvent("type: Field required")
        raise InvalidEvent(f"type: {event_type!r} is not one of {sorted(known)} on {topic!r}")
    return parse_event_object(obj, cls, upcasters=upcasters)
