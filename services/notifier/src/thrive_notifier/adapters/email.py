"""Email channel: plain text + HTML through SMTP (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
from opentelemetry import trace
from thrive_shared.observability import inject_headers

from thrive_notifier.adapters.tracing import send_context
from thrive_notifier.domain.messages import html_text, plain_text
from thrive_notifier.domain.retry import Outcome, SendResult
from thrive_notifier.service_layer.ports import ClaimedDelivery

IDEMPOTENCY_HEADER = "X-Thrive-Idempotency-Key"
_tracer = trace.get_tracer("thrive_notifier.email")


def build_email(d: ClaimedDelivery, *, sender: str) -> EmailMessage:
    """A multipart/alternative message; Message-ID comes from the idempotency key."""
    if not d.destination:
        raise ValueError("no email address")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = d.destination
    # Newlines in a header would be header injection; titles are single-line anyway.
    msg["Subject"] = " ".join(d.message.title.split())[:200]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{d.idempotency_key}@thrive-notifier>"
    msg[IDEMPOTENCY_HEADER] = d.idempotency_key
    # The active trace (the send's span), so a mail's journey can be tied to its cause.
    for name, value in inject_headers().items():
        if name in ("traceparent", "tracestate"):
            msg[name] = value
    msg.set_content(plain_text(d.message))
    msg.add_alternative(html_text(d.message), subtype="html")
    return msg


class EmailSender:
    """Sends one message per delivery; 4xx and connection errors retry, 5xx park."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        start_tls: bool | None = None,
        use_tls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.start_tls, self.use_tls, self.timeout = start_tls, use_tls, timeout

    async def send(self, d: ClaimedDelivery) -> SendResult:
        """Send through SMTP and classify the server's answer."""
        if not d.destination:
            return SendResult(Outcome.PERMANENT, error="no email address")
        with _tracer.start_as_current_span(
            "email send",
            context=send_context(d),
            kind=trace.SpanKind.CLIENT,
            attributes={"thrive.delivery_id": d.id, "thrive.attempt": d.attempts},
        ) as span:
            result = await self._send(d)
            if result.status is not None:
                span.set_attribute("smtp.response.code", result.status)
            return result

    async def _send(self, d: ClaimedDelivery) -> SendResult:
        try:
            await aiosmtplib.send(
                build_email(d, sender=self.sender),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.start_tls,
                use_tls=self.use_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return SendResult(Outcome.PERMANENT, error=f"recipient refused: {exc}"[:300])
        except aiosmtplib.SMTPResponseException as exc:
            outcome = Outcome.PERMANENT if 500 <= exc.code < 600 else Outcome.RETRY
            return SendResult(
                outcome, status=exc.code, error=f"SMTP {exc.code}: {exc.message}"[:300]
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return SendResult(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"[:300])
        return SendResult(Outcome.DELIVERED, status=250)
