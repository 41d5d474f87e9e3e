"""The notifier's settings: env prefix THRIVE_NOTIFIER_, plus the common KAFKA_/DATABASE_URL."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from thrive_shared.settings import CommonSettings

from thrive_notifier.adapters.egress import EgressPolicy
from thrive_notifier.domain.model import Preferences
from thrive_notifier.domain.retry import RetryPolicy


class NotifierSettings(CommonSettings):
    """Everything the notifier can be told from its environment."""

    model_config = SettingsConfigDict(env_prefix="THRIVE_NOTIFIER_", env_file=None, extra="ignore")

    port: int = 8103
    schema_name: str = Field(default="notifier", description="Postgres schema the notifier owns.")
    consumer_group: str = "thrive-notifier"
    consumer_instances: int = Field(
        default=3,
        ge=1,
        le=32,
        description="Consumers in this process (same group): at most one per partition works.",
    )

    # webhooks
    webhook_secret: SecretStr = Field(
        default=SecretStr("dev-only-change-me"),
        description="HMAC-SHA256 key receivers use to verify X-Thrive-Signature.",
    )
    webhook_timeout_seconds: float = 10.0
    webhook_max_redirects: int = 3
    webhook_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs webhooks may reach although internal (comma-separated). Empty in prod.",
    )
    webhook_require_https: bool = True

    # email
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool | None = None
    smtp_use_tls: bool = False
    smtp_sender: str = "Thrive <thrive@localhost>"
    email_enabled: bool = True

    # The consumer fans out in its own transaction, except large milestones (~1,500
    # recipients each) with `large_fanout_lanes` > 0: it queues them (fanout_queue, in its
    # transaction) and that many lanes in the serving process fan them out, one per
    # transaction, woken at the consumer's commit (and every fanout_idle_seconds), so the
    # poll's other events never wait for them. 0: in the consumer, as before; the queue is
    # then only drained, fanout_batch_size at a time (what an earlier version left).
    large_fanout_lanes: int = Field(default=2, ge=0, le=8)
    # With lanes: the consumer reserves a queued large milestone's email and webhook sends
    # (the people whose preferences name them, and the team channel) in its transaction, so
    # they go out at its commit; the lane writes the in-app rows, keeping to the same
    # budget and quiet-hours decisions. False: the lane writes everything, as before.
    large_fanout_sends_first: bool = True
    fanout_batch_size: int = Field(default=200, ge=1)
    fanout_idle_seconds: float = Field(default=5.0, gt=0)

    # delivery worker
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=600.0, gt=0)
    # A worker sends its whole claim before it claims again: a small claim (a few rounds of
    # `delivery_concurrency`) keeps what became due meanwhile from waiting behind it.
    delivery_batch_size: int = Field(default=48, ge=1)
    # Sends in flight per worker; the webhook pool keeps concurrency x workers connections
    # alive. httpcore scans every pooled connection for each request it places, so a bigger
    # pool costs CPU on every send: raise it for slow endpoints, not by default.
    delivery_concurrency: int = Field(default=16, ge=1)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)
    delivery_poll_seconds: float = Field(default=0.1, gt=0)
    delivery_workers: int = Field(default=2, ge=1, le=32)
    # Processes of their own for the delivery workers (each runs `delivery_workers` loops):
    # sends then no longer wait behind a large fan-out on the serving process's event loop.
    # 0 runs the workers inside the serving process.
    delivery_processes: int = Field(default=1, ge=0, le=8)

    # attention defaults and schedules
    default_daily_budget: int = Field(default=10, ge=0)
    default_digest_hour: int = Field(default=8, ge=0, le=23)
    reminder_after_days: float = Field(default=3.0, ge=0)
    schedule_interval_seconds: float = Field(default=60.0, gt=0)

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def egress_policy(self) -> EgressPolicy:
        """The SSRF policy webhooks are sent under."""
        return EgressPolicy.from_strings(
            self.webhook_allow_networks, require_https=self.webhook_require_https
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_delay=self.backoff_base_seconds,
            max_delay=self.backoff_max_seconds,
        )

    def default_preferences(self) -> Preferences:
        return Preferences(
            daily_budget=self.default_daily_budget, digest_hour=self.default_digest_hour
        )
