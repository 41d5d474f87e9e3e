"""JWKS cache: keys by kid, refetched when stale or on an unknown kid, bounded by a cooldown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jwt import PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

log = logging.getLogger(__name__)

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public key of the issuer, with what its JWK declares about itself."""

    kid: str | None
    kty: str
    alg: str | None
    key: Any


def http_fetcher(url: str, *, timeout: float = 3.0) -> JwksFetcher:
    """Fetch a JWKS document over HTTP."""

    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    return fetch


class JwksCache:
    """Signing keys of one issuer.

    An attacker can send tokens with made-up kids; each would otherwise cost a fetch to
    the issuer. Refetches for unknown kids happen at most once per cooldown, and
    concurrent misses share one fetch.
    """

    def __init__(
        self,
        fetcher: JwksFetcher,
        *,
        max_age: float = 300.0,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetcher = fetcher
        self._max_age = max_age
        self._cooldown = cooldown
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get(self, kid: str | None) -> SigningKey | None:
        """The key for `kid` (or the only key when kid is absent), or None."""
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self._max_age
        if not stale and self._lookup(kid) is not None:
            return self._lookup(kid)
        async with self._lock:
            now = self._clock()
            # Another waiter may have refreshed while we queued on the lock.
            fresh_enough = self._fetched_at is not None and (
                now - self._fetched_at < self._cooldown
            )
            stale = self._fetched_at is None or now - self._fetched_at > self._max_age
            if (stale or self._lookup(kid) is None) and not fresh_enough:
                await self._refresh()
        return self._lookup(kid)

    def _lookup(self, kid: str | None) -> SigningKey | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        self.fetch_count += 1
        # Stamp before fetching so a failing issuer is also bounded by the cooldown.
        self._fetched_at = self._clock()
        try:
            document = await self._fetcher()
            jwks = PyJWKSet.from_dict(document)
        except (httpx.HTTPError, ValueError, PyJWKError, PyJWKSetError) as exc:
            log.warning("JWKS fetch failed, keeping %d cached keys: %s", len(self._keys), exc)
            return
        keys: dict[str, SigningKey] = {}
        for jwk in jwks.keys:
            if jwk.public_key_use not in (None, "sig"):
                continue
            raw: dict[str, Any] = next(
                (k for k in document.get("keys", []) if k.get("kid") == jwk.key_id), {}
            )
            keys[jwk.key_id or ""] = SigningKey(
                kid=jwk.key_id, kty=jwk.key_type or "", alg=raw.get("alg"), key=jwk.key
            )
        self._keys = keys
