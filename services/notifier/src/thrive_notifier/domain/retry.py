"""Retry policy for outgoing deliveries: exponential backoff with jitter, then parking."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: network error, 408, 425, 429, 5xx
    PERMANENT = "permanent"  # retrying cannot help: refused destination, 4xx, no address


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 2.0
    max_delay: float = 600.0

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds before attempt `attempt + 1`: base·2^(attempt-1) capped, jittered to 50–100 %."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        jitter = rng.uniform(0.5, 1.0) if rng else random.uniform(0.5, 1.0)
        return float(ceiling * jitter)

    def should_park(self, attempt: int, result: SendResult) -> bool:
        """Give up after a permanent failure or the last allowed attempt."""
        return result.outcome is Outcome.PERMANENT or attempt >= self.max_attempts


def classify_status(status: int) -> Outcome:
    """Map an HTTP status to what the ledger should do next."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (408, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.PERMANENT
