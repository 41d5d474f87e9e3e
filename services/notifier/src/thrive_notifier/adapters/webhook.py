"""Webhook channel: Slack/Teams-compatible JSON, HMAC-signed, idempotent, SSRF-guarded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote, urljoin, urlsplit

import orjson
from opentelemetry import trace
from thrive_shared.observability import inject_headers

from thrive_notifier.adapters.egress import (
    DestinationRefused,
    EgressPolicy,
    Resolver,
    system_resolver,
)
from thrive_notifier.adapters.http1 import Http1Client, Opener, ProtocolError, Response, open_tcp
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
# What a request target may hold as it is; anything else is percent-encoded.
_TARGET_SAFE = "/?#[]@!$&'()*+,;=-._~%:"
_tracer = trace.get_tracer("thrive_notifier.webhook")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 over `<timestamp>.<body>`, as receivers verify it."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time check of a signature made by `sign` (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _retry_after(resp: Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _request_line_parts(url: str, host: str) -> tuple[str, str]:
    """The request target (path and query) and the Host header value of a checked URL."""
    parts = urlsplit(url)
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    netloc = parts.netloc.rpartition("@")[2]  # credentials were refused by check_url
    if not netloc.isascii():
        port = f":{parts.port}" if parts.port else ""
        netloc = host.encode("idna").decode("ascii") + port
    if any(ch <= " " or ch == "\x7f" for ch in netloc):
        raise DestinationRefused("not a valid URL: control characters in the host")
    return target, netloc


class WebhookSender:
    """Posts deliveries to their webhook URL; failures become results, never exceptions.

    Every hop (the first request and each redirect) resolves its host, refuses it unless
    every address is allowed (EgressPolicy), and connects to exactly the checked address.
    """

    def __init__(
        self,
        *,
        secret: bytes,
        policy: EgressPolicy,
        timeout: float = 10.0,
        max_redirects: int = 3,
        resolver: Resolver = system_resolver,
        opener: Opener = open_tcp,
        clock: Callable[[], float] = time.time,
        max_connections: int = 64,
    ) -> None:
        self.secret = secret
        self.policy = policy
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.resolver = resolver
        self.clock = clock
        # Connections kept alive per destination: as many as may be in flight at once.
        self.http = Http1Client(opener=opener, max_idle_per_destination=max_connections)

    async def aclose(self) -> None:
        await self.http.aclose()

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
                    location = resp.headers.get("location")
                    if resp.status in _REDIRECTS and location is not None:
                        url = urljoin(url, location)
                        continue
                    outcome = classify_status(resp.status)
                    error = None if outcome is Outcome.DELIVERED else f"HTTP {resp.status}"
                    return SendResult(
                        outcome,
                        status=resp.status,
                        error=error,
                        retry_after=_retry_after(resp),
                    )
                return SendResult(Outcome.PERMANENT, error="too many redirects")
            except DestinationRefused as exc:
                return SendResult(Outcome.PERMANENT, error=f"refused destination: {exc}")
            except (OSError, asyncio.IncompleteReadError, ProtocolError) as exc:
                # Includes timeouts (TimeoutError is an OSError), resets and TLS failures.
                return SendResult(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:300])

    async def _post(self, url: str, body: bytes, d: ClaimedDelivery) -> Response:
        scheme, host, port = self.policy.check_url(url)
        target, netloc = _request_line_parts(url, host)
        ts = str(int(self.clock()))
        headers = inject_headers(
            {
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(self.secret, ts, body),
                IDEMPOTENCY_HEADER: d.idempotency_key,
                DELIVERY_HEADER: str(d.id),
            }
        )
        head = "".join(
            (
                f"POST {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: {USER_AGENT}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n",
                *(f"{name}: {value}\r\n" for name, value in headers.items()),
                "\r\n",
            )
        ).encode("latin-1")
        async with asyncio.timeout(self.timeout):
            ip = self.policy.choose(await self.resolver(host, port))
            return await self.http.post(
                scheme=scheme,
                ip=str(ip),
                port=port,
                server_name=host,
                head=head,
                body=body,
                max_body=_MAX_RESPONSE,
            )
