"""Use cases behind the preferences, follows, mutes and inbox API."""

from __future__ import annotations

from dataclasses import dataclass

from thrive_notifier.domain.model import Follow, FollowKind, Kind, Mute, MuteKind


class CommandRejected(ValueError):
    """A command that is well-formed but not allowed; the API turns it into a 4xx."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(frozen=True, slots=True)
class Target:
    kind: str
    target: str


def normalise_theme(value: str) -> str:
    return value.strip().lstrip("#").lower()


def make_follow(person: str, kind: FollowKind, target: str) -> Follow:
    """A follow, with themes normalised; following yourself is refused."""
    target = normalise_theme(target) if kind is FollowKind.THEME else target.strip()
    if not target:
        raise CommandRejected("validation", "target cannot be empty", field="target")
    if kind is FollowKind.PERSON and target == person:
        raise CommandRejected("validation", "you cannot follow yourself", field="target")
    return Follow(kind, target)


MUTABLE_KINDS = frozenset({Kind.THANKS, Kind.MILESTONE, Kind.ASK, Kind.REMINDER})


def make_mute(person: str, kind: MuteKind, target: str) -> Mute:
    """A mute, with themes normalised and kinds checked; muting yourself is refused."""
    target = normalise_theme(target) if kind is MuteKind.THEME else target.strip()
    if not target:
        raise CommandRejected("validation", "target cannot be empty", field="target")
    if kind is MuteKind.PERSON and target == person:
        raise CommandRejected("validation", "you cannot mute yourself", field="target")
    if kind is MuteKind.KIND and target not in {k.value for k in MUTABLE_KINDS}:
        allowed = ", ".join(sorted(k.value for k in MUTABLE_KINDS))
        raise CommandRejected("validation", f"kind must be one of {allowed}", field="target")
    return Mute(kind, target)
