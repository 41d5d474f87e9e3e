"""Allowances keep thanks meaningful: so many per giver per period, and per pair."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from thrive_recognition.domain.errors import AllowanceExceeded, PairCapExceeded
from thrive_recognition.domain.periods import Period, Window, window


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `limit` thanks per `period` (in the giver's timezone)."""

    limit: int
    period: Period


@dataclass(frozen=True, slots=True)
class AllowancePolicy:
    """How many thanks a giver may give, overall and to one receiver."""

    limits: tuple[Limit, ...] = (Limit(5, Period.DAY), Limit(20, Period.WEEK))
    pair_cap: Limit | None = Limit(3, Period.WEEK)

    def windows(self, at: datetime, tz: ZoneInfo) -> AllowanceWindows:
        """The windows whose usage must be counted for a thanks given at `at`."""
        return AllowanceWindows(
            limits=tuple((lim, window(at, period=lim.period, tz=tz)) for lim in self.limits),
            pair=(self.pair_cap, window(at, period=self.pair_cap.period, tz=tz))
            if self.pair_cap
            else None,
        )


@dataclass(frozen=True, slots=True)
class AllowanceWindows:
    """Each limit with the concrete window it applies to."""

    limits: tuple[tuple[Limit, Window], ...]
    pair: tuple[Limit, Window] | None

    @property
    def earliest(self) -> datetime | None:
        """The start of the widest window: how far back usage must be read."""
        starts = [w.start for _, w in self.limits]
        if self.pair:
            starts.append(self.pair[1].start)
        return min(starts) if starts else None


@dataclass(frozen=True, slots=True)
class Usage:
    """Thanks already given: per limit window (same order), and to this receiver."""

    given: tuple[int, ...]
    to_pair: int = 0


def check(windows: AllowanceWindows, usage: Usage) -> None:
    """Raise if one more thanks would exceed a limit; the error says when it resets."""
    for (lim, win), used in zip(windows.limits, usage.given, strict=True):
        if used >= lim.limit:
            raise AllowanceExceeded(
                f"You have given your {lim.limit} thanks for this {lim.period}; "
                f"more become available at {win.end.isoformat()}.",
                details={
                    "limit": lim.limit,
                    "period": str(lim.period),
                    "resets_at": win.end.isoformat(),
                },
            )
    if windows.pair is not None:
        lim, win = windows.pair
        if usage.to_pair >= lim.limit:
            raise PairCapExceeded(
                f"You have thanked this person {lim.limit} times this {lim.period}; "
                f"spread the recognition and try again after {win.end.isoformat()}.",
                field="helper",
                details={
                    "limit": lim.limit,
                    "period": str(lim.period),
                    "resets_at": win.end.isoformat(),
                },
            )
