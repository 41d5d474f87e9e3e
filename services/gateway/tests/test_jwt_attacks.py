"""Bearer tokens an attacker might forge or replay are refused, and cost bounded JWKS fetches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from thrive_gateway.auth import InvalidToken, JwksCache, TokenVerifier

ISS = "https://idp.example.test/realms/thrive"
AUD = "thrive-gateway"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """A fake IdP with one RSA and one EC key, counting JWKS fetches."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.fetches = 0

    def jwks(self) -> dict[str, Any]:
        r = RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        r.update(kid="rsa-1", use="sig", alg="RS256")
        e = ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        e.update(kid="ec-1", use="sig", alg="ES256")
        return {"keys": [r, e]}

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        return self.jwks()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": ISS,
            "aud": AUD,
            "sub": "grace",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "roles": ["employee"],
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def rs256(self, kid: str = "rsa-1", **claims: Any) -> str:
        return jwt.encode(self.claims(**claims), self.rsa, algorithm="RS256", headers={"kid": kid})

    def es256(self, **claims: Any) -> str:
        return jwt.encode(
            self.claims(**claims), self.ec, algorithm="ES256", headers={"kid": "ec-1"}
        )


@pytest.fixture
def idp() -> Issuer:
    return Issuer()


@pytest.fixture
def verifier(idp: Issuer) -> TokenVerifier:
    return TokenVerifier(JwksCache(idp.fetch, cooldown=30.0), issuer=ISS, audience=AUD, leeway=5)


async def test_valid_rs256_and_es256_tokens_are_accepted(
    idp: Issuer, verifier: TokenVerifier
) -> None:
    for token in (idp.rs256(), idp.es256()):
        principal = await verifier.verify(token)
        assert principal.person_id == "grace"
        assert not principal.is_admin


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


async def test_alg_none_is_refused(idp: Issuer, verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        token = unsigned(idp.claims(), {"alg": alg, "typ": "JWT", "kid": "rsa-1"})
        with pytest.raises(InvalidToken, match="algorithm not allowed"):
            await verifier.verify(token)


async def test_hs256_signed_with_the_public_key_is_refused(
    idp: Issuer, verifier: TokenVerifier
) -> None:
    pem = idp.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(idp.claims(roles=["employee", "admin"])).encode())
    signature = b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        await verifier.verify(f"{header}.{payload}.{signature}")


async def test_rs256_header_on_the_ec_key_is_refused(idp: Issuer, verifier: TokenVerifier) -> None:
    token = jwt.encode(idp.claims(), idp.rsa, algorithm="RS256", headers={"kid": "ec-1"})
    with pytest.raises(InvalidToken, match="does not match its key"):
        await verifier.verify(token)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "some-other-app"}, "audience"),
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"exp": None}, "invalid token"),
        ({"roles": ["superuser"]}, "no Thrive role"),
    ],
)
async def test_bad_claims_are_refused(
    idp: Issuer, verifier: TokenVerifier, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        await verifier.verify(idp.rs256(**claims))


async def test_tampered_payload_is_refused(idp: Issuer, verifier: TokenVerifier) -> None:
    header, _, signature = idp.rs256().split(".")
    forged = b64(json.dumps(idp.claims(sub="ada", roles=["admin"])).encode())
    with pytest.raises(InvalidToken):
        await verifier.verify(f"{header}.{forged}.{signature}")


async def test_unknown_kid_flood_costs_bounded_jwks_fetches(
    idp: Issuer, verifier: TokenVerifier
) -> None:
    await verifier.verify(idp.rs256())
    assert idp.fetches == 1
    tokens = [idp.rs256(kid=f"made-up-{i}") for i in range(500)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens), return_exceptions=True)
    assert all(isinstance(r, InvalidToken) for r in results)
    # Within the cooldown the issuer is not asked again, however many kids are invented.
    assert idp.fetches == 1


async def test_key_rotation_is_picked_up_after_the_cooldown(idp: Issuer) -> None:
    now = [1000.0]
    cache = JwksCache(idp.fetch, cooldown=30.0, clock=lambda: now[0])
    verifier = TokenVerifier(cache, issuer=ISS, audience=AUD)
    await verifier.verify(idp.rs256())
    idp.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rotated = idp.rs256(kid="rsa-2")
    orig_jwks = idp.jwks

    def rotated_jwks() -> dict[str, Any]:
        doc = orig_jwks()
        doc["keys"][0]["kid"] = "rsa-2"
        return doc

    idp.jwks = rotated_jwks  # type: ignore[method-assign]
    with pytest.raises(InvalidToken):
        await verifier.verify(rotated)  # inside the cooldown: not refetched
    now[0] += 31
    assert (await verifier.verify(rotated)).person_id == "grace"
    assert idp.fetches == 2


async def test_gateway_answers_401_to_a_forged_token(client: Any, idp: Issuer) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ me { id } }"},
        headers={"Authorization": f"Bearer {idp.rs256()}"},  # not the gateway's issuer
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
