"""Webhook sending: SSRF refusals (also after redirects and DNS rebinding), signing, pinning."""

import asyncio
import ipaddress
import json
import socket

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


HOOK_IP = "127.0.0.2"  # stands for a public address: the endpoints listen on it
HOOK_POLICY = EgressPolicy.from_strings([f"{HOOK_IP}/32"], require_https=True)


@pytest.fixture
def sender_with(endpoint, make_tls):
    """make(handler, table) -> (sender, site): the site listens on HOOK_IP over TLS with a
    certificate for hooks.example.test from a test CA the sender trusts (instead of certifi)."""
    tls = make_tls("hooks.example.test", "h.example.test", "rebind.example.test")

    async def make(handler, table, *, policy=None, plain=False):
        site = await endpoint(handler, ip=HOOK_IP, tls=None if plain else tls)
        sender = WebhookSender(
            secret=SECRET,
            policy=policy or HOOK_POLICY,
            resolver=resolver(table),
            clock=lambda: 1_700_000_000,
            ssl_context=tls.client_context(),
        )
        return sender, site

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_signed_slack_compatible_post_goes_to_the_checked_ip_with_the_host_kept(
    sender_with,
):
    sender, site = await sender_with(
        lambda r: httpx.Response(200), {"hooks.example.test": [HOOK_IP]}
    )
    result = await sender.send(delivery(f"https://hooks.example.test:{site.port}/services/T1"))
    await sender.aclose()
    assert result.outcome is Outcome.DELIVERED
    [req] = site.seen
    assert req.url.host == HOOK_IP and req.headers["host"] == f"hooks.example.test:{site.port}"
    assert req.extensions["sni_hostname"] == "hooks.example.test"
    assert req.headers[IDEMPOTENCY_HEADER] == "k" * 40
    ts = req.headers[TIMESTAMP_HEADER]
    assert ts == "1700000000"
    assert verify(SECRET, ts, req.content, req.headers[SIGNATURE_HEADER])
    assert not verify(b"other", ts, req.content, req.headers[SIGNATURE_HEADER])
    body = json.loads(req.content)
    assert "Ana reached: &lt;10&gt; &amp; more" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "Ana reached: <10> & more"


async def test_a_certificate_for_another_name_is_not_trusted(sender_with):
    sender, site = await sender_with(
        lambda r: httpx.Response(200), {"other.example.test": [HOOK_IP]}
    )
    result = await sender.send(delivery(f"https://other.example.test:{site.port}/"))
    await sender.aclose()
    assert result.outcome is Outcome.RETRY and "certificate" in result.error.lower()
    assert site.seen == []


async def test_a_host_resolving_to_an_internal_address_is_never_contacted(sender_with):
    sender, site = await sender_with(
        lambda r: httpx.Response(200), {"evil.example.test": [HOOK_IP, "10.0.0.5"]}
    )
    result = await sender.send(delivery(f"https://evil.example.test:{site.port}/hook"))
    await sender.aclose()
    assert result.outcome is Outcome.PERMANENT and "refused destination" in result.error
    assert site.seen == [] and site.connections == 0


async def test_dns_rebinding_after_a_good_answer_is_caught_on_the_next_request(sender_with):
    answers = iter([[HOOK_IP], ["127.0.0.1"]])
    sender, site = await sender_with(
        lambda r: httpx.Response(200), {"rebind.example.test": lambda: next(answers)}
    )
    url = f"https://rebind.example.test:{site.port}/"
    assert (await sender.send(delivery(url))).outcome is Outcome.DELIVERED
    # The kept-alive connection to the first address is not used for a refused answer.
    assert (await sender.send(delivery(url))).outcome is Outcome.PERMANENT
    await sender.aclose()
    assert len(site.seen) == 1


