"""Recognition's settings: env prefix THRIVE_RECOGNITION_, plus the common Kafka/DB ones."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from thrive_shared.contracts import AskSize
from thrive_shared.settings import CommonSettings

from thrive_recognition.domain.allowance import AllowancePolicy, Limit
from thrive_recognition.domain.milestones import RuleBook
from thrive_recognition.domain.periods import Period
from thrive_recognition.domain.rings import RingPolicy
from thrive_recognition.service_layer.handlers import Policies

SERVICE_ROOT = Path(__file__).resolve().parents[2]


class RecognitionSettings(CommonSettings):  # type: ignore[misc, unused-ignore]
    """Everything recognition can be told from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="THRIVE_RECOGNITION_", env_file=None, extra="ignore"
    )

    port: int = 8101
    db_schema: str = "recognition"
    migrations_dir: Path = SERVICE_ROOT / "migrations"
    milestones_file: Path = Field(
        default=SERVICE_ROOT / "milestones.toml",
        description="Declarative milestone rules (TOML), read at start.",
    )

    allowance_per_day: int | None = Field(default=5, ge=1, description="None: no daily limit.")
    allowance_per_week: int | None = Field(default=20, ge=1)
    pair_cap: int | None = Field(default=3, ge=1, description="Thanks per giver->receiver pair.")
    pair_cap_period: Period = Period.WEEK
    allowance_for_external: bool = Field(
        default=False, description="Whether thanks from other systems draw on allowances."
    )

    ring_window_days: int = Field(default=30, ge=1)
    ring_max_cycle: int = Field(default=3, ge=2, le=6)
    ring_min_repeats: int = Field(default=2, ge=1)

    ask_ttl_quick_hours: float = Field(default=48, gt=0)
    ask_ttl_chat_hours: float = Field(default=7 * 24, gt=0)
    ask_ttl_session_hours: float = Field(default=14 * 24, gt=0)
    expiry_sweep_seconds: float = Field(default=60.0, gt=0)
    # A 2,000-event batch keeps a few hundred thousand objects alive until it commits: with
    # 50,000 the collector walked them several times per batch (ingest_batch CPU per event,
    # alternating rounds in one process: 97 us at 50,000, 88 us at 300,000). Only
    # allocations still alive count towards it, so memory stays bounded by the batch.
    gc_threshold: int = Field(
        default=300_000,
        ge=700,
        description="Allocations between young garbage collections (Python's default: 700).",
    )
    # The consumer's thread applies one batch while it decodes the next; the relay (reading
    # committed rows, producing them to Kafka) gets a core of its own in a child process.
    outbox_relay_process: bool = Field(
        default=True,
        description="Relay the outbox from a child process started (and restarted) by serve.",
    )
    ingest_max_records: int = Field(
        default=2000,
        ge=1,
        le=20_000,
        description="Most external events applied in one transaction (fewer statements each).",
    )

    def policies(self) -> Policies:
        """The business policies these settings describe (reads the rule file)."""
        limits = []
        if self.allowance_per_day:
            limits.append(Limit(self.allowance_per_day, Period.DAY))
        if self.allowance_per_week:
            limits.append(Limit(self.allowance_per_week, Period.WEEK))
        return Policies(
            rules=RuleBook.load(self.milestones_file),
            allowance=AllowancePolicy(
                limits=tuple(limits),
                pair_cap=Limit(self.pair_cap, self.pair_cap_period) if self.pair_cap else None,
            ),
            rings=RingPolicy(
                window=timedelta(days=self.ring_window_days),
                max_cycle=self.ring_max_cycle,
                min_repeats=self.ring_min_repeats,
            ),
            ask_ttl={
                AskSize.QUICK: timedelta(hours=self.ask_ttl_quick_hours),
                AskSize.CHAT: timedelta(hours=self.ask_ttl_chat_hours),
                AskSize.SESSION: timedelta(hours=self.ask_ttl_session_hours),
            },
            allowance_for_external=self.allowance_for_external,
        )
