"""Field-level permissions: who may see or do what."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from thrive_gateway.auth.principal import Principal
from thrive_gateway.schema.context import Info


class IsAuthenticated(BasePermission):
    message = "Sign in to use Thrive."
    error_extensions = {"code": "UNAUTHENTICATED"}  # noqa: RUF012 - strawberry declares it so

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.authenticated


class IsAdmin(BasePermission):
    message = "Only administrators can see this."
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012 - strawberry declares it so

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.is_admin


class IsThisPerson(BasePermission):
    """Private attention filters and settings: visible to the person only, not even admins."""

    message = "Only the person themselves can see this."
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012 - strawberry declares it so

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.is_person(getattr(source, "id", None))


class CanReadThanks(BasePermission):
    """A private thanks is readable by its giver, its helper and admins."""

    message = "This thanks is private."
    error_extensions = {"code": "FORBIDDEN"}  # noqa: RUF012 - strawberry declares it so

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return may_read_thanks(
            info.context.principal,
            visibility=str(getattr(source, "visibility_value", "private")),
            giver=getattr(source, "giver_id", None),
            helper=getattr(source, "helper_id", None),
        )


def may_read_thanks(
    principal: Principal, *, visibility: str, giver: str | None, helper: str | None
) -> bool:
    """Public thanks: any employee. Private: giver, helper, admins."""
    if not principal.authenticated:
        return False
    if visibility == "public":
        return True
    return principal.is_admin or principal.person_id in (giver, helper)
