"""What a notification says: composed once per recipient, rendered per channel."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from thrive_notifier.domain.model import Celebration, Kind, Recipient, RecipientKind

REDACTED_TITLE = "A colleague was celebrated"  # what others keep once a person is erased


@dataclass(frozen=True, slots=True)
class Message:
    """A notification's content, independent of channel; stored in the ledger until sent."""

    kind: Kind
    title: str
    body: str = ""
    themes: tuple[str, ...] = ()
    about: str = ""  # the event id it is about
    subject: str | None = None
    url: str | None = None
    sections: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())  # digests only

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready form for the ledger and the inbox."""
        return {
            "kind": self.kind.value,
            "title": self.title,
            "body": self.body,
            "themes": list(self.themes),
            "about": self.about,
            "subject": self.subject,
            "url": self.url,
            "sections": [[head, list(lines)] for head, lines in self.sections],
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Message:
        """Inverse of to_payload."""
        return cls(
            kind=Kind(data["kind"]),
            title=str(data.get("title", "")),
            body=str(data.get("body", "")),
            themes=tuple(data.get("themes") or ()),
            about=str(data.get("about", "")),
            subject=data.get("subject"),
            url=data.get("url"),
            sections=tuple((str(h), tuple(lines)) for h, lines in data.get("sections") or ()),
        )


def _name(person: str | None, names: Mapping[str, str]) -> str:
    if not person:
        return "A colleague"
    return names.get(person) or person


def compose(c: Celebration, to: Recipient, names: Mapping[str, str]) -> Message:
    """The message one recipient gets about a celebration, worded from their point of view."""
    subject = _name(c.subject, names)
    mine = to.kind is RecipientKind.PERSON and to.id == c.subject
    if c.kind is Kind.THANKS:
        title = f"{_name(c.actor, names)} thanked you"
    elif c.kind is Kind.MILESTONE:
        title = f"You reached a milestone: {c.title}" if mine else f"{subject} reached: {c.title}"
    elif c.kind is Kind.ASK:
        title = f"{subject} could use a hand: {c.title}"
    elif c.kind is Kind.REMINDER:
        title = f"Say thanks to {_name(c.actor, names)}?"
    else:
        title = c.title
    body = c.message
    if c.kind is Kind.REMINDER and not body:
        body = f"Your ask “{c.title}” was resolved with {_name(c.actor, names)}'s help."
    return Message(
        kind=c.kind,
        title=title,
        body=body,
        themes=c.themes,
        about=c.event_id,
        subject=c.subject,
        url=c.url,
    )


def _theme_tags(themes: tuple[str, ...]) -> str:
    return " ".join(f"#{t}" for t in themes)


def plain_text(msg: Message) -> str:
    """Plain-text rendering for email and chat fallbacks."""
    lines = [msg.title]
    if msg.body:
        lines += ["", msg.body]
    for head, items in msg.sections:
        lines += ["", head] + [f"  • {item}" for item in items]
    if msg.themes:
        lines += ["", _theme_tags(msg.themes)]
    if msg.url:
        lines += ["", msg.url]
    return "\n".join(lines) + "\n"


def html_text(msg: Message) -> str:
    """HTML rendering for email; every value is escaped."""
    e = html.escape
    parts = [f"<h2>{e(msg.title)}</h2>"]
    if msg.body:
        parts.append(f"<p>{e(msg.body)}</p>")
    for head, items in msg.sections:
        parts.append(f"<h3>{e(head)}</h3><ul>")
        parts += [f"<li>{e(item)}</li>" for item in items]
        parts.append("</ul>")
    if msg.themes:
        parts.append(f"<p>{e(_theme_tags(msg.themes))}</p>")
    if msg.url:
        parts.append(f'<p><a href="{e(msg.url, quote=True)}">Open in Thrive</a></p>')
    return "<html><body>" + "".join(parts) + "</body></html>"


def _mrkdwn_escape(text: str) -> str:
    # Slack's three control characters; Teams ignores the entities harmlessly.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_payload(msg: Message, *, idempotency_key: str) -> dict[str, Any]:
    """Slack/Teams-compatible webhook JSON: `text` for both, `blocks` for Slack."""
    text = _mrkdwn_escape(plain_text(msg).strip())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": msg.title[:150]}},
    ]
    detail = _mrkdwn_escape(
        plain_text(
            Message(
                kind=msg.kind, title="", body=msg.body, themes=msg.themes, sections=msg.sections
            )
        ).strip()
    )
    if detail:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": detail[:3000]}})
    return {
        "text": text,
        "blocks": blocks,
        "thrive": {
            "kind": msg.kind.value,
            "about": msg.about,
            "themes": list(msg.themes),
            "idempotency_key": idempotency_key,
        },
    }
