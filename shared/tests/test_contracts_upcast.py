"""Upcasting older schema versions on consume, with a synthetic event type.

`ToyNoted` exists only in this test: it went through three schema versions, the way a
real contract would (v1 `text`; v2 renamed it to `note`; v3 added a required `mood`),
and moved topic with each one.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
import pytest
from thrive_shared.contracts import InvalidEvent, Upcasters, make_event, parse_event
from thrive_shared.contracts.envelope import EventData
from thrive_shared.contracts.registry import build_types_by_topic, parse_for_topic
from thrive_shared.contracts.upcast import UpcastError

TOY_V1 = "test.toy.noted.v1"
TOY_V2 = "test.toy.noted.v2"
TOY_V3 = "test.toy.noted.v3"


class ToyNoted(EventData):
    """Someone noted something (test-only contract)."""

    TOPIC: ClassVar[str] = TOY_V3
    TYPE: ClassVar[str] = "test.toy.noted"
    SCHEMA_VERSION: ClassVar[int] = 3
    PAST_TOPICS: ClassVar[tuple[str, ...]] = (TOY_V1, TOY_V2)

    author: str
    note: str
    mood: str

    def partition_key(self) -> str:
        return self.author


def upcast_v1_v2(event: dict[str, Any]) -> dict[str, Any]:
    data = dict(event["data"])
    data["note"] = data.pop("text")
    return {**event, "data": data}


def upcast_v2_v3(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "data": {**event["data"], "mood": "neutral"}}


@pytest.fixture
def upcasters() -> Upcasters:
    registry = Upcasters()
    registry.register(ToyNoted.TYPE, from_version=1)(upcast_v1_v2)
    registry.register(ToyNoted.TYPE, from_version=2)(upcast_v2_v3)
    return registry


TYPES = build_types_by_topic([ToyNoted])


def old_event(version: int, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": f"toy-{version}",
            "source": "thrive/test",
            "type": ToyNoted.TYPE,
            "time": "2026-01-05T08:00:00Z",
            "subject": "ana",
            "schemaversion": version,
            "data": data,
        }
    )


def test_a_v1_event_on_the_old_topic_is_lifted_to_the_current_model(
    upcasters: Upcasters,
) -> None:
    raw = old_event(1, {"author": "ana", "text": "the build is green"})
    event = parse_for_topic(TOY_V1, raw, types=TYPES, upcasters=upcasters)
    assert isinstance(event.data, ToyNoted)
    assert event.data == ToyNoted(author="ana", note="the build is green", mood="neutral")
    assert event.schemaversion == 3
    assert (event.id, event.source) == ("toy-1", "thrive/test")  # dedup identity kept


def test_a_v2_event_takes_only_the_remaining_step(upcasters: Upcasters) -> None:
    raw = old_event(2, {"author": "ana", "note": "shipped"})
    event = parse_for_topic(TOY_V2, raw, types=TYPES, upcasters=upcasters)
    assert event.data == ToyNoted(author="ana", note="shipped", mood="neutral")


def test_a_current_event_is_not_touched(upcasters: Upcasters) -> None:
    sent = make_event(ToyNoted(author="bo", note="hi", mood="glad"), source="thrive/test")
    assert sent.schemaversion == 3
    assert parse_for_topic(TOY_V3, sent.to_json(), types=TYPES, upcasters=upcasters) == sent
    assert parse_event(sent.to_json(), ToyNoted, upcasters=upcasters) == sent


def test_a_version_newer_than_the_model_is_rejected(upcasters: Upcasters) -> None:
    raw = old_event(4, {"author": "ana", "note": "x", "mood": "glad", "colour": "red"})
    with pytest.raises(InvalidEvent) as err:
        parse_for_topic(TOY_V3, raw, types=TYPES, upcasters=upcasters)
    assert err.value.reason == "schemaversion: 4 is newer than supported 3"


def test_a_missing_upcaster_is_reported_not_guessed() -> None:
    only_v2 = Upcasters()
    only_v2.add(ToyNoted.TYPE, from_version=2, fn=upcast_v2_v3)
    raw = old_event(1, {"author": "ana", "text": "x"})
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, ToyNoted, upcasters=only_v2)
    assert err.value.reason == (
        "schemaversion: no upcaster from version 1 to 2 of 'test.toy.noted'"
    )


def test_old_data_the_upcaster_cannot_read_is_an_invalid_event(upcasters: Upcasters) -> None:
    raw = old_event(1, {"author": "ana", "body": "no text field"})
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, ToyNoted, upcasters=upcasters)
    assert err.value.reason == (
        "schemaversion: upcasting 'test.toy.noted' v1 to v2 failed: KeyError: 'text'"
    )


def test_an_upcast_result_is_still_validated(upcasters: Upcasters) -> None:
    raw = old_event(2, {"author": "ana"})
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, ToyNoted, upcasters=upcasters)
    assert err.value.reason == "data.note: Field required"


def test_an_upcaster_returning_no_dict_is_caught() -> None:
    broken = Upcasters()
    broken.add(ToyNoted.TYPE, from_version=1, fn=lambda event: None)  # type: ignore[arg-type,return-value]
    broken.add(ToyNoted.TYPE, from_version=2, fn=upcast_v2_v3)
    with pytest.raises(UpcastError, match="returned NoneType, not a dict"):
        broken.upcast({}, event_type=ToyNoted.TYPE, from_version=1, to_version=3)


def test_upcasters_are_pure_the_input_is_left_alone(upcasters: Upcasters) -> None:
    original = orjson.loads(old_event(1, {"author": "ana", "text": "x"}))
    snapshot = orjson.loads(orjson.dumps(original))
    lifted = upcasters.upcast(original, event_type=ToyNoted.TYPE, from_version=1, to_version=3)
    assert original == snapshot
    assert lifted["schemaversion"] == 3
    assert lifted["data"] == {"author": "ana", "note": "x", "mood": "neutral"}


def test_one_step_per_type_and_version() -> None:
    registry = Upcasters()
    registry.add(ToyNoted.TYPE, from_version=1, fn=upcast_v1_v2)
    with pytest.raises(ValueError, match="already registered"):
        registry.add(ToyNoted.TYPE, from_version=1, fn=upcast_v1_v2)
    with pytest.raises(ValueError, match=">= 1"):
        registry.add(ToyNoted.TYPE, from_version=0, fn=upcast_v1_v2)
    assert registry.steps() == [(ToyNoted.TYPE, 1)]


def test_the_same_type_cannot_be_declared_twice_on_a_topic() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        build_types_by_topic([ToyNoted, ToyNoted])


# --- thrive.celebration.delivered: v1 (one recipient) -> v2 (recipients) ------------------


def _delivered_v1(**data: Any) -> bytes:
    body = {
        "delivery_id": "key-1",
        "recipient": "cy",
        "team": "platform",
        "channel": "in_app",
        "about": "evt-1",
        "kind": "thanks",
        "title": "Ana thanked you",
        "themes": ["python"],
        "delivered_at": "2026-11-24T09:30:02Z",
        **data,
    }
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": "delivered:key-1",
            "source": "thrive/notifier",
            "type": "thrive.celebration.delivered",
            "time": "2026-11-24T09:30:02Z",
            "subject": "cy",
            "schemaversion": 1,
            "data": {k: v for k, v in body.items() if v is not None},
        }
    )


def test_a_v1_celebration_delivered_still_parses_as_v2_with_one_recipient() -> None:
    from thrive_shared.contracts import CelebrationDelivered, topics

    event = parse_for_topic(topics.CELEBRATION_DELIVERED, _delivered_v1())
    assert isinstance(event.data, CelebrationDelivered)
    assert event.schemaversion == 2
    assert event.data.recipients == ["cy"]
    assert event.data.teams == ["platform"]
    assert (event.data.about, event.data.kind, event.data.themes) == ("evt-1", "thanks", ["python"])
    # A v1 recipient without a team keeps no team.
    teamless = parse_for_topic(topics.CELEBRATION_DELIVERED, _delivered_v1(team=None))
    assert teamless.data.teams == [None]  # type: ignore[attr-defined]


def test_a_v1_celebration_delivered_without_a_recipient_is_invalid_not_a_crash() -> None:
    from thrive_shared.contracts import topics

    with pytest.raises(InvalidEvent, match="recipients"):
        parse_for_topic(topics.CELEBRATION_DELIVERED, _delivered_v1(recipient=None))


def test_celebration_delivered_v2_bounds_its_recipients() -> None:
    from datetime import UTC, datetime

    from pydantic import ValidationError
    from thrive_shared.contracts import CelebrationDelivered

    def build(recipients: list[str], teams: list[str | None]) -> CelebrationDelivered:
        return CelebrationDelivered(
            delivery_id="d",
            about="evt",
            channel="in_app",  # type: ignore[arg-type]
            kind="milestone",
            recipients=recipients,
            teams=teams,
            delivered_at=datetime.now(UTC),
        )

    cap = CelebrationDelivered.MAX_RECIPIENTS
    people = [f"p-{i}" for i in range(cap + 1)]
    assert len(build(people[:cap], [None] * cap).recipients) == cap
    with pytest.raises(ValidationError, match="recipients"):
        build(people, [None] * (cap + 1))
    with pytest.raises(ValidationError, match="teams has 1 entries for 2 recipients"):
        build(["a", "b"], ["t"])
    with pytest.raises(ValidationError, match="must not repeat"):
        build(["a", "a"], ["t", "t"])
    with pytest.raises(ValidationError, match="recipients"):
        build([], [])
    # The largest event stays far below Kafka's default 1 MB message size.
    longest = build([f"{i:0>100}" for i in range(cap)], ["t" * 100] * cap)
    assert len(make_event(longest, source="thrive/notifier").to_json()) < 300_000
