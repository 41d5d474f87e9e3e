"""Webhook channel: Slack/Teams-compatible JSON, HMAC-signed, idempotent, SSRF-guarded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import ssl
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import certifi
import orjson
from aiohttp.abc import AbstractResolver, ResolveResult
from opentelemetry import trace
from thrive_shared.observability import inject_headers
from yarl import URL

from thrive_notifier.adapters.egress import (
    DestinationRefused,
    EgressPolicy,
    IPAddress,
    Resolver,
    system_resolver,
)
from thrive_notifier.adapters.tracing import send_context
from thrive_notifier.domain.messages import chat_payload
from thrive_notifier.domain.retry import Outcome, SendResult, classify_status
from thrive_notifier.service_layer.ports import ClaimedDelivery

SIGNATURE_HEADER = "X-Thrive-Signature"
TIMESTAMP_HEADER = "X-Thrive-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_HEADER = "X-Thrive-Delivery"
USER_AGENT = "thrive-notifier/1"
_MAX_RESPONSE = 64 * 1024
_REDIRECTS = (307, 308)  # the only ones that keep a POST a POST with its body
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)
_tracer = trace.get_tracer("thrive_notifier.webhook")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 over `<timestamp>.<body>`, as receivers verify it."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time check of a signature made by `sign` (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _target(url: str) -> URL:
    """The URL as aiohttp will send it (path and query percent-encoded, IDNA host)."""
    netloc = urlsplit(url).netloc
    if any(ch <= " " or ch == "\x7f" for ch in netloc):
        raise DestinationRefused("not a valid URL: control characters in the host")
    try:
        target = URL(url)
        if not target.raw_host:
            raise ValueError("no host")
    except (ValueError, UnicodeError) as exc:
        raise DestinationRefused(f"not a valid URL: {exc}") from exc
    return target


# The address the current hop checked, as (host as aiohttp asks for it, port, ip). A context
# variable, so concurrent sends (each in its own task) never see each other's pin.
_pin: ContextVar[tuple[str, int, IPAddress] | None] = ContextVar("thrive_webhook_pin", default=None)


class PinnedResolver(AbstractResolver):
    """aiohttp's name resolution for webhooks: answers only with the address the sender
    resolved and checked for this very hop, never with a lookup of its own (so DNS
    rebinding between the check and the connect cannot move the connection)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pin = _pin.get()
        if pin is None or pin[0] != host or pin[1] != port:
            # Fail closed: aiohttp asked for something the SSRF check did not cover.
            raise OSError(f"no checked address for {host}:{port}")
        ip = pin[2]
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class _Reply:
    status: int
    location: str | None
    retry_after: str | None


class WebhookSender:
    """Posts deliveries to their webhook URL; failures become results, never exceptions.

    Every hop (the first request and each redirect) resolves its host, refuses it unless
    every address is allowed (EgressPolicy), and a new connection goes to exactly the
    checked address (PinnedResolver). Kept-alive connections are aiohttp's, by host name:
    each was opened to an address checked when it was opened, and a hop whose host now
    resolves to a refused address is refused before any connection is taken.
    """

    def __init__(
        self,
        *,
        secret: bytes,
        policy: EgressPolicy,
        timeout: float = 10.0,
        max_redirects: int = 3,
        resolver: Resolver = system_resolver,
        clock: Callable[[], float] = time.time,
        max_connections: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.secret = secret
        self.policy = policy
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.resolver = resolver
        self.clock = clock
        # Connections per destination host: as many as may be in flight at once.
        self.max_connections = max_connections
        # The CA bundle webhooks were always verified with (certifi's), not the OS store.
        self.ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use: aiohttp needs the running loop
            context = self.ssl_context or ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(
                resolver=PinnedResolver(),
                use_dns_cache=False,
                ssl=context,
                limit=self.max_connections,
                limit_per_host=self.max_connections,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=_NO_TIMEOUT,  # each hop runs under asyncio.timeout(self.timeout)
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies are not kept
                auto_decompress=False,  # the body is only drained, never read
                trust_env=False,  # never through an environment's proxy: it would unpin
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, d: ClaimedDelivery) -> SendResult:
        """POST once (following safe redirects); classify the outcome for the ledger."""
        if not d.destination:
            return SendResult(Outcome.PERMANENT, error="no webhook configured")
        body = orjson.dumps(chat_payload(d.message, idempotency_key=d.idempotency_key))
        url = d.destination
        with _tracer.start_as_current_span(
            "webhook send",
            context=send_context(d),
            kind=trace.SpanKind.CLIENT,
            attributes={"thrive.delivery_id": d.id, "thrive.attempt": d.attempts},
        ) as span:
            try:
                for _hop in range(self.max_redirects + 1):
                    resp = await self._post(url, body, d)
                    span.set_attribute("http.response.status_code", resp.status)
                    if resp.status in _REDIRECTS and resp.location is not None:
                        url = urljoin(url, resp.location)
                        continue
                    outcome = classify_status(resp.status)
                    error = None if outcome is Outcome.DELIVERED else f"HTTP {resp.status}"
                    return SendResult(
                        outcome,
                        status=resp.status,
                        error=error,
                        retry_after=_retry_after(resp.retry_after),
                    )
                return SendResult(Outcome.PERMANENT, error="too many redirects")
            except DestinationRefused as exc:
                return SendResult(Outcome.PERMANENT, error=f"refused destination: {exc}")
            except (OSError, aiohttp.ClientError) as exc:
                # Timeouts (TimeoutError is an OSError), refused/reset connections, TLS
                # failures, malformed responses (aiohttp's ClientError family).
                return SendResult(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:300])

    async def _post(self, url: str, body: bytes, d: ClaimedDelivery) -> _Reply:
        _scheme, host, port = self.policy.check_url(url)
        target = _target(url)
        ts = str(int(self.clock()))
        headers = inject_headers(
            {
                "User-Agent": USER_AGENT,
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(self.secret, ts, body),
                IDEMPOTENCY_HEADER: d.idempotency_key,
                DELIVERY_HEADER: str(d.id),
            }
        )
        async with asyncio.timeout(self.timeout):
            ip = self.policy.choose(await self.resolver(host, port))
            raw_host = target.raw_host or ""
            if raw_host.endswith(".."):  # as aiohttp's connector asks for it
                raw_host = raw_host.rstrip(".") + "."
            token = _pin.set((raw_host, target.port or port, ip))
            try:
                return await self._exchange(target, headers, body)
            finally:
                _pin.reset(token)

    async def _exchange(self, target: URL, headers: dict[str, str], body: bytes) -> _Reply:
        """One request and its response (the body drained up to a bound).

        A kept-alive connection the server closed meanwhile fails before any response
        arrives; aiohttp resends only idempotent methods then, so the POST is sent once
        more here (it carries an Idempotency-Key: a receiver that did see it dedups it).
        """
        session = self._client()
        resent = False
        while True:
            try:
                resp = await session.post(target, data=body, headers=headers, allow_redirects=False)
                break
            except aiohttp.ClientConnectorError:
                raise  # no connection was made: nothing to resend on
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if resent:
                    raise
                resent = True
        try:
            # Read at most _MAX_RESPONSE bytes: a body left unread past that makes aiohttp
            # close the connection on release instead of keeping it.
            size = 0
            while size < _MAX_RESPONSE:
                chunk = await resp.content.read(_MAX_RESPONSE - size)
                if not chunk:
                    break
                size += len(chunk)
            return _Reply(
                resp.status, resp.headers.get("Location"), resp.headers.get("Retry-After")
            )
        finally:
            resp.release()
