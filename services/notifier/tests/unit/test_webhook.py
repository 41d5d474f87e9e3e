"""Webhook sending: SSRF refusals (also after redirects and DNS rebinding), signing, pinning."""

import ipaddress
import json

import httpx
import pytest
from thrive_notifier.adapters.egress import (
    DestinationRefused,
    EgressPolicy,
    forbidden_reason,
)
from thrive_notifier.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    verify,
)
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import Channel, DeliveryKey, Kind, Recipient, RecipientKind
from thrive_notifier.domain.retry import Outcome
from thrive_notifier.service_layer.ports import ClaimedDelivery

PUBLIC = "93.184.215.14"
SECRET = b"s3cret"


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "127.8.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.10.10",
        "fe80::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "100.100.100.200",
        "100.64.0.1",
        "fd00:ec2::254",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",
        "198.18.0.1",
    ],
)
def test_internal_addresses_are_refused(addr):
    ip = ipaddress.ip_address(addr)
    assert forbidden_reason(ip) is not None
    with pytest.raises(DestinationRefused):
        EgressPolicy().check_ip(ip)


def test_public_addresses_pass_and_the_allow_list_opens_exactly_what_it_names():
    EgressPolicy().check_ip(ipaddress.ip_address(PUBLIC))
    policy = EgressPolicy.from_strings(["127.0.0.1/32"], require_https=False)
    policy.check_ip(ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(DestinationRefused):
        policy.check_ip(ipaddress.ip_address("127.0.0.2"))


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.test/x",
        "ftp://hooks.example.test/x",
        "https://user:pw@example.test/",
        "https:///nohost",
        "https://[::1]/x",
        "https://localhost/x",
        "https://169.254.169.254/",
    ],
)
def test_urls_refused_when_saved(url):
    with pytest.raises(DestinationRefused):
        EgressPolicy(require_https=True).check_literal(url)


def delivery(url: str | None, *, attempts: int = 1) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=7,
        key=DeliveryKey("e1", Recipient(RecipientKind.TEAM, "blue"), Channel.WEBHOOK),
        idempotency_key="k" * 40,
        message=Message(kind=Kind.MILESTONE, title="Ana reached: <10> & more", themes=("python",)),
        attempts=attempts,
        destination=url,
    )


def resolver(table):
    async def resolve(host, port):
        answer = table.get(host, [host])  # IP literals resolve to themselves
        if callable(answer):
            answer = answer()
        return [ipaddress.ip_address(a) for a in answer]

    return resolve


@pytest.fixture
def sender_with(endpoint):
    async def make(handler, table, *, policy=None):
        site = await endpoint(handler)
        policy = policy or EgressPolicy()
        sender = WebhookSender(
            secret=SECRET,
            policy=policy,
            resolver=resolver(table),
            opener=site.opener,
            clock=lambda: 1_700_000_000,
        )
        return sender, site.seen

    return make


async def test_a_signed_slack_compatible_post_goes_to_the_checked_ip_with_the_host_kept(
    sender_with,
):
    sender, seen = await sender_with(
        lambda r: httpx.Response(200), {"hooks.example.test": [PUBLIC]}
    )
    result = await sender.send(delivery("https://hooks.example.test/services/T1"))
    assert result.outcome is Outcome.DELIVERED
    [req] = seen
    assert req.url.host == PUBLIC and req.headers["host"] == "hooks.example.test"
    assert req.extensions["sni_hostname"] == "hooks.example.test"
    assert req.headers[IDEMPOTENCY_HEADER] == "k" * 40
    ts = req.headers[TIMESTAMP_HEADER]
    assert ts == "1700000000"
    assert verify(SECRET, ts, req.content, req.headers[SIGNATURE_HEADER])
    assert not verify(b"other", ts, req.content, req.headers[SIGNATURE_HEADER])
    body = json.loads(req.content)
    assert "Ana reached: &lt;10&gt; &amp; more" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "Ana reached: <10> & more"


async def test_a_host_resolving_to_an_internal_address_is_never_contacted(sender_with):
    sender, seen = await sender_with(
        lambda r: httpx.Response(200), {"evil.example.test": [PUBLIC, "10.0.0.5"]}
    )
    result = await sender.send(delivery("https://evil.example.test/hook"))
    assert result.outcome is Outcome.PERMANENT and "refused destination" in result.error
    assert seen == []


async def test_dns_rebinding_after_a_good_answer_is_caught_on_the_next_request(sender_with):
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    sender, seen = await sender_with(
        lambda r: httpx.Response(200), {"rebind.example.test": lambda: next(answers)}
    )
    url = "https://rebind.example.test/"
    assert (await sender.send(delivery(url))).outcome is Outcome.DELIVERED
    assert (await sender.send(delivery(url))).outcome is Outcome.PERMANENT
    assert len(seen) == 1


async def test_a_redirect_to_the_metadata_address_is_refused(sender_with):
    def handler(request):
        return httpx.Response(307, headers={"Location": "http://169.254.169.254/latest/meta-data"})

    policy = EgressPolicy(require_https=False)
    sender, seen = await sender_with(handler, {"hooks.example.test": [PUBLIC]}, policy=policy)
    result = await sender.send(delivery("http://hooks.example.test/x"))
    assert result.outcome is Outcome.PERMANENT and "169.254.169.254" in result.error
    assert [r.url.host for r in seen] == [PUBLIC]


async def test_a_safe_redirect_is_followed_with_the_same_body_and_key(sender_with):
    def handler(request):
        if request.url.path == "/old":
            return httpx.Response(308, headers={"Location": "/new"})
        return httpx.Response(204)

    sender, seen = await sender_with(handler, {"hooks.example.test": [PUBLIC]})
    result = await sender.send(delivery("https://hooks.example.test/old"))
    assert result.outcome is Outcome.DELIVERED
    assert [r.url.path for r in seen] == ["/old", "/new"]
    assert seen[0].content == seen[1].content
    assert seen[1].headers["host"] == "hooks.example.test"


async def test_server_errors_retry_with_retry_after_and_client_errors_park(sender_with):
    sender, _ = await sender_with(
        lambda r: httpx.Response(429, headers={"Retry-After": "30"}), {"h.example.test": [PUBLIC]}
    )
    result = await sender.send(delivery("https://h.example.test/"))
    assert result.outcome is Outcome.RETRY and result.retry_after == 30
    sender, _ = await sender_with(lambda r: httpx.Response(410), {"h.example.test": [PUBLIC]})
    assert (await sender.send(delivery("https://h.example.test/"))).outcome is Outcome.PERMANENT


async def test_connection_errors_retry_and_a_missing_url_parks():
    async def refuse(ip, port, context, server_name):
        raise ConnectionRefusedError("refused")

    sender = WebhookSender(
        secret=SECRET,
        policy=EgressPolicy(),
        resolver=resolver({"h.example.test": [PUBLIC]}),
        opener=refuse,
    )
    result = await sender.send(delivery("https://h.example.test/"))
    assert result.outcome is Outcome.RETRY and "ConnectionRefusedError" in result.error
    assert (await sender.send(delivery(None))).outcome is Outcome.PERMANENT
