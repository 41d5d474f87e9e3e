"""Calendar periods (day, week, month) in a person's own timezone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo:
    """The IANA zone `name`, or UTC when empty or unknown (a bad HR field must not stop help)."""
    if not name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def is_known_zone(name: str) -> bool:
    """Whether `name` is an IANA timezone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open [start, end) span of time, in UTC."""

    period: Period
    start: datetime
    end: datetime


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def window(at: datetime, *, period: Period, tz: ZoneInfo) -> Window:
    """The day/week (Monday first)/month containing `at`, as seen in `tz`."""
    local = at.astimezone(tz).date()
    if period is Period.DAY:
        first, nxt = local, local + timedelta(days=1)
    elif period is Period.WEEK:
        first = local - timedelta(days=local.weekday())
        nxt = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        nxt = (first + timedelta(days=32)).replace(day=1)
    return Window(period=period, start=_local_midnight(first, tz), end=_local_midnight(nxt, tz))


def week_start(at: datetime, tz: ZoneInfo) -> date:
    """The Monday of the week containing `at`, in `tz`."""
    local = at.astimezone(tz).date()
    return local - timedelta(days=local.weekday())


def run_length(weeks: set[date], around: date) -> int:
    """How many consecutive weeks in `weeks` form the run that contains `around`."""
    if around not in weeks:
        return 0
    step = timedelta(days=7)
    n, cursor = 1, around - step
    while cursor in weeks:
        n, cursor = n + 1, cursor - step
    cursor = around + step
    while cursor in weeks:
        n, cursor = n + 1, cursor + step
    return n
