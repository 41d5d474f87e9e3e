"""Which payload types travel on which topic, and parsing bytes by topic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from thrive_shared.contracts.envelope import (
    WIRE_REQUIRED,
    Envelope,
    EventData,
    InvalidEvent,
    Tombstone,
    envelope_type,
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
    if len(known) == 1:
        (only,) = known.values()
        if _from_bytes(only):
            env = _parse_current(raw, only)
            if env is not None:
                return env
    # The reference path: it also words the reason for whatever the fast path turned down.
    obj = load_json_object(raw)
    event_type = obj.get("type")
    cls = known.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        if event_type is None:
            raise InvalidEvent("type: Field required")
        raise InvalidEvent(f"type: {event_type!r} is not one of {sorted(known)} on {topic!r}")
    return parse_event_object(obj, cls, upcasters=upcasters)


# Envelope fields the model would fill in when absent, which a producer must send.
_DEFAULTED_WIRE_FIELDS = frozenset(
    name for name in WIRE_REQUIRED if not Envelope.model_fields[name].is_required()
)
_FROM_BYTES: dict[type[EventData], bool] = {}


def _from_bytes(cls: type[EventData]) -> bool:
    """Whether events of `cls` may be validated straight from bytes (see _parse_current).

    pydantic's JSON parser and orjson agree on everything but numbers: NaN and Infinity
    literals, and numbers past a double's range, are not JSON to orjson, and an integer
    past 64 bits is a float to orjson (which an int field refuses) but an int to pydantic.
    So a payload with a number field keeps the orjson path, where such input is refused.
    """
    known = _FROM_BYTES.get(cls)
    if known is None:
        known = _FROM_BYTES[cls] = not _has_number(cls.model_json_schema())
    return known


def _has_number(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("type") in ("integer", "number"):
            return True
        return any(_has_number(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_number(v) for v in schema)
    return False


def _parse_current(raw: bytes | str, cls: type[EventData]) -> Envelope[EventData] | None:
    """The event validated straight from bytes by pydantic's own JSON parser, or None.

    Per event this skips building a dict with orjson and checking it in Python (about a
    quarter of the decoding cost: 7.3 -> 5.3 µs for a HelpReceived). It only returns what
    parse_event_object would return for the same bytes: a valid event of `cls`'s current
    schema version that names every wire field.
    Anything else (invalid, older, another type) gets None, and the caller's reference path
    decides, so a rejected event's reason is worded exactly as before.
    """
    try:
        env = envelope_type(cls).model_validate_json(raw)
    except ValidationError:
        return None
    if (
        env.type != cls.TYPE
        or env.schemaversion != cls.SCHEMA_VERSION
        or not env.model_fields_set >= _DEFAULTED_WIRE_FIELDS
    ):
        return None
    return env
