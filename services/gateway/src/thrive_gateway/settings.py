"""Gateway settings: one pydantic-settings class, env prefix THRIVE_GATEWAY_."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from thrive_shared.settings import CommonSettings


class GatewaySettings(CommonSettings):  # type: ignore[misc, unused-ignore]
    """Everything the gateway reads from its environment (plus Kafka, logging, tracing)."""

    model_config = SettingsConfigDict(env_prefix="THRIVE_GATEWAY_", env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    production: bool = Field(
        default=False,
        description="Turns off introspection, field suggestions, GraphiQL and the dev issuer.",
    )

    # OIDC
    oidc_issuer: str = "http://127.0.0.1:8000/dev-oidc"
    oidc_audience: str = "thrive-gateway"
    oidc_jwks_url: str | None = Field(
        default=None, description="Defaults to <issuer>/jwks.json when unset."
    )
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_max_age_seconds: float = Field(default=300.0, gt=0)
    jwks_refetch_cooldown_seconds: float = Field(
        default=30.0, ge=0, description="Least time between two JWKS fetches for unknown kids."
    )
    dev_issuer: bool = Field(
        default=False, description="Serve /dev-oidc minting tokens for demo users (never prod)."
    )

    # Internal APIs of the other services
    recognition_url: str = "http://127.0.0.1:8101"
    leaderboard_url: str = "http://127.0.0.1:8102"
    notifier_url: str = "http://127.0.0.1:8103"
    service_timeout_seconds: float = Field(default=3.0, gt=0)

    # Protection
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_depth: int = Field(default=10, ge=2)
    max_tokens: int = Field(default=2_000, ge=100)
    max_aliases: int = Field(default=30, ge=0)
    max_cost: int = Field(default=5_000, ge=10)
    max_page_size: int = Field(default=100, ge=1)
    mutation_rate_per_minute: float = Field(default=30.0, gt=0)
    mutation_burst: int = Field(default=10, ge=1)
    persisted_queries_only: bool = Field(
        default=False, description="Accept only documents in the persisted allow-list."
    )
    persisted_queries_file: Path | None = Field(
        default=None,
        description="JSON object sha256 -> document; defaults to the widgets' operations.",
    )

    # Live topics and caches
    live_consumers: bool = Field(
        default=True, description="Consume the live topics (needs Kafka); off for unit tests."
    )
    feed_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    board_cache_ttl_seconds: float = Field(default=30.0, ge=0)
    response_cache_ttl_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Cached responses of shared queries; events drop them sooner (0: off).",
    )
    response_cache_max_entries: int = Field(default=2_000, ge=1)

    @property
    def jwks_url(self) -> str:
        """Where the issuer's signing keys are published."""
        return self.oidc_jwks_url or self.oidc_issuer.rstrip("/") + "/jwks.json"
