"""Persisted queries: an allow-list of documents by SHA-256 (Apollo's APQ request shape).

With `only=True` nothing else runs; this is the production option for the widgets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension


def document_hash(document: str) -> str:
    """The SHA-256 hex digest clients send as extensions.persistedQuery.sha256Hash."""
    return hashlib.sha256(document.encode()).hexdigest()


def allow_list_of_operations(path: Path) -> dict[str, str]:
    """sha256 -> document for a JSON object of operation name -> document (the widgets')."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: expected an object of operation name -> document")
    return {document_hash(document): document for document in data.values()}


def load_allow_list(path: Path) -> dict[str, str]:
    """A JSON object sha256 -> document, checked so each hash matches its document."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of sha256 -> document")
    for digest, document in data.items():
        if not isinstance(document, str) or document_hash(document) != digest:
            raise ValueError(f"{path}: hash {digest} does not match its document")
    return dict(data)


class PersistedQueries(SchemaExtension):
    """Resolves hashes to documents; with `only`, rejects documents not on the list."""

    def __init__(self, allow_list: Mapping[str, str], *, only: bool) -> None:
        self._allow = dict(allow_list)
        self._only = only

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        persisted = (ctx.operation_extensions or {}).get("persistedQuery")
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if isinstance(digest, str):
            document = self._allow.get(digest)
            if document is None:
                raise GraphQLError(
                    "PersistedQueryNotFound", extensions={"code": "PERSISTED_QUERY_NOT_FOUND"}
                )
            if ctx.query and ctx.query != document:
                raise GraphQLError("The document does not match its persisted hash.")
            ctx.query = document
        elif self._only and (ctx.query is None or document_hash(ctx.query) not in self._allow):
            raise GraphQLError(
                "Only persisted queries are accepted here.",
                extensions={"code": "PERSISTED_QUERY_REQUIRED"},
            )
        yield
