"""Keyset pagination: newest first, with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from thrive_recognition.domain.errors import InvalidCursor, ValidationFailed

T = TypeVar("T")
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after an item: its sort time and id (the tie-breaker)."""

    at: datetime
    id: str

    def encode(self) -> str:
        """Opaque, URL-safe text for `next_cursor`."""
        raw = f"{self.at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Read a cursor back; a validation error if it was not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, _, ident = raw.partition("|")
            when = datetime.fromisoformat(at)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidCursor("The pagination cursor is not valid.", field="after") from exc
        if not ident or when.tzinfo is None:
            raise InvalidCursor("The pagination cursor is not valid.", field="after")
        return cls(at=when, id=ident)


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`first` items after `after` (None: from the newest)."""

    first: int = 20
    after: Cursor | None = None

    @classmethod
    def parse(cls, first: str | int | None, after: str | None) -> PageRequest:
        """From query parameters, with clear errors for bad values."""
        try:
            n = 20 if first in (None, "") else int(first)
        except ValueError as exc:
            raise ValidationFailed("`first` must be an integer.", field="first") from exc
        if not 1 <= n <= MAX_PAGE:
            raise ValidationFailed(f"`first` must be between 1 and {MAX_PAGE}.", field="first")
        return cls(first=n, after=Cursor.decode(after) if after else None)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: Cursor | None
