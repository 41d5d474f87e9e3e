"""The delivery worker: claim due ledger rows, send them, record what happened."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from thrive_notifier.domain.model import Channel, DeliveryState
from thrive_notifier.domain.retry import Outcome, RetryPolicy, SendResult
from thrive_notifier.service_layer.ports import (
    AttemptRecord,
    ClaimedDelivery,
    Sender,
    UnitOfWork,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchReport:
    claimed: int = 0
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> state -> n
    retries: dict[str, int] = field(default_factory=dict)  # channel -> n

    def count(self, channel: str, state: str) -> None:
        per = self.outcomes.setdefault(channel, {})
        per[state] = per.get(state, 0) + 1


def outcome_of(
    d: ClaimedDelivery,
    result: SendResult,
    *,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random | None = None,
) -> AttemptRecord:
    """The ledger's next state after one attempt: delivered, retried later, or parked."""
    if result.outcome is Outcome.DELIVERED:
        return AttemptRecord(d, result, DeliveryState.DELIVERED, None)
    if policy.should_park(d.attempts, result):
        return AttemptRecord(d, result, DeliveryState.PARKED, None)
    delay = policy.delay(d.attempts, rng=rng)
    if result.retry_after is not None:
        delay = max(delay, min(result.retry_after, policy.max_delay))
    return AttemptRecord(d, result, DeliveryState.FAILED, now + timedelta(seconds=delay))


async def _send_one(sender: Sender, d: ClaimedDelivery) -> SendResult:
    try:
        return await sender.send(d)
    except Exception as exc:  # a sender bug must not take the batch down; retry later
        log.exception("sender raised", extra={"delivery_id": d.id})
        return SendResult(Outcome.RETRY, error=f"sender error: {type(exc).__name__}")


async def deliver_batch(
    uow: UnitOfWork,
    senders: Mapping[Channel, Sender],
    *,
    policy: RetryPolicy,
    limit: int = 100,
    lease_seconds: float = 60.0,
    concurrency: int = 32,
    clock: Callable[[], datetime],
) -> BatchReport:
    """Claim up to `limit` due deliveries, send them concurrently, record every outcome.

    A crash after sending and before recording leaves the lease to expire: the row is sent
    again with the same idempotency key, and the receiver deduplicates on it.
    """
    report = BatchReport()
    async with uow() as repo:
        claimed = await repo.claim(
            channels=list(senders), limit=limit, lease_seconds=lease_seconds, now=clock()
        )
    report.claimed = len(claimed)
    if not claimed:
        return report
    gate = asyncio.Semaphore(concurrency)

    async def run(d: ClaimedDelivery) -> SendResult:
        async with gate:
            return await _send_one(senders[d.key.channel], d)

    results = await asyncio.gather(*(run(d) for d in claimed))
    now = clock()
    records = [
        outcome_of(d, r, policy=policy, now=now) for d, r in zip(claimed, results, strict=True)
    ]
    async with uow() as repo:
        await repo.record(records, now)
    for rec in records:
        ch = rec.delivery.key.channel.value
        report.count(ch, rec.state.value)
        if rec.state is DeliveryState.FAILED:
            report.retries[ch] = report.retries.get(ch, 0) + 1
    return report


async def list_parked(uow: UnitOfWork, *, limit: int = 100) -> list:  # type: ignore[type-arg]
    """Parked deliveries, oldest first, for operators."""
    async with uow() as repo:
        return await repo.parked(limit=limit)


async def retry_parked(uow: UnitOfWork, ids: Sequence[int] | None, *, now: datetime) -> int:
    """Put parked deliveries (all, or the given ids) back in line with a fresh attempt budget."""
    async with uow() as repo:
        return await repo.unpark(ids, now)
