"""Milestone rules: declarative, loaded from a TOML file, evaluated against a person's progress.

A rule has an id, a kind, levels (thresholds) and a celebration size. Evaluation is pure:
it lists every level the progress has reached; the repository inserts them with a unique
(person, rule, scope, level) so each is reached exactly once, whatever the redelivery.
"""

from __future__ import annotations

import hashlib
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from thrive_shared.contracts import CelebrationSize

from thrive_recognition.domain.model import Milestone, Progress, hot_record

_MILESTONE_NS = uuid.UUID("6f1c1a52-36a0-4c55-9d1e-2b2f6a0de7a1")
_NS_BYTES = _MILESTONE_NS.bytes


def milestone_id(key: str) -> str:
    """`str(uuid.uuid5(_MILESTONE_NS, key))`, without the UUID object (~0.8 per event)."""
    b = bytearray(hashlib.sha1(_NS_BYTES + key.encode()).digest()[:16])  # noqa: S324 - RFC 4122 v5
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class RuleKind(StrEnum):
    COUNT_THRESHOLD = "count_threshold"
    DISTINCT_PEOPLE = "distinct_people"
    CROSS_TEAM = "cross_team"
    STREAK = "streak"
    FIRST_OF = "first_of"
    THEME_MASTERY = "theme_mastery"


# Counters a count_threshold rule may watch, and what first_of's `of` means.
COUNT_METRICS = frozenset({"thanks_received", "thanks_given", "asks", "offers"})
FIRST_OF = {
    "ask": "asks",
    "offer": "offers",
    "thanks_given": "thanks_given",
    "thanks_received": "thanks_received",
}
THEMES_METRIC = "themes"


class RuleError(ValueError):
    """The rule file is not valid; the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class Level:
    level: int
    threshold: int
    size: CelebrationSize
    title: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One milestone rule with its ordered levels."""

    id: str
    kind: RuleKind
    metric: str
    levels: tuple[Level, ...]
    themes: frozenset[str] = frozenset()  # theme_mastery: only these themes (empty: any)


@hot_record
class Reached:
    """A (rule, scope, level) the progress has reached."""

    rule: Rule
    scope: str
    level: Level

    def milestone(self, *, person: str, team: str | None, at: datetime) -> Milestone:
        """The milestone record, with an id stable across redeliveries."""
        key = f"{person}|{self.rule.id}|{self.scope}|{self.level.level}"
        return Milestone(
            id=milestone_id(key),
            person=person,
            team=team,
            rule_id=self.rule.id,
            scope=self.scope,
            level=self.level.level,
            size=self.level.size,
            title=render_title(self.level, scope=self.scope),
            themes=(self.scope,) if self.rule.kind is RuleKind.THEME_MASTERY else (),
            reached_at=at,
        )


def _metric_for(rule_id: str, kind: RuleKind, raw: Mapping[str, Any]) -> str:
    if kind is RuleKind.COUNT_THRESHOLD:
        metric = str(raw.get("metric", "thanks_received"))
        if metric not in COUNT_METRICS:
            raise RuleError(f"rule {rule_id!r}: metric must be one of {sorted(COUNT_METRICS)}")
        return metric
    if kind is RuleKind.FIRST_OF:
        of = str(raw.get("of", ""))
        if of not in FIRST_OF:
            raise RuleError(f"rule {rule_id!r}: of must be one of {sorted(FIRST_OF)}")
        return FIRST_OF[of]
    return {
        RuleKind.DISTINCT_PEOPLE: "people_helped",
        RuleKind.CROSS_TEAM: "teams_helped",
        RuleKind.STREAK: "streak_weeks",
        RuleKind.THEME_MASTERY: THEMES_METRIC,
    }[kind]


