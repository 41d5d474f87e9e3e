"""The CloudEvents-style envelope every Thrive event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SPECVERSION: Literal["1.0"] = "1.0"


class EventData(BaseModel):
    """Base of every event payload: one topic, one CloudEvents type, one schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TOPIC: ClassVar[str]
    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1

    def partition_key(self) -> str:
        """The person (or board) this event is mostly about; Kafka's partition key."""
        raise NotImplementedError


DataT = TypeVar("DataT", bound=EventData)


class Envelope(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 structured-mode envelope, JSON on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = SPECVERSION
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
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str = Field(
        min_length=1, max_length=200, description="The partition key: mostly a person id."
    )
    datacontenttype: Literal["application/json"] = "application/json"
    schemaversion: int = Field(default=1, ge=1, description="Version of `data`'s schema.")
    data: DataT

    def to_json(self) -> bytes:
        """Serialise for Kafka."""
        return self.model_dump_json().encode()


class InvalidEvent(ValueError):
    """The bytes on a topic do not form a valid event; the reason is for a DLQ header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def make_event(
    data: DataT,
    *,
    source: str,
    id: str | None = None,  # noqa: A002 - CloudEvents calls it id
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
    return Envelope[type(data)](**fields)  # type: ignore[misc]


def parse_event(raw: bytes | str, data_type: type[DataT]) -> Envelope[DataT]:
    """Validate bytes as an envelope carrying `data_type`, or raise InvalidEvent with a reason."""
    try:
        env = Envelope[data_type].model_validate_json(raw)  # type: ignore[valid-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
        raise InvalidEvent(f"{where}: {first.get('msg', 'invalid')}") from exc
    if env.type != data_type.TYPE:
        raise InvalidEvent(f"type: expected {data_type.TYPE!r}, got {env.type!r}")
    if env.schemaversion > data_type.SCHEMA_VERSION:
        raise InvalidEvent(
            f"schemaversion: {env.schemaversion} is newer than supported "
            f"{data_type.SCHEMA_VERSION}"
        )
    return env
