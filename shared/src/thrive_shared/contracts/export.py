"""Render the committed contract files (JSON Schema, AsyncAPI, README) and check for drift."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrive_shared.contracts import dlq
from thrive_shared.contracts.catalogue import CATALOGUE, KEYS
from thrive_shared.contracts.envelope import WIRE_REQUIRED, Envelope, EventData
from thrive_shared.contracts.events import ALL_EVENTS, HelpReceived
from thrive_shared.contracts.examples import example_event
from thrive_shared.contracts.schemas import json_schema, schema_name
from thrive_shared.contracts.upcast import UPCASTERS

# shared/src/thrive_shared/contracts/export.py -> shared/contracts
DEFAULT_OUT = Path(__file__).resolve().parents[3] / "contracts"
SCHEMA_DIR = "jsonschema"
COMMAND = "uv run python -m thrive_shared.contracts export"


def dumps(obj: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, real UTF-8, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every generated file: path relative to shared/contracts -> exact content."""
    # Imported here: faststream is only needed to export, not to parse events.
    from thrive_shared.contracts.asyncapi import asyncapi_document

    files = {f"{SCHEMA_DIR}/{schema_name(cls)}.json": dumps(json_schema(cls)) for cls in ALL_EVENTS}
    files["asyncapi.json"] = dumps(asyncapi_document())
    files["README.md"] = render_readme()
    return dict(sorted(files.items()))


def write(out: Path = DEFAULT_OUT) -> list[str]:
    """Write the generated files under `out`; return the paths that changed."""
    changed = []
    for rel, content in render().items():
        path = out / rel
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        changed.append(rel)
    return changed


# Schemas of earlier versions of a type stay committed as history: no model renders
# them any more, and they are not drift.
_HISTORY = re.compile(r"^(?P<type>.+)\.v(?P<version>\d+)\.json$")


def _is_history(name: str) -> bool:
    match = _HISTORY.match(name)
    if match is None:
        return False
    current = {cls.TYPE: cls.SCHEMA_VERSION for cls in ALL_EVENTS}
    version = current.get(match["type"])
    return version is not None and int(match["version"]) < version


@dataclass
class Drift:
    """How the committed files differ from what the code renders."""

    changed: dict[str, str] = field(default_factory=dict)  # path -> unified diff
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed or self.missing or self.unexpected)

    def summary(self, *, max_diff_lines: int = 40) -> str:
        """Human-readable report for the CLI and test failures."""
        lines = [f"contracts out of date; run: {COMMAND}"]
        lines += [f"  missing:    {p}" for p in self.missing]
        lines += [f"  unexpected: {p}" for p in self.unexpected]
        for path, diff in self.changed.items():
            diff_lines = diff.splitlines()
            lines.append(f"  changed:    {path} ({len(diff_lines)} diff lines)")
            lines += ["    " + d for d in diff_lines[:max_diff_lines]]
            if len(diff_lines) > max_diff_lines:
                lines.append(f"    ... {len(diff_lines) - max_diff_lines} more")
        return "\n".join(lines)


def check(out: Path = DEFAULT_OUT) -> Drift:
    """Compare the files under `out` with what the code renders."""
    expected = render()
    drift = Drift()
    for rel, content in expected.items():
        path = out / rel
        if not path.is_file():
            drift.missing.append(rel)
            continue
        actual = path.read_text(encoding="utf-8")
        if actual != content:
            diff = difflib.unified_diff(
                actual.splitlines(),
                content.splitlines(),
                fromfile=f"committed/{rel}",
                tofile=f"generated/{rel}",
                lineterm="",
            )
            drift.changed[rel] = "\n".join(diff)
    schema_dir = out / SCHEMA_DIR
    if schema_dir.is_dir():
        for path in sorted(schema_dir.iterdir()):
            rel = f"{SCHEMA_DIR}/{path.name}"
            if rel not in expected and not _is_history(path.name):
                drift.unexpected.append(rel)
    return drift


def _schema_link(cls: type[EventData]) -> str:
    name = schema_name(cls)
    return f"[`{name}`]({SCHEMA_DIR}/{name}.json)"


