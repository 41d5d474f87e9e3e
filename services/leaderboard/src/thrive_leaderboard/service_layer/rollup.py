"""Rolling day rows up into the stored board-periods they count towards.

Applies write one row per (scope, local day, person); a board is its rolled-up `standing`
rows plus the day rows inside its period. Days older than the horizon are moved into
`standing` (each day row added to the rows of its week, month, quarter, year and all
time, then deleted), one day per transaction, so the day table holds a few recent days
and board loads read few of them. A board's sums do not change, so memory is not told.
Late events for a rolled-up day write a day row again; the next roll-up moves it too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg

from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.domain.contributions import local_day

log = logging.getLogger(__name__)


def horizon(now: datetime, tz: ZoneInfo, keep_days: int) -> int:
    """The first local day (a date ordinal) kept as day rows: `keep_days` days before today."""
    return local_day(now, tz) - keep_days


async def roll_up(pool: asyncpg.Pool, repo: Repository, *, before: int) -> int:
    """Move every day before `before` into the rolled-up rows; return how many days."""
    async with pool.acquire() as conn:
        days = await repo.old_days(conn, before)
    for day in days:
        async with pool.acquire() as conn, conn.transaction():
            # Exclusive, as an erasure: no apply adds to a day row while it moves.
            await repo.lock_apply(conn, exclusive=True)
            await repo.roll_up_day(conn, day)
    if days:
        log.info("day rows rolled up", extra={"days": len(days), "before": before})
    return len(days)
