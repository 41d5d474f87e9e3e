"""Who is asking: the authenticated person and their roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    EMPLOYEE = "employee"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, or the anonymous one (person_id None)."""

    person_id: str | None
    roles: frozenset[Role] = field(default_factory=frozenset)
    name: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.person_id is not None and bool(self.roles)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def is_person(self, person_id: str | None) -> bool:
        """True when the caller is this person."""
        return self.authenticated and person_id is not None and person_id == self.person_id

    def role_header(self) -> str:
        """Roles as the X-Thrive-Roles header value, sorted for stable caching."""
        return ",".join(sorted(r.value for r in self.roles))


ANONYMOUS = Principal(person_id=None)