async def test_a_redirect_to_the_metadata_address_is_refused(sender_with):
    def handler(request):
        return httpx.Response(307, headers={"Location": "http://169.254.169.254/latest/meta-data"})

    policy = EgressPolicy.from_strings([f"{HOOK_IP}/32"], require_https=False)
    sender, site = await sender_with(
        handler, {"hooks.example.test": [HOOK_IP]}, policy=policy, plain=True
    )
    result = await sender.send(delivery(f"http://hooks.example.test:{site.port}/x"))
    await sender.aclose()
    assert result.outcome is Outcome.PERMANENT and "169.254.169.254" in result.error
    assert [r.url.host for r in site.seen] == [HOOK_IP]


async def test_a_redirect_to_a_host_resolving_inside_is_refused_before_connecting(sender_with):
    def handler(request):
        return httpx.Response(308, headers={"Location": "https://inside.example.test/x"})

    table = {"hooks.example.test": [HOOK_IP], "inside.example.test": ["10.1.2.3"]}
    sender, site = await sender_with(handler, table)
    result = await sender.send(delivery(f"https://hooks.example.test:{site.port}/x"))
    await sender.aclose()
    assert result.outcome is Outcome.PERMANENT and "10.1.2.3" in result.error
    assert len(site.seen) == 1


async def test_a_safe_redirect_is_followed_with_the_same_body_and_key(sender_with):
    def handler(request):
        if request.url.path == "/old":
            return httpx.Response(308, headers={"Location": "/new"})
        return httpx.Response(204)

    sender, site = await sender_with(handler, {"hooks.example.test": [HOOK_IP]})
    result = await sender.send(delivery(f"https://hooks.example.test:{site.port}/old"))
    await sender.aclose()
    assert result.outcome is Outcome.DELIVERED
    seen = site.seen
    assert [r.url.path for r in seen] == ["/old", "/new"]
    assert seen[0].content == seen[1].content
    assert seen[0].headers[IDEMPOTENCY_HEADER] == seen[1].headers[IDEMPOTENCY_HEADER]
    assert seen[1].headers["host"] == f"hooks.example.test:{site.port}"
    assert site.connections == 1  # the second hop reused the kept-alive connection


async def test_redirects_stop_at_the_limit_and_a_303_is_not_followed(sender_with):
    loop = lambda r: httpx.Response(307, headers={"Location": "/again"})  # noqa: E731
    sender, site = await sender_with(loop, {"hooks.example.test": [HOOK_IP]})
    result = await sender.send(delivery(f"https://hooks.example.test:{site.port}/"))
    assert result.outcome is Outcome.PERMANENT and result.error == "too many redirects"
    assert len(site.seen) == 4  # the request and max_redirects=3 hops
    see_other = lambda r: httpx.Response(303, headers={"Location": "/get"})  # noqa: E731
    sender, site = await sender_with(see_other, {"hooks.example.test": [HOOK_IP]})
    result = await sender.send(delivery(f"https://hooks.example.test:{site.port}/"))
    await sender.aclose()
    assert result.outcome is not Outcome.DELIVERED and len(site.seen) == 1


async def test_server_errors_retry_with_retry_after_and_client_errors_park(sender_with):
    sender, site = await sender_with(
        lambda r: httpx.Response(429, headers={"Retry-After": "30"}), {"h.example.test": [HOOK_IP]}
    )
    result = await sender.send(delivery(f"https://h.example.test:{site.port}/"))
    await sender.aclose()
    assert result.outcome is Outcome.RETRY and result.retry_after == 30
    sender, site = await sender_with(lambda r: httpx.Response(410), {"h.example.test": [HOOK_IP]})
    result = await sender.send(delivery(f"https://h.example.test:{site.port}/"))
    await sender.aclose()
    assert result.outcome is Outcome.PERMANENT


