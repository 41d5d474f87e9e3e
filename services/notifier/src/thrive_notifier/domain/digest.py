"""Digests: what a person missed while over budget or in quiet hours, grouped by kind and theme."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import Kind

_KIND_ORDER = {k: i for i, k in enumerate((Kind.MILESTONE, Kind.THANKS, Kind.ASK, Kind.REMINDER))}
_KIND_HEADINGS = {
    Kind.MILESTONE: "Milestones",
    Kind.THANKS: "Thanks",
    Kind.ASK: "Asks you could help with",
    Kind.REMINDER: "Reminders",
}
NO_THEME = ""


@dataclass(frozen=True, slots=True)
class DigestEntry:
    item_id: int
    kind: Kind
    title: str
    themes: tuple[str, ...]
    created_at: datetime

    @property
    def theme(self) -> str:
        """The entry's primary theme: an entry appears once, under its first theme."""
        return self.themes[0] if self.themes else NO_THEME


@dataclass(frozen=True, slots=True)
class DigestSection:
    kind: Kind
    theme: str
    entries: tuple[DigestEntry, ...]

    @property
    def heading(self) -> str:
        base = _KIND_HEADINGS.get(self.kind, self.kind.value.title())
        return f"{base} · #{self.theme}" if self.theme else base


@dataclass(frozen=True, slots=True)
class Digest:
    sections: tuple[DigestSection, ...]

    @property
    def size(self) -> int:
        return sum(len(s.entries) for s in self.sections)

    def message(self, *, about: str) -> Message:
        """The digest as one message: a title and one section per (kind, theme)."""
        n = self.size
        return Message(
            kind=Kind.DIGEST,
            title=f"Your Thrive digest: {n} update{'s' if n != 1 else ''}",
            about=about,
            sections=tuple((s.heading, tuple(e.title for e in s.entries)) for s in self.sections),
        )


def assemble(entries: Iterable[DigestEntry]) -> Digest:
    """Group entries by kind then primary theme; oldest first inside a section."""
    groups: dict[tuple[Kind, str], list[DigestEntry]] = defaultdict(list)
    for e in entries:
        groups[(e.kind, e.theme)].append(e)
    ordered = sorted(
        groups.items(),
        key=lambda kv: (_KIND_ORDER.get(kv[0][0], 99), kv[0][1] == NO_THEME, kv[0][1]),
    )
    return Digest(
        sections=tuple(
            DigestSection(
                kind=kind,
                theme=theme,
                entries=tuple(sorted(items, key=lambda e: (e.created_at, e.item_id))),
            )
            for (kind, theme), items in ordered
        )
    )
