"""Webhooks and emails continue the trace of the event that caused them (issue 7)."""

import ipaddress
from datetime import UTC, datetime

import httpx
from opentelemetry import context as otel_context
from thrive_notifier.adapters.egress import EgressPolicy
from thrive_notifier.adapters.email import EmailSender
from thrive_notifier.adapters.memory import MemoryStore, MemoryUnitOfWork
from thrive_notifier.adapters.webhook import WebhookSender
from thrive_notifier.domain.model import Channel, Preferences, TraceContext
from thrive_notifier.domain.retry import RetryPolicy
from thrive_notifier.entrypoints.kafka import current_trace
from thrive_notifier.service_layer.delivery import deliver_batch
from thrive_notifier.service_layer.handlers import consume
from thrive_shared.contracts import CelebrationSize, MilestoneReached, PersonUpserted, make_event
from thrive_shared.observability import context_from_headers

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
HOOK_IP = "127.0.0.2"  # stands for a public address: the endpoint listens on it


def trace_id_of(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent else None


def ana_joins():
    return make_event(
        PersonUpserted(person="ana", name="Ana", email="ana@example.test", team="blue"),
        source="hr/test",
    )


def test_the_consumed_events_context_is_what_deliveries_keep():
    assert current_trace() is None  # no event, no trace: nothing is stored
    token = otel_context.attach(
        context_from_headers({"traceparent": TRACEPARENT, "tracestate": "vendor=x"})
    )
    try:
        kept = current_trace()
    finally:
        otel_context.detach(token)
    assert kept is not None and trace_id_of(kept.traceparent) == TRACE_ID
    assert kept.tracestate == "vendor=x"


async def test_a_traced_milestones_webhook_and_email_go_out_in_its_trace(smtp, endpoint, make_tls):
    tls = make_tls("hooks.example.test")
    site = await endpoint(lambda request: httpx.Response(200), ip=HOOK_IP, tls=tls)
    posted = site.seen
    hooks = f"https://hooks.example.test:{site.port}"
    uow = MemoryUnitOfWork(MemoryStore(clock_now=NOW))
    async with uow() as repo:
        await consume(repo, [(ana_joins(), None)], now=NOW)
        await repo.put_preferences(
            "ana",
            Preferences(
                channels=frozenset({Channel.IN_APP, Channel.EMAIL, Channel.WEBHOOK}),
                webhook_url=f"{hooks}/ana",
            ),
        )
        await repo.set_team_channel("blue", f"{hooks}/blue")
        event = make_event(
            MilestoneReached(
                milestone_id="m1",
                person="ana",
                team="blue",
                rule_id="helped_10",
                level=1,
                size=CelebrationSize.LARGE,
                title="Ten people helped",
                themes=["python"],
                reached_at=NOW,
            ),
            source="thrive/recognition",
        )
        await consume(repo, [(event, TraceContext(TRACEPARENT))], now=NOW)

    async def resolve(host, port):
        return [ipaddress.ip_address(HOOK_IP)]

    webhook = WebhookSender(
        secret=b"s",
        policy=EgressPolicy.from_strings([f"{HOOK_IP}/32"], require_https=True),
        resolver=resolve,
        ssl_context=tls.client_context(),
    )
    email = EmailSender(host="127.0.0.1", port=smtp.port, sender="Thrive <t@example.test>")
    report = await deliver_batch(
        uow,
        {Channel.WEBHOOK: webhook, Channel.EMAIL: email},
        policy=RetryPolicy(max_attempts=3, base_delay=1, max_delay=10),
        clock=lambda: NOW,
    )
    await webhook.aclose()
    assert report.outcomes == {"webhook": {"delivered": 2}, "email": {"delivered": 1}}
    # Ana's own webhook and her team's channel both continue the milestone's trace...
    assert sorted(r.url.path for r in posted) == ["/ana", "/blue"]
    assert {trace_id_of(r.headers.get("traceparent")) for r in posted} == {TRACE_ID}
    # ... and so does her email.
    [mail] = smtp.to("ana@example.test")
    assert trace_id_of(mail["traceparent"]) == TRACE_ID


async def test_a_digest_or_an_untraced_event_sends_without_borrowing_a_trace(smtp):
    uow = MemoryUnitOfWork(MemoryStore(clock_now=NOW))
    async with uow() as repo:
        await consume(repo, [(ana_joins(), None)], now=NOW)
        await repo.put_preferences(
            "ana", Preferences(channels=frozenset({Channel.IN_APP, Channel.EMAIL}))
        )
        untraced = make_event(
            MilestoneReached(
                milestone_id="m2",
                person="ana",
                team="blue",
                rule_id="helped_10",
                level=1,
                size=CelebrationSize.SMALL,
                title="First thanks",
                themes=[],
                reached_at=NOW,
            ),
            source="thrive/recognition",
        )
        await consume(repo, [(untraced, None)], now=NOW)
    email = EmailSender(host="127.0.0.1", port=smtp.port, sender="Thrive <t@example.test>")
    await deliver_batch(
        uow,
        {Channel.EMAIL: email},
        policy=RetryPolicy(max_attempts=3, base_delay=1, max_delay=10),
        clock=lambda: NOW,
    )
    [mail] = smtp.to("ana@example.test")
    assert mail["traceparent"] is None
