"""Attention rules: quiet hours in a person's timezone, daily budgets, and when digests are due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from thrive_notifier.domain.model import Channel, DigestFrequency, Kind, Preferences, Profile


class Mode(StrEnum):
    LIVE = "live"  # a ping on the person's channels, counted against their budget
    QUIET = "quiet"  # into the in-app inbox only, no ping, no budget
    DEFERRED = "deferred"  # into the digest


class DeferReason(StrEnum):
    BUDGET = "budget"
    QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True, slots=True)
class Plan:
    mode: Mode
    reason: DeferReason | None = None


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The named timezone, or UTC when the directory holds a name this system does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_now(now: datetime, tz: str) -> datetime:
    return now.astimezone(zone(tz))


def local_day(now: datetime, tz: str) -> date:
    """The person's calendar day: budgets reset at their midnight, not the server's."""
    return local_now(now, tz).date()


def in_quiet_hours(now: datetime, tz: str, start: time | None, end: time | None) -> bool:
    """True when the person's local time lies in [start, end), which may wrap past midnight."""
    if start is None or end is None or start == end:
        return False
    t = local_now(now, tz).time().replace(tzinfo=None)
    if start < end:
        return start <= t < end
    return t >= start or t < end


def plan_for(kind: Kind, profile: Profile, now: datetime) -> Plan:
    """How to deliver to a person before their budget is checked: live, quiet or deferred."""
    if kind is Kind.REMINDER:
        return Plan(Mode.QUIET)
    prefs = profile.preferences
    if in_quiet_hours(now, profile.effective_timezone, prefs.quiet_start, prefs.quiet_end):
        return deferred(prefs, DeferReason.QUIET_HOURS)
    if prefs.daily_budget <= 0:
        return deferred(prefs, DeferReason.BUDGET)
    return Plan(Mode.LIVE)


def deferred(prefs: Preferences, reason: DeferReason) -> Plan:
    """Deferred into the digest; with digests off it lands quietly in the inbox, never dropped."""
    if prefs.digest_frequency is DigestFrequency.OFF:
        return Plan(Mode.QUIET, reason)
    return Plan(Mode.DEFERRED, reason)


def live_channels(profile: Profile) -> list[Channel]:
    """Live channels: always the inbox, plus email/webhook when enabled and usable."""
    prefs = profile.preferences
    out = [Channel.IN_APP]
    if Channel.EMAIL in prefs.channels and profile.email:
        out.append(Channel.EMAIL)
    if Channel.WEBHOOK in prefs.channels and prefs.webhook_url:
        out.append(Channel.WEBHOOK)
    return out


def digest_due(profile: Profile, now: datetime, last_sent: date | None) -> bool:
    """True when the digest should go out now: past the digest hour, not in quiet hours."""
    prefs = profile.preferences
    if prefs.digest_frequency is DigestFrequency.OFF:
        return False
    tz = profile.effective_timezone
    local = local_now(now, tz)
    if local.hour < prefs.digest_hour:
        return False
    if in_quiet_hours(now, tz, prefs.quiet_start, prefs.quiet_end):
        return False
    if last_sent is None:
        return True
    gap = 7 if prefs.digest_frequency is DigestFrequency.WEEKLY else 1
    return (local.date() - last_sent).days >= gap
