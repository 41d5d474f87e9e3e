"""Bearer token validation: OIDC JWTs against the issuer's JWKS."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Iterable
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError

from thrive_gateway.auth.jwks import JwksCache
from thrive_gateway.auth.principal import Principal, Role

# Asymmetric algorithms only: HS* with a public key as secret is the classic confusion attack.
SUPPORTED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})
_KEY_TYPE_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC"}


class InvalidToken(Exception):
    """The bearer token is not acceptable; the message is safe to show the caller."""


class TokenVerifier:
    """Turns a bearer token into a Principal, or raises InvalidToken."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str] = ("RS256", "ES256"),
        leeway: float = 30.0,
    ) -> None:
        algs = frozenset(algorithms)
        unsupported = algs - SUPPORTED_ALGORITHMS
        if unsupported:
            raise ValueError(f"unsupported JWT algorithms: {sorted(unsupported)}")
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._algorithms: Collection[str] = algs
        self._leeway = leeway
        # A widget sends the same token on every request: remember tokens already verified
        # (until they expire) instead of checking the signature again each time.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._max_verified = 10_000

    async def verify(self, token: str) -> Principal:
        """Validate signature, algorithm, issuer, audience, expiry and not-before."""
        hit = self._verified.get(token)
        if hit is not None:
            principal, expires = hit
            if time.time() < expires:
                return principal
            del self._verified[token]
        principal, expires = await self._verify(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > self._max_verified:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError as exc:
            raise InvalidToken("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("token algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token")
        key = await self._jwks.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        if key.kty != _KEY_TYPE_FOR_ALG.get(alg[:2]) or key.alg not in (None, alg):
            raise InvalidToken("token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("token not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("token audience not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("token issuer not accepted") from exc
        except InvalidTokenError as exc:
            raise InvalidToken("invalid token") from exc
        # nbf in the future was refused above (within leeway), so only exp bounds the cache.
        return principal_from_claims(claims), float(claims["exp"]) + self._leeway


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Person id from `sub`, roles from `roles` (or Keycloak-style realm_access.roles)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 100:
        raise InvalidToken("token subject missing")
    raw_roles = claims.get("roles")
    if raw_roles is None and isinstance(claims.get("realm_access"), dict):
        raw_roles = claims["realm_access"].get("roles")
    roles: set[Role] = set()
    if isinstance(raw_roles, list):
        for value in raw_roles:
            if isinstance(value, str) and value in Role._value2member_map_:
                roles.add(Role(value))
    if Role.ADMIN in roles:
        roles.add(Role.EMPLOYEE)
    if not roles:
        raise InvalidToken("token grants no Thrive role")
    name = claims.get("name")
    return Principal(
        person_id=subject,
        roles=frozenset(roles),
        name=name if isinstance(name, str) else None,
    )
