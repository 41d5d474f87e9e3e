"""The committed SDL is what the code serves."""

from __future__ import annotations

from pathlib import Path

from thrive_gateway.schema import schema

SDL = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    committed = SDL.read_text()
    current = schema.as_str() + "\n"
    assert committed == current, (
        "services/gateway/schema.graphql is stale: run "
        "`uv run python -m thrive_gateway export-schema` and commit it"
    )
