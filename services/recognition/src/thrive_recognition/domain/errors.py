"""Structured business errors: a code a client can switch on, a sentence a human can read."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule said no; nothing was written."""

    code = "domain_error"
    status = 422

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The `error` object of the internal API."""
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "details": self.details,
        }


class ValidationFailed(DomainError):
    code = "validation"
    status = 422


class NotFound(DomainError):
    code = "not_found"
    status = 404


class UnknownPerson(DomainError):
    code = "unknown_person"
    status = 422


class InactivePerson(DomainError):
    code = "inactive_person"
    status = 422


class SelfThanks(DomainError):
    code = "self_thanks"
    status = 422


class SelfOffer(DomainError):
    code = "self_offer"
    status = 422


class AllowanceExceeded(DomainError):
    code = "allowance_exceeded"
    status = 429


class PairCapExceeded(DomainError):
    code = "pair_cap_exceeded"
    status = 429


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class InvalidState(DomainError):
    code = "invalid_state"
    status = 409


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    status = 400
