"""The CloudEvents-style envelope every Thrive event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thrive_shared.contracts.upcast import UPCASTERS, UpcastError, Upcasters

SPECVERSION: Literal["1.0"] = "1.0"

# Producers always send these; a default filled in by a consumer would break dedup
# (a fresh id per redelivery) or replay (a fresh time), so parsing requires them.
WIRE_REQUIRED: tuple[str, ...] = ("specversion", "id", "source", "type", "time", "subject", "data")


class EventData(BaseModel):
    """Base of every event payload: one topic, one CloudEvents type, one schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TOPIC: ClassVar[str]
    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    # Earlier topic versions whose events this class still reads, upcast on consume.
    PAST_TOPICS: ClassVar[tuple[str, ...]] = ()

    def partition_key(self) -> str:
        """The person (or board) this event is mostly about; Kafka's partition key."""
        raise NotImplementedError


DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 structured-mode envelope, JSON on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = Field(
        default=SPECVERSION, description="CloudEvents specification version."
    )
    id: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        min_length=1,
        max_length=200,
        description="Unique per source; consumers deduplicate on (source, id).",
    )
    source: str = Field(
        min_length=1,
        max_length=200,
        description="Who produced the event: 'thrive/recognition', 'helpdesk', ...",
    )
    type: str = Field(min_length=1, max_length=200, description="e.g. 'thrive.help.received'")
    time: datetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the fact happened (RFC 3339).",
    )
    subject: str = Field(
        min_length=1, max_length=200, description="The partition key: mostly a person id."
    )
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Encoding of `data`: always JSON."
    )
    # Strict: a version is a JSON integer, never `true`, `1.0` or `"1"` (parsing from bytes
    # must refuse what parse_event_object's check refuses).
    schemaversion: int = Field(
        default=1, ge=1, strict=True, description="Version of `data`'s schema."
    )
    data: DataT

    def to_json(self) -> bytes:
        """Serialise for Kafka."""
        return self.model_dump_json().encode()


class InvalidEvent(ValueError):
    """The bytes on a topic do not form a valid event; the reason is for a DLQ header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tombstone(InvalidEvent):
    """A record with a null value: compaction's delete marker, not an event."""

    def __init__(self) -> None:
        super().__init__("value: empty record (tombstone)")


_ENVELOPE_TYPES: dict[type[EventData], type[Envelope[Any]]] = {}


def envelope_type(data_type: type[DataT]) -> type[Envelope[DataT]]:
    """The concrete envelope model for a payload type."""
    # Memoised here: pydantic's own cache costs microseconds per lookup, on every event.
    model = _ENVELOPE_TYPES.get(data_type)
    if model is None:
        model = _ENVELOPE_TYPES[data_type] = Envelope[data_type]  # type: ignore[valid-type]
    return model


def make_event(
    data: DataT,
    *,
    source: str,
    id: str | None = None,
    time: datetime | None = None,
    subject: str | None = None,
) -> Envelope[DataT]:
    """Wrap a payload in an envelope with its type, schema version and partition key."""
    fields: dict[str, Any] = {
        "source": source,
        "type": data.TYPE,
        "subject": subject or data.partition_key(),
        "schemaversion": data.SCHEMA_VERSION,
        "data": data,
    }
    if id is not None:
        fields["id"] = id
    if time is not None:
        fields["time"] = time
    return envelope_type(type(data))(**fields)


def load_json_object(raw: bytes | str) -> dict[str, Any]:
    """Decode a record value to a JSON object, or raise InvalidEvent saying why not."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"<root>: not JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise InvalidEvent(f"<root>: not a JSON object (got {type(obj).__name__})")
    return obj


def parse_event(
    raw: bytes | str,
    data_type: type[DataT],
    *,
    upcasters: Upcasters = UPCASTERS,
) -> Envelope[DataT]:
    """Validate bytes as an envelope carrying `data_type`, or raise InvalidEvent with a reason."""
    return parse_event_object(load_json_object(raw), data_type, upcasters=upcasters)


def parse_event_object(
    obj: dict[str, Any],
    data_type: type[DataT],
    *,
    upcasters: Upcasters = UPCASTERS,
) -> Envelope[DataT]:
    """Validate a decoded JSON object as an envelope of `data_type`, upcasting older versions."""
    if "type" not in obj:
        raise InvalidEvent("type: Field required")
    if obj["type"] != data_type.TYPE:
        raise InvalidEvent(f"type: expected {data_type.TYPE!r}, got {obj['type']!r}")
    for name in WIRE_REQUIRED:
        if name not in obj:
            raise InvalidEvent(f"{name}: Field required")
    version = obj.get("schemaversion", 1)
    # bool is an int in Python but not a version on the wire.
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidEvent(f"schemaversion: Input should be a valid integer, got {version!r}")
    if version < 1:
        raise InvalidEvent(f"schemaversion: Input should be greater than or equal to 1 ({version})")
    if version > data_type.SCHEMA_VERSION:
        # Checked before validation: a newer payload may fail the older model, and the
        # operator needs to hear "upgrade this consumer", not "unexpected field".
        raise InvalidEvent(
            f"schemaversion: {version} is newer than supported {data_type.SCHEMA_VERSION}"
        )
    if version < data_type.SCHEMA_VERSION:
        try:
            obj = upcasters.upcast(
                obj,
                event_type=data_type.TYPE,
                from_version=version,
                to_version=data_type.SCHEMA_VERSION,
            )
        except UpcastError as exc:
            raise InvalidEvent(f"schemaversion: {exc}") from exc
    try:
        return envelope_type(data_type).model_validate(obj)
    except ValidationError as exc:
        raise InvalidEvent(_reason(exc)) from exc


def _reason(exc: ValidationError) -> str:
    """'data.helper: Field required' for the first error, and how many more there are."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
    reason = f"{where}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    return reason
