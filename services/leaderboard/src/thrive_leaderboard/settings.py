"""Leaderboard settings: env prefix THRIVE_LEADERBOARD_ (plus the common Kafka/DB ones)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict
from thrive_shared.contracts import topics
from thrive_shared.settings import CommonSettings

from thrive_leaderboard.domain.scoring import Metric, Weights


class LeaderboardSettings(CommonSettings):
    """Everything the leaderboard service can be told from its environment."""

    model_config = SettingsConfigDict(env_prefix="THRIVE_LEADERBOARD_", extra="ignore")

    port: int = 8102
    timezone: str = Field(default="UTC", description="Company timezone for calendar periods.")
    weight_help: float = 1.0
    weight_discounted: float = 0.25
    weight_breadth: float = 2.0
    weight_cross_team: float = 1.0
    person_hash_key: SecretStr = Field(
        default=SecretStr("thrive-dev-only-change-me"),
        description="Key for the hashes of givers (distinct counts) and erasure tombstones.",
    )
    preload_metrics: list[Metric] = Field(default_factory=lambda: [Metric.SERVICE])
    live_metrics: list[Metric] = Field(default_factory=lambda: [Metric.SERVICE])
    live_interval_seconds: float = Field(default=1.0, gt=0)
    live_top_n: int = Field(default=10, ge=1, le=100)
    max_resident_entries: int = Field(default=30_000_000, ge=1000)
    # Bigger batches than the shared default: the apply is set-based, so a batch costs
    # a few statements whatever its size (freshness is unaffected: a batch closes after
    # 50 ms however few records it has).
    consumer_max_records: int = Field(default=2000, ge=1)
    # Members of the consumer group in this process. Each owns some partitions and applies
    # its batches in its own transaction, so one member's Python runs while another's
    # statements run in Postgres (one member leaves one core idle most of the time). Help
    # events are keyed by helper, so members write disjoint `helped` pairs; erasures
    # exclude concurrent applies (see Applier) and memory ignores stale values (see
    # Leaderboards.apply_committed). More members than help partitions would sit idle.
    consumer_members: int = Field(default=3, ge=1, le=32)
    # Young collections every this many allocations (Python's default is 700). The apply
    # path allocates a few dozen short-lived objects per event; with the default, young
    # and middle collections ran every few events and cost as much as the work itself.
    # At 10,000 collections still cost 15-24 µs per applied event (session 6, measured
    # in-process); at 100,000 one young collection runs about once per 2,000-event batch
    # (a pause of a few ms, rarer: queries allocate little).
    gc_young_threshold: int = Field(default=100_000, ge=700)
    # Applies write one row per (scope, day, person); days older than this many days are
    # rolled up into the stored board-periods (hourly), so loads read few day rows.
    rollup_keep_days: int = Field(default=2, ge=0)
    rollup_interval_seconds: float = Field(default=3600.0, gt=0)
    consumer_name: str = "standings"
    consumer_group_id: str | None = Field(
        default=None, description="Kafka group id (default thrive-leaderboard.<consumer_name>)."
    )
    topic_help_received: str = topics.HELP_RECEIVED
    topic_milestone_reached: str = topics.MILESTONE_REACHED
    topic_directory_person: str = topics.DIRECTORY_PERSON
    topic_leaderboard_changed: str = topics.LEADERBOARD_CHANGED

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    def tz(self) -> ZoneInfo:
        """The company timezone."""
        return ZoneInfo(self.timezone)

    def weights(self) -> Weights:
        """Weights of the default `service` board."""
        return Weights(
            help=self.weight_help,
            discounted=self.weight_discounted,
            breadth=self.weight_breadth,
            cross_team=self.weight_cross_team,
        )

    def topics(self) -> list[str]:
        """Topics the standings consumer reads."""
        return [self.topic_help_received, self.topic_milestone_reached, self.topic_directory_person]
