"""Authentication: bearer JWT validation, principals, and the local development issuer."""

from thrive_gateway.auth.jwks import JwksCache, SigningKey, http_fetcher
from thrive_gateway.auth.principal import ANONYMOUS, Principal, Role
from thrive_gateway.auth.verifier import InvalidToken, TokenVerifier

__all__ = [
    "ANONYMOUS",
    "InvalidToken",
    "JwksCache",
    "Principal",
    "Role",
    "SigningKey",
    "TokenVerifier",
    "http_fetcher",
]
