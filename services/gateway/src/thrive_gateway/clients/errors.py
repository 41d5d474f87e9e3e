"""Errors a service's internal API can answer with."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A 4xx from a service: `{"error": {code, message, field, details}}`."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details or {}


class ServiceUnavailable(Exception):
    """A service could not be reached or failed (5xx, timeout): the user can retry later."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} is unavailable")
        self.service = service
