"""Webhook channel: Slack/Teams-compatible JSON, HMAC-signed, idempotent, SSRF-guarded."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import httpx
import orjson
from opentelemetry import trace
from thrive_shared.observability import inject_headers

from thrive_notifier.adapters.egress import DestinationRefused, EgressPolicy, PinnedTransport
from thrive_notifier.adapters.tracing import send_context
from thrive_notifier.domain.messages import chat_payload
from thrive_notifier.domain.retry import Outcome, SendResult, classify_status
from thrive_notifier.service_layer.ports import ClaimedDelivery

SIGNATURE_HEADER = "X-Thrive-Signature"
TIMESTAMP_HEADER = "X-Thrive-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_HEADER = "X-Thrive-Delivery"
_MAX_RESPONSE = 64 * 1024
_REDIRECTS = (307, 308)  # the only ones that keep a POST a POST with its body
_tracer = trace.get_tracer("thrive_notifier.webhook")


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`v1=` + hex HMAC-SHA256 over `<timestamp>.<body>`, as receivers verify it."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time check of a signature made by `sign` (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class WebhookSender:
    """Posts deliveries to their webhook URL; failures become results, never exceptions."""

    def __init__(
        self,
        *,
        secret: bytes,
        policy: EgressPolicy,
        timeout: float = 10.0,
        max_redirects: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        max_connections: int = 64,
    ) -> None:
        self.secret = secret
        self.policy = policy
        self.max_redirects = max_redirects
        self.clock = clock
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self.client = httpx.AsyncClient(
            transport=transport or PinnedTransport(policy, limits=limits),
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": "thrive-notifier/1"},
            limits=limits,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

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
                    span.set_attribute("http.response.status_code", resp.status_code)
                    if resp.status_code in _REDIRECTS and "location" in resp.headers:
                        url = str(httpx.URL(url).join(resp.headers["location"]))
                        continue
                    outcome = classify_status(resp.status_code)
                    error = None if outcome is Outcome.DELIVERED else f"HTTP {resp.status_code}"
                    return SendResult(
                        outcome,
                        status=resp.status_code,
                        error=error,
                        retry_after=_retry_after(resp),
                    )
                return SendResult(Outcome.PERMANENT, error="too many redirects")
            except DestinationRefused as exc:
                return SendResult(Outcome.PERMANENT, error=f"refused destination: {exc}")
            except httpx.HTTPError as exc:
                return SendResult(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:300])

    async def _post(self, url: str, body: bytes, d: ClaimedDelivery) -> httpx.Response:
        ts = str(int(self.clock()))
        headers = inject_headers(
            {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: ts,
                SIGNATURE_HEADER: sign(self.secret, ts, body),
                IDEMPOTENCY_HEADER: d.idempotency_key,
                DELIVERY_HEADER: str(d.id),
            }
        )
        async with self.client.stream("POST", url, content=body, headers=headers) as resp:
            # Drain a small body so the connection can be reused; stop early on a huge one
            # (the connection is then closed): it is not ours to keep.
            size = 0
            if not resp.is_stream_consumed:
                async for chunk in resp.aiter_raw():
                    size += len(chunk)
                    if size > _MAX_RESPONSE:
                        break
            return resp
