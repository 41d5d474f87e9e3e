"""Email rendering: plain text and HTML, escaped, with the idempotency key as Message-ID."""

from thrive_notifier.adapters.email import IDEMPOTENCY_HEADER, build_email
from thrive_notifier.domain.messages import Message
from thrive_notifier.domain.model import Channel, DeliveryKey, Kind, Recipient, RecipientKind
from thrive_notifier.service_layer.ports import ClaimedDelivery


def test_email_has_text_and_html_parts_and_no_header_injection():
    d = ClaimedDelivery(
        id=1,
        key=DeliveryKey("e1", Recipient(RecipientKind.PERSON, "ana"), Channel.EMAIL),
        idempotency_key="abc123",
        message=Message(
            kind=Kind.THANKS,
            title="Bo thanked you\r\nBcc: all@example.test",
            body="<script>x</script> thanks!",
            themes=("python",),
        ),
        attempts=1,
        destination="ana@example.test",
    )
    msg = build_email(d, sender="Thrive <thrive@example.test>")
    assert msg["Subject"] == "Bo thanked you Bcc: all@example.test"
    assert msg["Bcc"] is None
    assert msg["Message-ID"] == "<abc123@thrive-notifier>" and msg[IDEMPOTENCY_HEADER] == "abc123"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "<script>x</script> thanks!" in text and "#python" in text
    assert "&lt;script&gt;" in html and "<script>" not in html
