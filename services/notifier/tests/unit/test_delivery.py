"""The delivery worker: retries with backoff, the same idempotency key every time, parking."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from thrive_notifier.adapters.memory import MemoryStore, MemoryUnitOfWork
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import (
    Channel,
    DeliveryKey,
    DeliveryState,
    Kind,
    Recipient,
    RecipientKind,
)
from thrive_notifier.domain.retry import Outcome, RetryPolicy, SendResult, classify_status
from thrive_notifier.service_layer.delivery import deliver_batch, list_parked, retry_parked
from thrive_notifier.service_layer.ports import ClaimedDelivery, NewDelivery

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class ScriptedSender:
    """Answers from a script per delivery; records every idempotency key it was sent."""

    def __init__(self, script: list[SendResult]) -> None:
        self.script = script
        self.keys: dict[int, list[str]] = defaultdict(list)

    async def send(self, d: ClaimedDelivery) -> SendResult:
        self.keys[d.id].append(d.idempotency_key)
        n = len(self.keys[d.id]) - 1
        return self.script[min(n, len(self.script) - 1)]


FAIL = SendResult(Outcome.RETRY, status=503, error="HTTP 503")
OK = SendResult(Outcome.DELIVERED, status=200)


@pytest.fixture
def uow():
    return MemoryUnitOfWork(MemoryStore(clock_now=T0))


async def reserve_webhook(uow, event="e1"):
    key = DeliveryKey(event, Recipient(RecipientKind.TEAM, "blue"), Channel.WEBHOOK)
    async with uow() as repo:
        await repo.set_team_channel("blue", "https://hooks.example.test/blue")
        [(_, did)] = await repo.reserve(
            [
                NewDelivery(
                    key=key,
                    message=Message(kind=Kind.MILESTONE, title="Ana reached: 10"),
                    state=DeliveryState.PENDING,
                )
            ],
            now=T0,
        )
    return did


async def drain(uow, sender, clock, policy, *, rounds=20):
    """Run the worker, letting the clock jump to each retry time."""
    for _ in range(rounds):
        await deliver_batch(uow, {Channel.WEBHOOK: sender}, policy=policy, clock=clock)
        clock.now += timedelta(seconds=policy.max_delay + 1)


async def test_failing_three_times_then_succeeding_delivers_once_with_one_key(uow):
    did = await reserve_webhook(uow)
    sender = ScriptedSender([FAIL, FAIL, FAIL, OK])
    clock = Clock()
    policy = RetryPolicy(max_attempts=6, base_delay=1, max_delay=8)
    await drain(uow, sender, clock, policy)
    keys = sender.keys[did]
    assert len(keys) == 4 and len(set(keys)) == 1
    assert uow.store.deliveries[did].state is DeliveryState.DELIVERED
    assert [a[2] for a in uow.store.attempts] == ["retry", "retry", "retry", "delivered"]


async def test_a_failed_delivery_waits_for_its_backoff(uow):
    did = await reserve_webhook(uow)
    sender = ScriptedSender([FAIL, OK])
    clock = Clock()
    policy = RetryPolicy(max_attempts=6, base_delay=10, max_delay=100)
    await deliver_batch(uow, {Channel.WEBHOOK: sender}, policy=policy, clock=clock)
    report = await deliver_batch(uow, {Channel.WEBHOOK: sender}, policy=policy, clock=clock)
    assert report.claimed == 0  # not yet due
    clock.now += timedelta(seconds=10)
    await deliver_batch(uow, {Channel.WEBHOOK: sender}, policy=policy, clock=clock)
    assert uow.store.deliveries[did].state is DeliveryState.DELIVERED


async def test_down_for_good_is_parked_then_listed_and_delivered_after_retry(uow):
    did = await reserve_webhook(uow)
    sender = ScriptedSender([FAIL])
    clock = Clock()
    policy = RetryPolicy(max_attempts=3, base_delay=1, max_delay=4)
    await drain(uow, sender, clock, policy)
    assert len(sender.keys[did]) == 3
    [parked] = await list_parked(uow)
    assert parked.id == did and parked.last_error == "HTTP 503"
    sender.script = [OK]
    assert await retry_parked(uow, [did], now=clock.now) == 1
    await drain(uow, sender, clock, policy, rounds=1)
    assert uow.store.deliveries[did].state is DeliveryState.DELIVERED
    assert len(set(sender.keys[did])) == 1


async def test_a_permanent_failure_parks_at_once(uow):
    did = await reserve_webhook(uow)
    sender = ScriptedSender([SendResult(Outcome.PERMANENT, status=404, error="HTTP 404")])
    await drain(uow, sender, Clock(), RetryPolicy(max_attempts=5), rounds=3)
    assert len(sender.keys[did]) == 1
    assert uow.store.deliveries[did].state is DeliveryState.PARKED


async def test_a_crash_after_sending_resends_with_the_same_key_once_the_lease_ends(uow):
    did = await reserve_webhook(uow)
    clock = Clock()
    async with uow() as repo:
        first = await repo.claim(
            channels=[Channel.WEBHOOK], limit=10, lease_seconds=30, now=clock.now
        )
    # ...the worker sent it and died before recording. Nobody else may take it while leased:
    async with uow() as repo:
        assert (
            await repo.claim(
                channels=[Channel.WEBHOOK],
                limit=10,
                lease_seconds=30,
                now=clock.now + timedelta(seconds=5),
            )
            == []
        )
    clock.now += timedelta(seconds=31)
    sender = ScriptedSender([OK])
    await deliver_batch(uow, {Channel.WEBHOOK: sender}, policy=RetryPolicy(), clock=clock)
    assert sender.keys[did] == [first[0].idempotency_key]
    assert uow.store.deliveries[did].state is DeliveryState.DELIVERED


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(base_delay=2, max_delay=60)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (10, 60)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jitter spreads retries out


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (429, Outcome.RETRY),
        (503, Outcome.RETRY),
        (408, Outcome.RETRY),
        (400, Outcome.PERMANENT),
        (404, Outcome.PERMANENT),
        (302, Outcome.PERMANENT),
    ],
)
def test_status_classification(status, outcome):
    assert classify_status(status) is outcome
