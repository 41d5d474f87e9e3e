"""The repository port: everything the service layer needs from storage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

from thrive_shared.contracts import AskSize

from thrive_recognition.domain.allowance import AllowanceWindows, Usage
from thrive_recognition.domain.model import (
    Ask,
    Counts,
    Milestone,
    Offer,
    Person,
    Progress,
    ProgressUpdate,
    Thanks,
)
from thrive_recognition.domain.pagination import Page, PageRequest

Direction = Literal["received", "given"]


class Repository(Protocol):
    """Storage for one unit of work (one database transaction)."""

    # people
    async def get_people(self, ids: Sequence[str], *, lock: bool = False) -> dict[str, Person]:
        """People by id; with `lock`, first take their advisory locks (as lock_people)."""
        ...

    async def upsert_person(self, person: Person) -> None: ...
    async def erase_person(self, person_id: str, *, token: str) -> None: ...
    async def lock_people(self, ids: Sequence[str]) -> None: ...

    # asks and offers
    async def add_ask(self, ask: Ask) -> None: ...
    async def get_ask(self, ask_id: str, *, for_update: bool = False) -> Ask | None: ...
    async def save_ask(self, ask: Ask) -> None: ...
    async def get_asks(self, ids: Sequence[str]) -> dict[str, Ask]: ...
    async def list_open_asks(
        self, *, theme: str | None, size: AskSize | None, page: PageRequest
    ) -> Page[Ask]: ...
    async def expire_due_asks(self, *, now: datetime, limit: int) -> list[Ask]: ...
    async def add_offer(self, offer: Offer) -> bool: ...
    async def get_offer(self, offer_id: str) -> Offer | None: ...
    async def find_offer(self, *, origin: str, external_id: str) -> Offer | None: ...

    # thanks
    async def add_thanks(self, thanks: Sequence[Thanks]) -> set[str]:
        """Insert thanks; returns the ids inserted (a known (origin, external_id) is not)."""
        ...

    async def find_thanks(self, *, origin: str, external_id: str) -> Thanks | None: ...
    async def get_thanks(self, ids: Sequence[str]) -> dict[str, Thanks]: ...
    async def allowance_usage(
        self, *, giver: str, helper: str, windows: AllowanceWindows, origin: str | None
    ) -> Usage: ...
    async def pair_counts(self, pairs: Sequence[tuple[str, str, datetime]]) -> list[int]:
        """For each (giver, helper, since): how often giver thanked helper since then."""
        ...

    async def ring_edges(
        self, *, start: str, since: datetime, depth: int
    ) -> dict[str, set[str]]: ...
    async def list_public_thanks(
        self, *, team: str | None, theme: str | None, page: PageRequest
    ) -> Page[Thanks]: ...
    async def list_person_thanks(
        self,
        *,
        person: str,
        direction: Direction,
        viewer: str | None,
        admin: bool,
        page: PageRequest,
    ) -> Page[Thanks]: ...
    async def theme_counts(self) -> list[tuple[str, int]]: ...

    # progress and milestones
    async def apply_progress(self, updates: Sequence[ProgressUpdate]) -> dict[str, Progress]:
        """Apply updates (the caller holds the people's locks); the progress of each person."""
        ...

    async def get_counts(self, ids: Sequence[str]) -> dict[str, Counts]: ...
    async def add_milestones(self, milestones: Sequence[Milestone]) -> list[Milestone]: ...
    async def person_milestones(self, person: str) -> list[Milestone]: ...
    async def list_milestones(
        self, *, team: str | None, theme: str | None, page: PageRequest
    ) -> Page[Milestone]: ...