async def test_connection_errors_retry_and_a_missing_url_parks():
    sender = WebhookSender(
        secret=SECRET,
        policy=HOOK_POLICY,
        resolver=resolver({"h.example.test": [HOOK_IP]}),
    )
    result = await sender.send(delivery(f"https://h.example.test:{free_port()}/"))
    assert result.outcome is Outcome.RETRY and "Connect" in result.error
    assert (await sender.send(delivery(None))).outcome is Outcome.PERMANENT
    await sender.aclose()


# -- the connection level, against a scripted server: keep-alive, framing, bad peers ----------
CLOSE = b"<close>"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Scripted:
    """Answers each request with the next scripted reply; `None` closes the connection
    without one, and a reply ending in CLOSE closes it after the reply."""

    def __init__(self, *replies: bytes | None, close_idle: bool = False) -> None:
        self.replies = list(replies)
        self.keys: list[str] = []
        self.connections = 0
        self.close_idle = close_idle
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                fields = dict(
                    line.split(": ", 1) for line in head.decode().lower().split("\r\n")[1:] if line
                )
                await reader.readexactly(int(fields["content-length"]))
                self.keys.append(fields[IDEMPOTENCY_HEADER.lower()])
                reply = self.replies.pop(0)
                if reply is None:
                    return
                writer.write(reply.removesuffix(CLOSE))
                await writer.drain()
                # close_idle: as a server whose keep-alive timeout ran out would
                if self.close_idle or reply.endswith(CLOSE):
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> "Scripted":
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.sender = WebhookSender(
            secret=SECRET,
            policy=EgressPolicy.from_strings(["127.0.0.1/32"], require_https=False),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        await self.sender.aclose()
        self.server.close()

    async def send(self):
        port = self.server.sockets[0].getsockname()[1]
        return await self.sender.send(delivery(f"http://127.0.0.1:{port}/hook"))


async def test_a_connection_is_kept_alive_between_sends():
    async with Scripted(OK, OK, OK) as server:
        for _ in range(3):
            assert (await server.send()).status == 200
    assert server.connections == 1 and len(server.keys) == 3


async def test_a_kept_connection_the_server_closed_is_replaced_and_the_request_sent_again():
    async with Scripted(OK, None, OK) as server:
        assert (await server.send()).status == 200
        # The server drops the kept connection on the next request without answering.
        result = await server.send()
        assert result.outcome is Outcome.DELIVERED
    assert server.connections == 2 and server.keys == ["k" * 40] * 3  # same key resent


async def test_a_connection_closed_while_idle_is_not_reused():
    async with Scripted(OK, OK, close_idle=True) as server:
        assert (await server.send()).status == 200
        await asyncio.sleep(0.05)  # the server's close reaches the client
        assert (await server.send()).status == 200
    assert server.connections == 2 and len(server.keys) == 2


@pytest.mark.timeout(10)
async def test_chunked_and_close_delimited_bodies_and_interim_responses():
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    until_close = b"HTTP/1.0 503 Busy\r\n\r\nbody until close" + CLOSE
    async with Scripted(chunked, OK, until_close, OK) as server:
        first = await server.send()
        assert (first.outcome, first.status, first.retry_after) == (Outcome.RETRY, 503, 3)
        assert (await server.send()).status == 200  # same connection after the chunks
        assert (await server.send()).status == 503
        assert (await server.send()).status == 200  # on a new one
    assert server.connections == 2


async def test_a_huge_body_is_not_read_to_its_end_and_its_connection_is_dropped():
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1_000_000
    async with Scripted(huge, OK) as server:
        assert (await server.send()).status == 200
        assert (await server.send()).status == 200
    assert server.connections == 2


async def test_garbage_and_a_fresh_connection_that_closes_are_retried_later():
    async with Scripted(b"SMTP ready\r\n\r\n") as server:
        result = await server.send()
        assert result.outcome is Outcome.RETRY and result.status is None
    async with Scripted(None, None) as server:
        result = await server.send()
        assert result.outcome is Outcome.RETRY and "Disconnected" in result.error
