"""HTTP conventions for the internal APIs: structured JSON errors, typed request bodies."""

from __future__ import annotations

import base64
import logging
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class JSONResponse(Response):
    """JSON through orjson (datetimes, UUIDs, pydantic models dumped beforehand)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class ApiError(Exception):
    """An error a caller can act on: becomes {"error": {code, message, field, details}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details or {}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: dict[str, Any] | None = None,
) -> JSONResponse:
    """The one error shape every internal API returns."""
    body = {"error": {"code": code, "message": message, "field": field, "details": details or {}}}
    return JSONResponse(body, status_code=status)


async def read_json(request: Request, model: type[M]) -> M:
    """Parse the request body as `model`, or raise a 400/422 ApiError naming the field."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise validation_error(exc) from exc


def validation_error(exc: ValidationError) -> ApiError:
    """The first pydantic error as a 422 (or 400 for broken JSON)."""
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return ApiError(400, "invalid_json", "The request body is not valid JSON.")
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    return ApiError(
        422, "validation", f"{where or 'body'}: {first.get('msg', 'invalid')}", field=where
    )


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, field=exc.field, details=exc.details)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    err = validation_error(exc)
    return error_response(err.status, err.code, err.message, field=err.field)


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return error_response(500, "internal", "Something went wrong on our side; it has been logged.")


def encode_cursor(*parts: Any) -> str:
    """An opaque pagination cursor from sort-key parts."""
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    """Sort-key parts back from a cursor; ApiError 400 if it was tampered with."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except Exception as exc:
        raise ApiError(
            400, "invalid_cursor", "The pagination cursor is not valid.", field="after"
        ) from exc
    if not isinstance(parts, list):
        raise ApiError(400, "invalid_cursor", "The pagination cursor is not valid.", field="after")
    return parts
