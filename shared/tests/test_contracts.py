"""Event contracts: committed files match the code, events round-trip, bad input says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from thrive_shared.contracts import (
    ALL_EVENTS,
    TYPES_BY_TOPIC,
    Board,
    CelebrationDelivered,
    CelebrationSize,
    Channel,
    EventData,
    ExternalHelp,
    HelpOffered,
    HelpReceived,
    HelpRequested,
    IngestKind,
    InvalidEvent,
    LeaderboardChanged,
    MilestoneReached,
    PersonErased,
    PersonUpserted,
    Tombstone,
    dlq,
    make_event,
    parse_event,
    parse_for_topic,
    topics,
)
from thrive_shared.contracts.__main__ import main
from thrive_shared.contracts.catalogue import BY_TOPIC, CATALOGUE, KEYS
from thrive_shared.contracts.events import AskSize, AskStatus, AskStatusChanged
from thrive_shared.contracts.examples import EXAMPLES, example_event
from thrive_shared.contracts.export import DEFAULT_OUT, check, render
from thrive_shared.contracts.schemas import schema_name

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
EVENT_IDS = [cls.TYPE for cls in ALL_EVENTS]


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return render()


def committed_json(rel: str) -> Any:
    return json.loads((DEFAULT_OUT / rel).read_text(encoding="utf-8"))


def wire(cls: type[EventData]) -> dict[str, Any]:
    """The example event of `cls` as a consumer would decode it from Kafka."""
    return orjson.loads(example_event(cls).to_json())


def reason_of(topic: str, raw: bytes | None) -> str:
    with pytest.raises(InvalidEvent) as err:
        parse_for_topic(topic, raw)
    return err.value.reason


# --- drift: committed files equal the generated ones ---------------------------------


def test_committed_contract_files_match_the_code() -> None:
    drift = check(DEFAULT_OUT)
    assert not drift, drift.summary()


def test_export_is_byte_for_byte_stable_and_sorted(rendered: dict[str, str]) -> None:
    assert render() == rendered
    for rel, content in rendered.items():
        assert content.endswith("\n"), rel
        if rel.endswith(".json"):
            obj = json.loads(content)
            assert content == json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_check_reports_changed_missing_and_unexpected_files(
    tmp_path: Path, rendered: dict[str, str]
) -> None:
    assert main(["export", "--out", str(tmp_path)]) == 0
    assert not check(tmp_path)

    schema = tmp_path / "jsonschema" / "thrive.help.received.v1.json"
    edited = json.loads(schema.read_text())
    edited["$defs"]["HelpReceived"]["required"].remove("given_at")
    schema.write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    (tmp_path / "asyncapi.json").unlink()
    (tmp_path / "jsonschema" / "thrive.help.thanked.v1.json").write_text("{}\n")

    drift = check(tmp_path)
    assert drift.missing == ["asyncapi.json"]
    assert drift.unexpected == ["jsonschema/thrive.help.thanked.v1.json"]
    assert list(drift.changed) == ["jsonschema/thrive.help.received.v1.json"]
    assert '+        "given_at"' in drift.changed["jsonschema/thrive.help.received.v1.json"]
    summary = drift.summary()
    assert "python -m thrive_shared.contracts export" in summary
    assert "changed:    jsonschema/thrive.help.received.v1.json" in summary


def test_export_check_exits_non_zero_with_a_summary_on_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["export", "--out", str(tmp_path)])
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("thrive.help.received.v1", "v0"))
    assert main(["export", "--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "changed:    README.md" in err

    assert main(["export", "--out", str(tmp_path)]) == 0
    assert main(["export", "--check", "--out", str(tmp_path)]) == 0


def test_every_event_type_has_a_schema_file_named_by_type_and_version(
    rendered: dict[str, str],
) -> None:
    names = {rel for rel in rendered if rel.startswith("jsonschema/")}
    assert names == {f"jsonschema/{cls.TYPE}.v{cls.SCHEMA_VERSION}.json" for cls in ALL_EVENTS}
    schema = committed_json("jsonschema/thrive.help.received.v1.json")
    assert schema["$id"] == "urn:thrive:contracts:thrive.help.received.v1"
    assert schema["title"] == "thrive.help.received.v1"
    assert "thrive.help.received.v1" in schema["description"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


# --- catalogue completeness ---------------------------------------------------------


def test_catalogue_covers_every_topic_and_type() -> None:
    assert [spec.topic for spec in CATALOGUE] == list(topics.ALL_TOPICS)
    catalogued = [cls for spec in CATALOGUE for cls in spec.events]
    assert sorted(c.TYPE for c in catalogued) == sorted(c.TYPE for c in ALL_EVENTS)
    for cls in ALL_EVENTS:
        assert cls in KEYS, cls
        assert cls in EXAMPLES, cls
        assert cls in BY_TOPIC[cls.TOPIC].events
        assert TYPES_BY_TOPIC[cls.TOPIC][cls.TYPE] is cls


# --- round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=EVENT_IDS)
def test_every_event_type_round_trips_through_its_topic(cls: type[EventData]) -> None:
    sent = make_event(EXAMPLES[cls], source="thrive/test", id="evt-1", time=AT)
    got = parse_for_topic(cls.TOPIC, sent.to_json())
    assert got == sent
    assert isinstance(got.data, cls)
    assert got.data == EXAMPLES[cls]
    assert (got.source, got.id, got.type, got.time) == ("thrive/test", "evt-1", cls.TYPE, AT)
    assert got.subject == EXAMPLES[cls].partition_key()
    assert parse_event(sent.to_json().decode(), cls) == sent


def test_make_event_gives_fresh_ids_and_current_time_by_default() -> None:
    first = make_event(EXAMPLES[PersonErased], source="hr")
    second = make_event(EXAMPLES[PersonErased], source="hr")
    assert first.id != second.id
    assert first.time.tzinfo is not None
    assert abs((datetime.now(UTC) - first.time).total_seconds()) < 3600


# --- invalid input gives a precise reason ---------------------------------------------


def without(obj: dict[str, Any], *path: str) -> dict[str, Any]:
    node = obj
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return obj


def with_(obj: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    node = obj
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return obj


INVALID = [
    pytest.param(
        topics.HELP_RECEIVED,
        without(wire(HelpReceived), "data", "helper"),
        "data.helper: Field required",
        id="missing-data-field",
    ),
    pytest.param(
        topics.MILESTONE_REACHED,
        with_(wire(MilestoneReached), "high", "data", "level"),
        "data.level: Input should be a valid integer, unable to parse string as an integer",
        id="wrong-type",
    ),
    pytest.param(
        topics.HELP_REQUESTED,
        with_(wire(HelpRequested), "forever", "data", "size"),
        "data.size: Input should be 'quick', 'chat' or 'session'",
        id="bad-enum",
    ),
    pytest.param(
        topics.HELP_OFFERED,
        with_(wire(HelpOffered), "red", "data", "colour"),
        "data.colour: Extra inputs are not permitted",
        id="unknown-field",
    ),
    pytest.param(
        topics.HELP_REQUESTED,
        wire(HelpReceived),
        "type: 'thrive.help.received' is not one of ['thrive.help.requested'] "
        "on 'thrive.help.requested.v1'",
        id="unknown-type-on-topic",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        without(wire(HelpReceived), "type"),
        "type: Field required",
        id="no-type",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        with_(wire(HelpReceived), 2, "schemaversion"),
        "schemaversion: 2 is newer than supported 1",
        id="newer-schemaversion",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        # A newer producer's extra field must not hide the real problem: the version.
        with_(with_(wire(HelpReceived), 2, "schemaversion"), "web", "data", "channel"),
        "schemaversion: 2 is newer than supported 1",
        id="newer-schemaversion-with-new-field",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        with_(wire(HelpReceived), "1", "schemaversion"),
        "schemaversion: Input should be a valid integer, got '1'",
        id="schemaversion-not-int",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        with_(wire(HelpReceived), True, "schemaversion"),
        "schemaversion: Input should be a valid integer, got True",
        id="schemaversion-bool",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        with_(wire(HelpReceived), 1.0, "schemaversion"),
        "schemaversion: Input should be a valid integer, got 1.0",
        id="schemaversion-float",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        without(wire(HelpReceived), "id"),
        "id: Field required",
        id="no-id-breaks-dedup",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        without(wire(HelpReceived), "specversion"),
        "specversion: Field required",
        id="no-specversion",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        without(wire(HelpReceived), "time"),
        "time: Field required",
        id="no-time",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        with_(wire(HelpReceived), ["py thon"], "data", "themes"),
        "data.themes.0: String should match pattern '^#?[A-Za-z0-9][A-Za-z0-9_-]*$'",
        id="bad-theme",
    ),
    pytest.param(
        topics.DIRECTORY_PERSON,
        with_(wire(PersonUpserted), "not-an-email", "data", "email"),
        "data.email: String should match pattern '^[^@\\s]+@[^@\\s]+$'",
        id="bad-email",
    ),
    pytest.param(
        topics.HELP_RECEIVED,
        with_(with_(wire(HelpReceived), 5, "data", "helper"), None, "data", "given_at"),
        "data.helper: Input should be a valid string (and 1 more)",
        id="several-errors-counted",
    ),
]


@pytest.mark.parametrize(("topic", "event", "reason"), INVALID)
def test_invalid_events_are_rejected_with_a_precise_reason(
    topic: str, event: dict[str, Any], reason: str
) -> None:
    assert reason_of(topic, orjson.dumps(event)) == reason


# Wire variants that the bytes path (pydantic's JSON parser) and the dict path (orjson,
# then checks in Python) could tell apart: each must come out the same from both.
def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()  # orjson cannot write integers past 64 bits


def _variants(cls: type[EventData]) -> list[bytes]:
    raw = example_event(cls).to_json()
    out = [raw, raw + b" \n", raw + b"x", raw[:-1], b"\xef\xbb\xbf" + raw]
    for name in ("specversion", "id", "time", "subject", "type", "data", "schemaversion"):
        out.append(_dumps(without(wire(cls), name)))
    for value in (True, 1.0, "1", 0, 2, 10**30, None):
        out.append(_dumps(with_(wire(cls), value, "schemaversion")))
    out.append(_dumps(with_(wire(cls), "thrive.other", "type")))
    out.append(_dumps(with_(wire(cls), "x", "data", "unexpected")))
    # Duplicate keys (the last one counts in both) and literals orjson refuses.
    out.append(raw.replace(b'"source":', b'"source":"first","source":', 1))
    for literal in (b"NaN", b"Infinity", b"1e400", b"123456789012345678901234567890"):
        out.append(raw.replace(b'"schemaversion":', b'"level":' + literal + b',"schemaversion":'))
    data = wire(cls)["data"]
    for name in data:
        for value in (None, True, 1.5, 10**30, "", "#Python", [], ["#Python", "python"]):
            out.append(_dumps(with_(wire(cls), value, "data", name)))
    return out


def _parsed_from_a_dict(topic: str, raw: bytes) -> Any:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return parse_for_topic(topic, raw)  # reasons for non-JSON are worded on this path
    known = TYPES_BY_TOPIC[topic]
    cls = known.get(obj.get("type")) if isinstance(obj, dict) else None
    return parse_event(raw, cls) if cls is not None else parse_for_topic(topic, raw)


def _outcome(parse: Any, topic: str, raw: bytes) -> Any:
    try:
        return parse(topic, raw)
    except InvalidEvent as exc:
        return exc.reason


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=EVENT_IDS)
def test_parsing_from_bytes_accepts_and_refuses_exactly_what_the_dict_path_does(
    cls: type[EventData],
) -> None:
    variants = _variants(cls)
    assert len(variants) > 30
    for raw in variants:
        assert _outcome(parse_for_topic, cls.TOPIC, raw) == _outcome(
            _parsed_from_a_dict, cls.TOPIC, raw
        ), raw


def test_number_literals_orjson_refuses_are_refused_in_number_fields() -> None:
    good = example_event(LeaderboardChanged).to_json()
    for literal in (b"NaN", b"Infinity", b"1e400"):
        raw = good.replace(b'"score":12.5', b'"score":' + literal, 1)
        assert raw != good
        assert reason_of(topics.LEADERBOARD_CHANGED, raw).startswith("<root>: not JSON")
    big = with_(wire(MilestoneReached), 10**30, "data", "level")
    assert reason_of(topics.MILESTONE_REACHED, json.dumps(big).encode()).startswith("data.level:")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"type": "thrive.help.received",', "<root>: not JSON (unexpected end of data)"),
        (b"", "<root>: not JSON (Input is a zero-length, empty document)"),
        (b"\xff\xfe", "<root>: not JSON (str is not valid UTF-8: surrogates not allowed)"),
        (b"[1, 2]", "<root>: not a JSON object (got list)"),
        (b'"thanks"', "<root>: not a JSON object (got str)"),
    ],
    ids=["truncated", "empty", "not-utf8", "array", "string"],
)
def test_values_that_are_not_a_json_object_are_rejected(raw: bytes, reason: str) -> None:
    assert reason_of(topics.HELP_RECEIVED, raw) == reason


def test_a_tombstone_is_its_own_kind_of_invalid_event() -> None:
    with pytest.raises(Tombstone) as err:
        parse_for_topic(topics.DIRECTORY_PERSON, None)
    assert isinstance(err.value, InvalidEvent)
    assert err.value.reason == "value: empty record (tombstone)"


def test_a_topic_without_contract_is_rejected() -> None:
    raw = example_event(HelpReceived).to_json()
    assert reason_of("thrive.help.thanked.v1", raw) == (
        "topic: 'thrive.help.thanked.v1' carries no known event type"
    )
    assert reason_of(topics.DLQ, raw) == "topic: 'thrive.dlq.v1' carries no known event type"


def test_parse_event_names_the_expected_type() -> None:
    raw = example_event(HelpOffered).to_json()
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, HelpReceived)
    assert err.value.reason == "type: expected 'thrive.help.received', got 'thrive.help.offered'"


def test_both_directory_types_share_the_compacted_topic() -> None:
    upserted = parse_for_topic(topics.DIRECTORY_PERSON, example_event(PersonUpserted).to_json())
    erased = parse_for_topic(topics.DIRECTORY_PERSON, example_event(PersonErased).to_json())
    assert isinstance(upserted.data, PersonUpserted)
    assert isinstance(erased.data, PersonErased)


# --- themes ---------------------------------------------------------------------------


def test_themes_are_normalised_and_deduplicated() -> None:
    thanks = HelpReceived(
        thanks_id="t-1",
        giver="ana",
        helper="bo",
        themes=["#Python", "Customer-First", "python", "#customer-first"],
        given_at=AT,
    )
    assert thanks.themes == ["python", "customer-first"]


def test_themes_arriving_on_the_wire_are_normalised() -> None:
    event = with_(wire(HelpRequested), ["#Python", "#SQL"], "data", "themes")
    parsed = parse_for_topic(topics.HELP_REQUESTED, orjson.dumps(event))
    assert parsed.data.themes == ["python", "sql"]  # type: ignore[attr-defined]
    assert b'"themes":["python","sql"]' in parsed.to_json()


@pytest.mark.parametrize("theme", ["#", "", "py thon", "#" + "x" * 50])
def test_themes_that_cannot_be_a_tag_are_rejected(theme: str) -> None:
    with pytest.raises(ValueError, match="themes"):
        HelpOffered(offer_id="o-1", helper="bo", themes=[theme])


# --- partition keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (
            HelpRequested(ask_id="a", asker="ana", title="t", size=AskSize.QUICK, expires_at=AT),
            "ana",
        ),
        (
            AskStatusChanged(ask_id="a", asker="ana", status=AskStatus.RESOLVED, helper="bo"),
            "ana",
        ),
        (HelpOffered(offer_id="o", helper="bo", asker="ana"), "bo"),
        (HelpReceived(thanks_id="t", giver="ana", helper="bo", given_at=AT), "bo"),
        (HelpReceived(thanks_id="t-9", giver="ana", helper=None, given_at=AT), "t-9"),
        (
            MilestoneReached(
                milestone_id="m",
                person="bo",
                rule_id="first-thanks",
                level=1,
                size=CelebrationSize.SMALL,
                title="First thanks",
                reached_at=AT,
            ),
            "bo",
        ),
        (
            CelebrationDelivered(
                delivery_id="d",
                recipients=["cy", "dee"],
                teams=["platform", None],
                channel=Channel.IN_APP,
                about="evt",
                kind="milestone",
                delivered_at=AT,
            ),
            "evt",
        ),
        (
            LeaderboardChanged(
                board=Board(metric="service", window="week"), period="2026-W48", top=[]
            ),
            "service:week:company:*",
        ),
        (
            ExternalHelp(kind=IngestKind.HELP_RECEIVED, helper="cy", helped="ana", occurred_at=AT),
            "cy",
        ),
        (PersonUpserted(person="dee", name="Dee", email="dee@example.com", team="hr"), "dee"),
        (PersonErased(person="ed"), "ed"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, EventData) else str(v),
)
def test_partition_key_is_who_the_event_is_mostly_about(data: EventData, key: str) -> None:
    event = make_event(data, source="thrive/test")
    assert event.subject == key


def test_every_type_has_a_partition_key_case_above() -> None:
    # Keeps the table above honest when a new event type is added.
    covered = {
        HelpRequested,
        AskStatusChanged,
        HelpOffered,
        HelpReceived,
        MilestoneReached,
        CelebrationDelivered,
        LeaderboardChanged,
        ExternalHelp,
        PersonUpserted,
        PersonErased,
    }
    assert covered == set(ALL_EVENTS)


# --- JSON Schema ----------------------------------------------------------------------


def validator(cls: type[EventData]) -> Draft202012Validator:
    schema = committed_json(f"jsonschema/{schema_name(cls)}.json")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=EVENT_IDS)
def test_json_schema_accepts_a_real_serialized_event(cls: type[EventData]) -> None:
    errors = list(validator(cls).iter_errors(wire(cls)))
    assert errors == []


def test_json_schema_accepts_what_the_parser_accepts_with_defaults_left_out() -> None:
    minimal = {
        "specversion": "1.0",
        "id": "ticket-4711",
        "source": "helpdesk",
        "type": "thrive.ingest.help",
        "time": "2026-11-24T09:30:00+01:00",
        "subject": "cy",
        "data": {"kind": "help_offered", "helper": "cy", "occurred_at": "2026-11-24T09:00:00Z"},
    }
    assert list(validator(ExternalHelp).iter_errors(minimal)) == []
    parsed = parse_for_topic(topics.INGEST_HELP, orjson.dumps(minimal))
    assert parsed.schemaversion == 1
    assert parsed.data.themes == []  # type: ignore[attr-defined]


SCHEMA_VIOLATIONS = [
    pytest.param(without(wire(HelpReceived), "data", "helper"), "'helper' is a required", id="m"),
    pytest.param(with_(wire(HelpReceived), "ten", "data", "discounted"), "not of type", id="t"),
    pytest.param(with_(wire(HelpReceived), "thrive.help.offered", "type"), "was expected", id="ty"),
    pytest.param(with_(wire(HelpReceived), 2, "schemaversion"), "was expected", id="version"),
    pytest.param(without(wire(HelpReceived), "id"), "'id' is a required", id="no-id"),
    pytest.param(with_(wire(HelpReceived), "x", "data", "colour"), "Additional prop", id="extra"),
    pytest.param(
        with_(wire(HelpReceived), "secret", "data", "visibility"), "is not one of", id="e"
    ),
]


@pytest.mark.parametrize(("event", "message"), SCHEMA_VIOLATIONS)
def test_json_schema_and_parser_both_reject_an_invalid_event(
    event: dict[str, Any], message: str
) -> None:
    errors = [e.message for e in validator(HelpReceived).iter_errors(event)]
    assert any(message in e for e in errors), errors
    with pytest.raises(InvalidEvent):
        parse_for_topic(topics.HELP_RECEIVED, orjson.dumps(event))


# --- AsyncAPI -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = committed_json("asyncapi.json")
    return doc


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for k, v in node.items() if k != "$ref" for r in all_refs(v)
        ]
    if isinstance(node, list):
        return [r for item in node for r in all_refs(item)]
    return []


def test_asyncapi_lists_every_topic_with_its_message_types_and_keys(
    asyncapi: dict[str, Any],
) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    addresses = {ch["address"] for ch in asyncapi["channels"].values()}
    assert addresses == set(topics.ALL_TOPICS)
    for cls in ALL_EVENTS:
        channel = asyncapi["channels"][cls.TOPIC]
        ref = channel["messages"][schema_name(cls)]["$ref"]
        message = resolve(asyncapi, ref)
        assert message["name"] == f"{cls.TYPE}.v{cls.SCHEMA_VERSION}"
        key = message["bindings"]["kafka"]["key"]
        assert key["type"] == "string"
        assert KEYS[cls] in key["description"]
        payload = resolve(asyncapi, message["payload"]["$ref"])
        assert payload["properties"]["type"]["const"] == cls.TYPE
        assert message["examples"][0]["payload"]["type"] == cls.TYPE


def test_asyncapi_operations_say_who_writes_and_reads(asyncapi: dict[str, Any]) -> None:
    ops = asyncapi["operations"]
    send = ops["thrive.help.received.v1:send"]
    assert send["action"] == "send"
    assert send["summary"] == "Written by recognition."
    receive = ops["thrive.help.received.v1:receive:leaderboard"]
    assert receive["action"] == "receive"
    assert receive["channel"] == {"$ref": "#/channels/thrive.help.received.v1"}
    readers = {k.rsplit(":", 1)[1] for k in ops if k.startswith("directory.person.v1:receive:")}
    assert readers == {"recognition", "leaderboard", "notifier"}


def test_asyncapi_describes_the_dlq_headers(asyncapi: dict[str, Any]) -> None:
    channel = asyncapi["channels"][topics.DLQ]
    message = resolve(asyncapi, channel["messages"]["dead-letter"]["$ref"])
    headers = message["headers"]
    assert sorted(headers["required"]) == sorted(dlq.ALL_HEADERS)
    assert set(headers["properties"]) == set(dlq.ALL_HEADERS)


def test_asyncapi_marks_the_directory_topic_compacted(asyncapi: dict[str, Any]) -> None:
    binding = asyncapi["channels"][topics.DIRECTORY_PERSON]["bindings"]["kafka"]
    assert binding["topicConfiguration"] == {"cleanup.policy": ["compact"]}


def test_asyncapi_references_all_resolve(asyncapi: dict[str, Any]) -> None:
    refs = all_refs(asyncapi)
    assert refs
    for ref in refs:
        resolve(asyncapi, ref)


# --- DLQ headers ----------------------------------------------------------------------


def test_dlq_header_names_are_the_agreed_ones() -> None:
    assert dlq.ALL_HEADERS == (
        "x-dlq-topic",
        "x-dlq-partition",
        "x-dlq-offset",
        "x-dlq-error-class",
        "x-dlq-error-message",
        "x-dlq-attempts",
        "x-dlq-consumer",
        "x-dlq-failed-at",
    )


def test_dead_letter_headers_round_trip_and_truncate_long_reasons() -> None:
    letter = dlq.DeadLetter(
        topic=topics.HELP_RECEIVED,
        partition=2,
        offset=1041,
        error_class="InvalidEvent",
        error_message="data.helper: " + "x" * 5000,
        attempts=1,
        consumer="leaderboard",
        failed_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    )
    headers = letter.headers()
    assert [name for name, _ in headers] == list(dlq.ALL_HEADERS)
    assert dict(headers)["x-dlq-failed-at"] == b"2026-11-24T10:00:00+00:00"
    back = dlq.DeadLetter.from_headers([("traceparent", b"00-abc"), *headers])
    assert back.error_message == letter.error_message[: dlq.MAX_ERROR_MESSAGE]
    assert (back.topic, back.partition, back.offset) == (topics.HELP_RECEIVED, 2, 1041)
    assert back.failed_at == letter.failed_at
