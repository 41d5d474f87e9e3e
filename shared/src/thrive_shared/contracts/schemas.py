"""JSON Schema of each event as it travels: the full envelope with its typed data."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, Literal, cast

from pydantic import Field, create_model

from thrive_shared.contracts.catalogue import KEYS
from thrive_shared.contracts.envelope import Envelope, EventData, envelope_type

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:thrive:contracts:"


def schema_name(cls: type[EventData]) -> str:
    """'thrive.help.received.v1': the CloudEvents type and the payload's schema version."""
    return f"{cls.TYPE}.v{cls.SCHEMA_VERSION}"


def model_name(cls: type[EventData]) -> str:
    """'HelpReceivedEventV1': the wire model's class name, an identifier (pydantic and
    AsyncAPI component keys mangle names containing dots)."""
    return f"{cls.__name__}EventV{cls.SCHEMA_VERSION}"


def schema_id(cls: type[EventData]) -> str:
    """The `$id` of an event's JSON Schema."""
    return f"{ID_PREFIX}{schema_name(cls)}"


def _describe(name: str) -> str:
    return Envelope.model_fields[name].description or ""


@cache
def wire_model(cls: type[EventData]) -> type[Envelope[Any]]:
    """The envelope as a producer must send it for one type and schema version.

    Stricter than `Envelope`: `type` and `schemaversion` are constants, and the fields a
    consumer must never fill in itself (`id`, `time`, `specversion`) are required.
    """
    base = envelope_type(cls)
    version = cls.SCHEMA_VERSION
    # Literal[...] of a runtime value: built through the special form on purpose.
    type_literal: Any = Literal.__getitem__(cls.TYPE)
    version_literal: Any = Literal.__getitem__(version)
    spec_literal: Any = Literal["1.0"]
    # Version 1 is what an envelope without `schemaversion` means; later ones must say so.
    version_field: Any = (
        Field(default=1, description=_describe("schemaversion"))
        if version == 1
        else Field(description=_describe("schemaversion"))
    )
    model = create_model(
        model_name(cls),
        __base__=base,
        __doc__=f"{cls.TYPE} v{version}: {cls.__doc__ or ''}".strip(),
        specversion=(spec_literal, Field(description=_describe("specversion"))),
        id=(str, Field(min_length=1, max_length=200, description=_describe("id"))),
        type=(type_literal, Field(description="CloudEvents type of this event.")),
        time=(datetime, Field(description=_describe("time"))),
        subject=(
            str,
            Field(min_length=1, max_length=200, description=f"Partition key: {KEYS[cls]}."),
        ),
        schemaversion=(version_literal, version_field),
    )
    return cast("type[Envelope[Any]]", model)


def json_schema(cls: type[EventData]) -> dict[str, Any]:
    """Self-contained JSON Schema (draft 2020-12) of an event of this type on the wire."""
    body = wire_model(cls).model_json_schema()
    doc = " ".join((cls.__doc__ or "").split())
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(cls),
        **body,
        "title": schema_name(cls),
        "description": (
            f"{doc} CloudEvents envelope of type {cls.TYPE!r}, schema version "
            f"{cls.SCHEMA_VERSION}, on topic {cls.TOPIC!r}; "
            f"the Kafka key is the envelope's subject, {KEYS[cls]}."
        ),
    }