def render_readme() -> str:
    """The contracts README: catalogue, envelope, dedup, DLQ headers, versioning."""
    out: list[str] = []
    add = out.append
    add("# Thrive event contracts")
    add("")
    add(
        f"Generated by `{COMMAND}` from `shared/src/thrive_shared/contracts/` "
        "(do not edit by hand). `... export --check` and the drift test in "
        "`shared/tests/test_contracts.py` fail when these files differ from the code."
    )
    add("")
    add("- [`asyncapi.json`](asyncapi.json): AsyncAPI 3.0 document (generated by faststream) of")
    add("  every topic: its messages, their partition key, headers and an example.")
    add(f"- `{SCHEMA_DIR}/<type>.v<schemaversion>.json`: JSON Schema (draft 2020-12) of each")
    add("  event as it travels: the whole envelope with its typed `data`.")
    add("")
    add("## Catalogue")
    add("")
    add("| topic | key | written by | read by | event types (JSON Schema) |")
    add("|---|---|---|---|---|")
    for spec in CATALOGUE:
        types = "<br>".join(_schema_link(cls) for cls in spec.events) or "original record bytes"
        topic = f"`{spec.topic}`" + (" (compacted)" if spec.compacted else "")
        add(
            f"| {topic} | {spec.key} | {', '.join(spec.writers)} | "
            f"{', '.join(spec.readers)} | {types} |"
        )
    add("")
    add("What each topic carries:")
    add("")
    for spec in CATALOGUE:
        add(f"- `{spec.topic}`: {spec.summary}")
    add("")
    add("## Partition keys")
    add("")
    add(
        "The Kafka record key is the envelope's `subject`, which `make_event` sets to "
        "`data.partition_key()`: the person the event is mostly about, so that per-person "
        "order holds for milestones and standings."
    )
    add("")
    add("| type | payload class | key |")
    add("|---|---|---|")
    for cls in ALL_EVENTS:
        add(f"| `{cls.TYPE}` | `{cls.__name__}` | {KEYS[cls]} |")
    add("")
    add("## Envelope")
    add("")
    add(
        "CloudEvents 1.0 in structured mode: the record value is one JSON object. "
        "Fields required on the wire must be sent by the producer; consumers never fill "
        "them in (a made-up `id` would defeat deduplication, a made-up `time` replay)."
    )
    add("")
    add("| field | required on the wire | meaning |")
    add("|---|---|---|")
    for name, info in Envelope.model_fields.items():
        required = "yes" if name in WIRE_REQUIRED else f"no (default `{info.default}`)"
        meaning = info.description or "The payload: see the type's JSON Schema."
        add(f"| `{name}` | {required} | {meaning} |")
    add("")
    add("Example (`thrive.help.received`):")
    add("")
    add("```json")
    add(dumps(json.loads(example_event(HelpReceived).to_json())).rstrip("\n"))
    add("```")
    add("")
    add("Themes are normalised on parse: `#Python` becomes `python`, duplicates collapse.")
    add("")
    add("## Deduplication")
    add("")
    add(
        "Delivery is at least once. Every consumer deduplicates on (`source`, `id`): "
        "`id` is unique only within its `source` (systems outside Thrive choose their own "
        "ids), so neither alone identifies an event. The inbox row (consumer, source, id) "
        "is written in the same transaction as the handler's effects, so a redelivered "
        "event changes nothing."
    )
    add("")
    add("## Invalid events")
    add("")
    add(
        "`parse_for_topic(topic, value)` returns a typed `Envelope` or raises "
        "`InvalidEvent(reason)`; the reason names the field, e.g. "
        "`data.helper: Field required`, `type: 'x' is not one of [...]`, "
        "`schemaversion: 2 is newer than supported 1`, `<root>: not JSON (...)`. "
        "A null value raises `Tombstone`, a subclass, so a consumer of the compacted "
        "directory topic can skip deletions instead of dead-lettering them."
    )
    add("")
    add("## Dead-letter topic")
    add("")
    add(
        f"`{dlq.DLQ_TOPIC}` gets what a consumer cannot apply: the original key and value "
        "bytes untouched, the original headers, and these headers (UTF-8 text; names are "
        "constants in `thrive_shared.contracts.dlq`, `DeadLetter` builds and reads them):"
    )
    add("")
    add("| header | meaning |")
    add("|---|---|")
    for name, text in dlq.HEADERS.items():
        add(f"| `{name}` | {text} |")
    add("")
    add("## Versioning")
    add("")
    add(
        "Topic names carry the version. A change of a payload's schema is a new topic "
        "version; payloads forbid unknown fields, so even an added optional field would be "
        "rejected by a consumer built before it. To change `thrive.help.received`:"
    )
    add("")
    add('1. add `HELP_RECEIVED_V2 = "thrive.help.received.v2"` to `topics.py` (keep v1);')
    add("2. change `HelpReceived`: `TOPIC = topics.HELP_RECEIVED_V2`, `SCHEMA_VERSION = 2`,")
    add("   `PAST_TOPICS = (topics.HELP_RECEIVED,)` so the old topic is still parsed;")
    add("3. in `upcast.py`, register a pure `upcast_v1_v2(event: dict) -> dict` with")
    add('   `@register("thrive.help.received", from_version=1)`: it lifts a v1 envelope;')
    add(f"4. run `{COMMAND}` and commit: the v2 schema is added, the v1 file stays as history.")
    add("")
    add(
        "Producers switch to the new topic; consumers read both until the old one drains. "
        "Events of an older `schemaversion` are upcast step by step before validation; "
        "an event newer than the consumer knows is dead-lettered with "
        "`schemaversion: N is newer than supported M` (upgrade the consumer, then replay)."
    )
    add("")
    steps = UPCASTERS.steps()
    if steps:
        add("Registered upcasters: " + ", ".join(f"`{t}` v{v}→v{v + 1}" for t, v in steps) + ".")
    else:
        add("Registered upcasters: none yet (every contract is at schema version 1).")
    add("")
    return "\n".join(out)
