"""Read side: JSON-ready views for the internal API, with visibility applied."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from thrive_shared.contracts import AskSize

from thrive_recognition.adapters.repository import Direction, Repository
from thrive_recognition.domain.errors import NotFound
from thrive_recognition.domain.model import Ask, Counts, Milestone, Offer, Person, Thanks, shown
from thrive_recognition.domain.pagination import Page, PageRequest
from thrive_recognition.domain.periods import week_start, zone

JSON = dict[str, Any]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ask_json(ask: Ask) -> JSON:
    """An ask as the API shows it."""
    return {
        "id": ask.id,
        "asker": shown(ask.asker),
        "asker_team": ask.asker_team,
        "title": ask.title,
        "details": ask.details,
        "themes": list(ask.themes),
        "size": str(ask.size),
        "status": str(ask.status),
        "created_at": _iso(ask.created_at),
        "expires_at": _iso(ask.expires_at),
        "accepted_offer_id": ask.accepted_offer_id,
        "accepted_helper": shown(ask.accepted_helper),
        "closed_at": _iso(ask.closed_at),
    }


def offer_json(offer: Offer) -> JSON:
    """An offer as the API shows it."""
    return {
        "id": offer.id,
        "helper": shown(offer.helper),
        "ask_id": offer.ask_id,
        "themes": list(offer.themes),
        "message": offer.message,
        "origin": offer.origin,
        "created_at": _iso(offer.created_at),
    }


def thanks_json(thanks: Thanks) -> JSON:
    """A thanks as the API shows it (erased people are null)."""
    return {
        "id": thanks.id,
        "giver": shown(thanks.giver),
        "helper": shown(thanks.helper),
        "giver_team": thanks.giver_team,
        "helper_team": thanks.helper_team,
        "message": thanks.message,
        "themes": list(thanks.themes),
        "ask_id": thanks.ask_id,
        "offer_id": thanks.offer_id,
        "visibility": str(thanks.visibility),
        "discounted": thanks.discounted,
        "origin": thanks.origin,
        "given_at": _iso(thanks.given_at),
    }


def milestone_json(m: Milestone) -> JSON:
    """A milestone as the API shows it."""
    return {
        "id": m.id,
        "person": shown(m.person),
        "team": m.team,
        "rule_id": m.rule_id,
        "level": m.level,
        "size": str(m.size),
        "title": m.title,
        "themes": list(m.themes),
        "reached_at": _iso(m.reached_at),
    }


def page_json(page: Page[Any], render: Any) -> JSON:
    """`{"items": [...], "next_cursor": ...}`."""
    return {
        "items": [render(item) for item in page.items],
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
    }


def profile_json(
    person: Person, counts: Counts, milestones: Sequence[Milestone], *, now: datetime
) -> JSON:
    """A person's profile: who they are, what they did, what they reached."""
    tally = counts.as_dict()
    tally["streak_weeks"] = counts.current_streak(week_start(now, zone(person.timezone)))
    return {
        "id": person.id,
        "name": person.name,
        "team": person.team,
        "timezone": person.timezone,
        "locale": person.locale,
        "active": person.active,
        "counts": tally,
        "milestones": [milestone_json(m) for m in milestones],
    }


async def profile(repo: Repository, person_id: str, *, now: datetime) -> JSON:
    """One person's profile, or NotFound."""
    people = await repo.get_people([person_id])
    person = people.get(person_id)
    if person is None:
        raise NotFound(f"There is no person {person_id!r}.", field="id")
    counts = (await repo.get_counts([person_id])).get(person_id, Counts())
    return profile_json(person, counts, await repo.person_milestones(person_id), now=now)


async def people_batch(repo: Repository, ids: Sequence[str], *, now: datetime) -> list[JSON | None]:
    """Profiles for a DataLoader: same order as `ids`, null where unknown (no milestones)."""
    people = await repo.get_people(ids)
    counts = await repo.get_counts(list(people))
    out: list[JSON | None] = []
    for pid in ids:
        person = people.get(pid)
        out.append(
            None if person is None else profile_json(person, counts.get(pid, Counts()), (), now=now)
        )
    return out


async def asks_batch(repo: Repository, ids: Sequence[str]) -> list[JSON | None]:
    """Asks for a DataLoader: same order as `ids`, null where unknown."""
    asks = await repo.get_asks(ids)
    return [ask_json(asks[i]) if i in asks else None for i in ids]


async def thanks_batch(
    repo: Repository, ids: Sequence[str], *, viewer: str | None, admin: bool
) -> list[JSON | None]:
    """Thanks for a DataLoader: null where unknown or private to others."""
    found = await repo.get_thanks(ids)
    out: list[JSON | None] = []
    for i in ids:
        t = found.get(i)
        out.append(thanks_json(t) if t is not None and t.visible_to(viewer, admin=admin) else None)
    return out


async def recent_thanks(
    repo: Repository, *, team: str | None, theme: str | None, page: PageRequest
) -> JSON:
    """Recent public thanks, newest first."""
    return page_json(await repo.list_public_thanks(team=team, theme=theme, page=page), thanks_json)


async def person_thanks(
    repo: Repository,
    *,
    person: str,
    direction: Direction,
    viewer: str | None,
    admin: bool,
    page: PageRequest,
) -> JSON:
    """A person's thanks received or given; private ones only for those in them."""
    return page_json(
        await repo.list_person_thanks(
            person=person, direction=direction, viewer=viewer, admin=admin, page=page
        ),
        thanks_json,
    )


async def open_asks(
    repo: Repository, *, theme: str | None, size: AskSize | None, page: PageRequest
) -> JSON:
    """Open asks, newest first."""
    return page_json(await repo.list_open_asks(theme=theme, size=size, page=page), ask_json)


async def recent_milestones(
    repo: Repository, *, team: str | None, theme: str | None, page: PageRequest
) -> JSON:
    """Recent milestones, newest first."""
    return page_json(await repo.list_milestones(team=team, theme=theme, page=page), milestone_json)


async def themes(repo: Repository) -> JSON:
    """Themes by how many public thanks carry them."""
    return {"items": [{"theme": t, "count": n} for t, n in await repo.theme_counts()]}
