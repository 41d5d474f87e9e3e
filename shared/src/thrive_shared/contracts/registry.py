"""Which payload types travel on which topic, and parsing bytes by topic."""

from __future__ import annotations

import orjson

from thrive_shared.contracts.envelope import Envelope, EventData, InvalidEvent, parse_event
from thrive_shared.contracts.events import ALL_EVENTS

TYPES_BY_TOPIC: dict[str, dict[str, type[EventData]]] = {}
for _cls in ALL_EVENTS:
    TYPES_BY_TOPIC.setdefault(_cls.TOPIC, {})[_cls.TYPE] = _cls


def parse_for_topic(topic: str, raw: bytes | None) -> Envelope[EventData]:
    """Parse a record's value by the types its topic carries, or raise InvalidEvent."""
    if raw is None:
        raise InvalidEvent("value: empty record (tombstone)")
    types = TYPES_BY_TOPIC.get(topic)
    if not types:
        raise InvalidEvent(f"topic: {topic!r} carries no known event type")
    try:
        head = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"<root>: not JSON ({exc.msg})") from exc
    if not isinstance(head, dict):
        raise InvalidEvent("<root>: not a JSON object")
    event_type = head.get("type")
    cls = types.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        raise InvalidEvent(f"type: {event_type!r} is not one of {sorted(types)}")
    return parse_event(raw, cls)  # type: ignore[return-value]
