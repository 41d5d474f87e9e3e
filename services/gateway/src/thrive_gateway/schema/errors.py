"""Typed error results: mutations answer these as union members when the user can act."""

from __future__ import annotations

from datetime import datetime

import strawberry

from thrive_gateway.clients.errors import ServiceError


@strawberry.interface
class UserError:
    """Something the user can fix or wait out; `message` is a human sentence."""

    message: str


@strawberry.type
class ValidationFailed(UserError):
    field: str | None


@strawberry.type
class NotFound(UserError):
    field: str | None


@strawberry.type
class NotAllowed(UserError):
    pass


@strawberry.type
class RateLimited(UserError):
    retry_after_seconds: float


@strawberry.type
class AllowanceExceeded(UserError):
    """The giver used their thanks for this period; thanks stay meaningful that way."""

    limit: int | None
    period: str | None
    resets_at: datetime | None


@strawberry.type
class PairCapExceeded(UserError):
    """This giver thanked this helper often lately; the cap keeps recognition broad."""

    resets_at: datetime | None


AnyUserError = ValidationFailed | NotFound | NotAllowed | AllowanceExceeded | PairCapExceeded


def user_error(exc: ServiceError) -> AnyUserError:
    """Map a service's 4xx to the typed result the user can act on."""
    details = exc.details
    if exc.code == "allowance_exceeded":
        return AllowanceExceeded(
            message=exc.message,
            limit=_int(details.get("limit")),
            period=_str(details.get("period")),
            resets_at=_when(details.get("resets_at")),
        )
    if exc.code == "pair_cap_exceeded":
        return PairCapExceeded(message=exc.message, resets_at=_when(details.get("resets_at")))
    if exc.code in ("not_found", "unknown_person") or exc.status == 404:
        return NotFound(message=exc.message, field=exc.field)
    if exc.status in (401, 403) or exc.code in ("forbidden", "not_allowed"):
        return NotAllowed(message=exc.message)
    return ValidationFailed(message=exc.message, field=exc.field)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _when(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
