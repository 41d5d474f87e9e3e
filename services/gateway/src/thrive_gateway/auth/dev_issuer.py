"""A local OIDC issuer for development and demos: mints ES256 tokens for demo users.

Served at /dev-oidc only when THRIVE_GATEWAY_DEV_ISSUER=true and never in production mode.
Its key lives in memory, so tokens die with the process.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from thrive_shared.demo import PEOPLE as DEMO_PEOPLE

from thrive_gateway.auth.principal import Role

_PERSON_ID = re.compile(r"^[A-Za-z0-9._@:-]{1,100}$")


@dataclass(frozen=True, slots=True)
class DemoUser:
    id: str
    name: str
    team: str
    roles: tuple[Role, ...] = (Role.EMPLOYEE,)


ADMINS = frozenset({"ada"})
# The same people `make run` seeds into the directory, so demo tokens name real people.
DEMO_USERS: tuple[DemoUser, ...] = tuple(
    DemoUser(pid, name, team, (Role.EMPLOYEE, Role.ADMIN) if pid in ADMINS else (Role.EMPLOYEE,))
    for pid, name, team, _tz in DEMO_PEOPLE
)


class DevIssuer:
    """Holds an in-memory EC key and mints tokens the gateway's verifier accepts."""

    def __init__(self, *, issuer: str, audience: str, ttl_seconds: int = 3600) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        self.kid = "dev-" + secrets.token_hex(4)
        self._private_key = ec.generate_private_key(ec.SECP256R1())
        self._users = {u.id: u for u in DEMO_USERS}

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document."""
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self._private_key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return {"keys": [jwk]}

    def mint(
        self,
        person: str,
        *,
        roles: tuple[Role, ...] | None = None,
        ttl_seconds: int | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        """A signed access token for `person` (demo users keep their roles)."""
        now = int(time.time())
        user = self._users.get(person)
        granted = roles or (user.roles if user else (Role.EMPLOYEE,))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": person,
            "iat": now,
            "nbf": now,
            "exp": now + (ttl_seconds or self.ttl_seconds),
            "jti": str(uuid.uuid4()),
            "roles": [r.value for r in granted],
        }
        if user is not None:
            claims["name"] = user.name
            claims["team"] = user.team
        claims.update(extra_claims or {})
        return jwt.encode(claims, self._private_key, algorithm="ES256", headers={"kid": self.kid})

    def routes(self, prefix: str = "/dev-oidc") -> list[Route]:
        """Starlette routes: discovery document, JWKS, demo users and the token endpoint."""

        async def discovery(_: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "jwks_uri": f"{self.issuer}/jwks.json",
                    "token_endpoint": f"{self.issuer}/token",
                    "response_types_supported": ["token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                    "grant_types_supported": ["password"],
                }
            )

        async def jwks(_: Request) -> Response:
            return JSONResponse(self.jwks(), headers={"Cache-Control": "max-age=300"})

        async def users(_: Request) -> Response:
            return JSONResponse(
                {
                    "items": [
                        {"id": u.id, "name": u.name, "team": u.team, "roles": list(u.roles)}
                        for u in DEMO_USERS
                    ]
                }
            )

        async def token(request: Request) -> Response:
            try:
                if request.headers.get("content-type", "").startswith("application/json"):
                    body = await request.json()
                else:
                    body = dict(await request.form())
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return _oauth_error("invalid_request", "send a JSON object or a form")
            person = body.get("username") or body.get("person")
            if not isinstance(person, str) or not _PERSON_ID.match(person):
                return _oauth_error("invalid_request", "username must be a person id")
            access = self.mint(person)
            return JSONResponse(
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": self.ttl_seconds,
                },
                headers={"Cache-Control": "no-store"},
            )

        return [
            Route(f"{prefix}/.well-known/openid-configuration", discovery, methods=["GET"]),
            Route(f"{prefix}/jwks.json", jwks, methods=["GET"]),
            Route(f"{prefix}/users", users, methods=["GET"]),
            Route(f"{prefix}/token", token, methods=["POST"]),
        ]


def _oauth_error(code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=400)
