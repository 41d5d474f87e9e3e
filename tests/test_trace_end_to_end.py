"""One trace per user action: a `giveThanks` mutation is followed, as one connected
OpenTelemetry trace, from the gateway through recognition, Postgres, the outbox and Kafka into
the leaderboard and the notifier, and out to the recipient's webhook.

The four services run as real processes exporting OTLP/HTTP to a collector inside this test.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.parser import text_string_to_metric_families
from thrive_shared.contracts import PersonUpserted, make_event, topics
from thrive_shared.devstack import Endpoints
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.platform import Platform
from thrive_shared.testing import isolated_platform, wait_for

from .support.receivers import (
    CollectedSpan,
    OtlpCollector,
    WebhookSink,
    render_tree,
    tree_problems,
)

GIVER, HELPER = "ada", "grace"
PEOPLE = {GIVER: ("Ada Lovelace", "platform"), HELPER: ("Grace Hopper", "platform")}
GIVE_THANKS = """
mutation GiveThanks($input: GiveThanksInput!) {
  giveThanks(input: $input) {
    __typename
    ... on ThanksGiven { thanks { id } }
    ... on UserError { message }
  }
}
"""
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


# --- the collector itself --------------------------------------------------------------------


def test_collector_keeps_what_the_otlp_exporter_sends() -> None:
    """The receiver decodes real OTLP/HTTP exports: names, kinds, parents and resources."""
    with OtlpCollector() as collector:
        provider = TracerProvider(resource=Resource.create({"service.name": "thrive-test"}))
        exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces", timeout=5)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with (
            tracer.start_as_current_span("parent", kind=trace.SpanKind.SERVER) as parent,
            tracer.start_as_current_span("child", kind=trace.SpanKind.PRODUCER) as child,
        ):
            child.set_attribute("messaging.destination.name", "x")
        provider.shutdown()
        spans = {s.name: s for s in collector.spans()}
    assert set(spans) == {"parent", "child"}
    trace_id = format(parent.get_span_context().trace_id, "032x")
    assert spans["child"].trace_id == spans["parent"].trace_id == trace_id
    assert spans["child"].parent_span_id == spans["parent"].span_id
    assert spans["parent"].parent_span_id is None
    assert (spans["parent"].kind, spans["child"].kind) == ("SERVER", "PRODUCER")
    assert spans["child"].service == "thrive-test"
    assert spans["child"].attributes == {"messaging.destination.name": "x"}
    assert tree_problems(list(spans.values())) == []
    assert not collector.rejected


def test_tree_problems_names_orphans_and_extra_roots() -> None:
    def span(sid: str, parent: str | None) -> CollectedSpan:
        return CollectedSpan("s", "t", sid, "INTERNAL", "a" * 32, sid, parent)

    assert tree_problems([span("1", None), span("2", "1")]) == []
    problems = tree_problems([span("1", None), span("2", "9"), span("3", None)])
    assert any("2 roots" in p for p in problems)
    assert any("parent not in trace" in p and "'2'" in p for p in problems)


# --- the platform, traced --------------------------------------------------------------------


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as c:
        yield c


@pytest.fixture(scope="module")
def webhook_sink() -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        yield sink


@pytest.fixture(scope="module")
async def traced_platform(
    stack: Endpoints, collector: OtlpCollector, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """The four services (fresh database, own topics, free ports) exporting spans to `collector`,
    with the notifier allowed to post webhooks to this machine (its SSRF guard refuses that
    unless told otherwise) over plain HTTP."""
    log_dir = tmp_path_factory.mktemp("traced-platform-logs")
    extra_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "THRIVE_NOTIFIER_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "THRIVE_NOTIFIER_WEBHOOK_REQUIRE_HTTPS": "false",
    }
    async with isolated_platform(
        stack, label="traced", log_dir=log_dir, extra_env=extra_env
    ) as plat:
        yield plat


async def _publish_people(platform: Platform) -> None:
    """Act as the HR system on this platform's copy of the directory topic."""
    publisher = Publisher(platform.kafka, client_id="thrive-test-hr")
    await publisher.start()
    try:
        await publisher.send_all(
            [
                OutgoingRecord(
                    topic=f"{topics.DIRECTORY_PERSON}-{platform.topic_suffix}",
                    key=pid,
                    value=make_event(
                        PersonUpserted(
                            person=pid, name=name, email=f"{pid}@example.com", team=team
                        ),
                        source="hr/test",
                    ).to_json(),
                )
                for pid, (name, team) in PEOPLE.items()
            ]
        )
    finally:
        await publisher.stop()