def _levels(rule_id: str, kind: RuleKind, raw: Mapping[str, Any]) -> tuple[Level, ...]:
    default_size = raw.get("size", "small")
    title = str(raw.get("title", rule_id))
    raw_levels = raw.get("levels", [1] if kind is RuleKind.FIRST_OF else None)
    if not isinstance(raw_levels, list) or not raw_levels:
        raise RuleError(f"rule {rule_id!r}: levels must be a non-empty list")
    levels: list[Level] = []
    for i, item in enumerate(raw_levels, start=1):
        spec: Mapping[str, Any] = item if isinstance(item, dict) else {"threshold": item}
        threshold = spec.get("threshold")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise RuleError(f"rule {rule_id!r}: level {i} needs a positive integer threshold")
        if levels and threshold <= levels[-1].threshold:
            raise RuleError(f"rule {rule_id!r}: level thresholds must increase")
        try:
            size = CelebrationSize(spec.get("size", default_size))
        except ValueError as exc:
            raise RuleError(f"rule {rule_id!r}: size must be 'small' or 'large'") from exc
        levels.append(
            Level(level=i, threshold=threshold, size=size, title=str(spec.get("title", title)))
        )
    return tuple(levels)


def parse_rules(doc: Mapping[str, Any]) -> tuple[Rule, ...]:
    """Rules from a parsed TOML document (`[[rule]]` tables); RuleError if invalid."""
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list):
        raise RuleError("`rule` must be an array of tables ([[rule]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in raw_rules:
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            raise RuleError("every rule needs a non-empty string id")
        if rule_id in seen:
            raise RuleError(f"rule {rule_id!r} is defined twice")
        seen.add(rule_id)
        try:
            kind = RuleKind(raw.get("kind"))
        except ValueError as exc:
            raise RuleError(
                f"rule {rule_id!r}: kind must be one of {[k.value for k in RuleKind]}"
            ) from exc
        themes = raw.get("themes", [])
        rules.append(
            Rule(
                id=rule_id,
                kind=kind,
                metric=_metric_for(rule_id, kind, raw),
                levels=_levels(rule_id, kind, raw),
                themes=frozenset(str(t).strip().lstrip("#").lower() for t in themes),
            )
        )
    return tuple(rules)


class RuleBook:
    """The milestone rules in force (read once at start, reloaded on restart)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def load(cls, path: Path | str) -> RuleBook:
        """Read and validate the TOML rule file."""
        with Path(path).open("rb") as fh:
            try:
                doc = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise RuleError(f"{path}: {exc}") from exc
        return cls(parse_rules(doc))

    @classmethod
    def from_toml(cls, text: str) -> RuleBook:
        """Rules from TOML text (handy in tests)."""
        return cls(parse_rules(tomllib.loads(text)))

    def by_id(self, rule_id: str) -> Rule | None:
        """The rule with this id, if any."""
        return next((r for r in self.rules if r.id == rule_id), None)

    def reached(self, progress: Progress) -> list[Reached]:
        """The levels this progress update reached (crossed now, for metrics with a floor)."""
        out: list[Reached] = []
        counts, changed, floors = progress.counts, progress.changed, progress.floors
        for rule in self.rules:
            if rule.metric not in changed:
                continue
            if rule.kind is RuleKind.THEME_MASTERY:
                for theme, value in sorted(progress.themes.items()):
                    if rule.themes and theme not in rule.themes:
                        continue
                    floor = progress.theme_floors.get(theme, 0)
                    for lv in rule.levels:  # thresholds increase: stop at the first above
                        if lv.threshold > value:
                            break
                        if lv.threshold > floor:
                            out.append(Reached(rule=rule, scope=theme, level=lv))
                continue
            value = int(getattr(counts, rule.metric))
            floor = floors.get(rule.metric, 0)
            for lv in rule.levels:
                if lv.threshold > value:
                    break
                if lv.threshold > floor:
                    out.append(Reached(rule=rule, scope="", level=lv))
        return out


@lru_cache(maxsize=4096)
def render_title(level: Level, *, scope: str) -> str:
    """A level's title with `{n}` (threshold) and `{theme}` filled in."""
    return level.title.replace("{n}", str(level.threshold)).replace("{theme}", scope or "")