async def _consumed_ok(client: httpx.AsyncClient, url: str, topic: str) -> float:
    """Events of `topic` a service applied, from its own /metrics."""
    text = (await client.get(url + "/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "thrive_events_consumed_total"
        and sample.labels.get("topic") == topic
        and sample.labels.get("outcome") == "ok"
    )


@dataclass(frozen=True)
class Thanked:
    """What one giveThanks through the gateway left behind."""

    root: CollectedSpan  # the gateway's server span for POST /graphql: the trace's root
    topic: str  # this platform's copy of thrive.help.received.v1


@pytest.fixture(scope="module")
async def thanked(
    traced_platform: Platform, collector: OtlpCollector, webhook_sink: WebhookSink
) -> Thanked:
    """Ada thanks Grace through the gateway; Grace has a webhook channel on the test's sink."""
    plat = traced_platform
    gateway, notifier = plat.url("gateway"), plat.url("notifier")
    directory = f"{topics.DIRECTORY_PERSON}-{plat.topic_suffix}"
    async with httpx.AsyncClient(timeout=10.0) as client:
        # The people exist everywhere before anyone thanks anyone.
        await _publish_people(plat)
        for service in ("recognition", "notifier"):
            url = plat.url(service)
            await wait_for(
                lambda url=url: _consumed_ok(client, url, directory),  # type: ignore[misc]
                timeout=60,
                message=f"{service} did not apply the directory events",
            )
        r = await client.put(
            f"{notifier}/internal/v1/people/{HELPER}/preferences",
            json={"channels": ["in_app", "webhook"], "webhook_url": webhook_sink.url + "/hook"},
            headers={"X-Thrive-Actor": HELPER},
        )
        assert r.status_code == 200, r.text

        token = await client.post(f"{gateway}/dev-oidc/token", json={"username": GIVER})
        assert token.status_code == 200, token.text
        r = await client.post(
            f"{gateway}/graphql",
            json={
                "query": GIVE_THANKS,
                "operationName": "GiveThanks",
                "variables": {
                    "input": {
                        "helper": HELPER,
                        "message": "Thanks for the trace-context walkthrough!",
                        "themes": ["observability"],
                    }
                },
            },
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert r.status_code == 200, r.text
        result = r.json()
        assert result.get("errors") is None, result
        assert result["data"]["giveThanks"]["__typename"] == "ThanksGiven", result

    def gateway_root() -> CollectedSpan | None:
        return next(
            (
                s
                for s in collector.spans()
                if s.service == "thrive-gateway"
                and s.kind == "SERVER"
                and s.name == "POST /graphql"
                and s.parent_span_id is None
            ),
            None,
        )

    root = await wait_for(
        gateway_root,
        timeout=30,
        message="the gateway exported no server span for POST /graphql "
        f"(services seen: {sorted({s.service for s in collector.spans()})})",
    )
    return Thanked(root=root, topic=f"{topics.HELP_RECEIVED}-{plat.topic_suffix}")


# Every hop up to the consumers of the event, as (service.name, span kind).
PIPELINE_HOPS = (
    ("thrive-gateway", "SERVER"),
    ("thrive-gateway", "INTERNAL"),
    ("thrive-gateway", "CLIENT"),
    ("thrive-recognition", "SERVER"),
    ("thrive-recognition", "PRODUCER"),
    ("thrive-leaderboard", "CONSUMER"),
    ("thrive-notifier", "CONSUMER"),
)


class Trace:
    """One trace's spans, with the parent links walked for assertions."""

    def __init__(self, spans: list[CollectedSpan]) -> None:
        self.spans = spans
        self.by_id = {s.span_id: s for s in spans}
        self.tree = render_tree(spans)

    def parent(self, s: CollectedSpan) -> CollectedSpan:
        assert s.parent_span_id is not None, f"{s.describe()} is a root\n{self.tree}"
        return self.by_id[s.parent_span_id]

    def ancestors(self, s: CollectedSpan) -> list[CollectedSpan]:
        out = []
        while s.parent_span_id is not None:
            s = self.parent(s)
            out.append(s)
        return out

    def one(self, what: str, **match: str) -> CollectedSpan:
        found = [s for s in self.spans if all(getattr(s, k) == v for k, v in match.items())]
        assert found, f"no {what} span ({match}) in the trace:\n{self.tree}"
        return found[0]


async def connected_trace(
    collector: OtlpCollector, trace_id: str, *, needs: Callable[[Trace], None]
) -> Trace:
    """The trace once `needs` holds and its spans form one tree (spans arrive in batches)."""

    def ready() -> Trace:
        t = Trace(collector.trace(trace_id))
        needs(t)
        problems = tree_problems(t.spans)
        assert not problems, "\n".join(problems) + "\n" + t.tree
        return t

    result: Trace = await wait_for(ready, timeout=30, message="the trace did not come together")
    return result


@pytest.mark.stack
@pytest.mark.slow
async def test_give_thanks_is_one_trace_from_gateway_through_kafka_to_both_consumers(
    thanked: Thanked, collector: OtlpCollector
) -> None:
    def every_hop(t: Trace) -> None:
        hops = {(s.service, s.kind) for s in t.spans}
        for hop in PIPELINE_HOPS:
            assert hop in hops, f"no {hop} span in the trace yet:\n{t.tree}"
        # Both consumers of the thanks itself: a milestone the same thanks reached can reach
        # a consumer (and the collector) first, and would satisfy the hop above alone.
        for svc in ("thrive-leaderboard", "thrive-notifier"):
            t.one(f"{svc} consumer", service=svc, kind="CONSUMER", name=f"{thanked.topic} process")

    t = await connected_trace(collector, thanked.root.trace_id, needs=every_hop)
    assert [s for s in t.spans if s.parent_span_id is None] == [thanked.root], t.tree
    # gateway -> recognition's internal API, over HTTP with traceparent.
    server = t.one(
        "recognition server",
        service="thrive-recognition",
        kind="SERVER",
        name="POST /internal/v1/thanks",
    )
    call = t.parent(server)
    assert (call.service, call.kind) == ("thrive-gateway", "CLIENT"), t.tree
    # ... made inside the gateway's span for the GraphQL operation, under its HTTP request.
    operation = t.one("gateway operation", service="thrive-gateway", name="graphql.operation")
    assert operation.attributes.get("graphql.operation.name") == "GiveThanks", t.tree
    assert operation.attributes.get("graphql.outcome") == "ok", t.tree
    assert operation in t.ancestors(call), t.tree
    assert t.parent(operation) is thanked.root, t.tree
    # recognition's SQL under its request, and the outbox relay's publish of the event.
    assert any(
        s.attributes.get("db.system.name") == "postgresql"
        and s.name == "INSERT"
        and s.parent_span_id == server.span_id
        for s in t.spans
    ), t.tree
    publish = t.one(
        "outbox publish",
        service="thrive-recognition",
        kind="PRODUCER",
        name=f"{thanked.topic} publish",
    )
    assert t.parent(publish) is server, t.tree
    assert publish.attributes["messaging.destination.name"] == thanked.topic
    # Kafka -> both consumers continue the producer's context from the record headers.
    for svc in ("thrive-leaderboard", "thrive-notifier"):
        consume = t.one(
            f"{svc} consumer", service=svc, kind="CONSUMER", name=f"{thanked.topic} process"
        )
        assert t.parent(consume) is publish, t.tree
        assert (
            consume.attributes["messaging.message.id"] == publish.attributes["messaging.message.id"]
        )


def webhook_trace_ids(sink: WebhookSink) -> list[str]:
    """Trace ids of the webhooks the sink received; every webhook must carry a traceparent."""
    ids = []
    for request in sink.received():
        m = _TRACEPARENT.match(request.headers.get("traceparent", ""))
        assert m, f"webhook without a valid traceparent header: {request.headers}"
        ids.append(m.group(1))
    return ids


@pytest.mark.stack
@pytest.mark.slow
async def test_the_thanked_persons_webhook_arrives_with_trace_context(
    thanked: Thanked, webhook_sink: WebhookSink
) -> None:
    trace_ids = await wait_for(
        lambda: webhook_trace_ids(webhook_sink), timeout=60, message="no webhook reached the sink"
    )
    assert trace_ids
    assert all(r.path == "/hook" for r in webhook_sink.received())


@pytest.mark.stack
@pytest.mark.slow
async def test_the_webhook_delivery_continues_the_thanks_trace(
    thanked: Thanked, collector: OtlpCollector, webhook_sink: WebhookSink
) -> None:
    trace_ids = await wait_for(
        lambda: webhook_trace_ids(webhook_sink), timeout=60, message="no webhook reached the sink"
    )
    assert thanked.root.trace_id in trace_ids, (
        f"the webhook went out in another trace ({trace_ids}) than the mutation "
        f"({thanked.root.trace_id})"
    )

    def has_webhook(t: Trace) -> None:
        assert any(s.name == "webhook send" for s in t.spans), f"no webhook send yet:\n{t.tree}"

    t = await connected_trace(collector, thanked.root.trace_id, needs=has_webhook)
    send = t.one("webhook delivery", service="thrive-notifier", name="webhook send")
    chain = t.ancestors(send)
    assert any(a.kind == "CONSUMER" and a.service == "thrive-notifier" for a in chain), t.tree
    assert chain[-1] is thanked.root, t.tree
