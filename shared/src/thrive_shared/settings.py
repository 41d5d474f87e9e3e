"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Where Kafka and Postgres are, and how to observe the service."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    kafka_security_protocol: str = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol"),
        description="PLAINTEXT locally; SASL_SSL on Kubernetes (Strimzi).",
    )
    kafka_sasl_mechanism: str = Field(
        default="SCRAM-SHA-512",
        validation_alias=AliasChoices("KAFKA_SASL_MECHANISM", "kafka_sasl_mechanism"),
    )
    kafka_sasl_username: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_SASL_USERNAME", "kafka_sasl_username")
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_SASL_PASSWORD", "kafka_sasl_password")
    )
    kafka_ssl_cafile: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_SSL_CAFILE", "kafka_ssl_cafile")
    )
    database_url: str = Field(
        default="postgresql://thrive:thrive@127.0.0.1:15432/thrive",
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
        description="OTLP/HTTP endpoint for traces; none means spans are not exported.",
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("LOG_LEVEL", "log_level"))
    log_json: bool = Field(default=True, validation_alias=AliasChoices("LOG_JSON", "log_json"))
    host: str = "127.0.0.1"
    port: int = 8100
    db_pool_min: int = 2
    db_pool_max: int = 10
    consumer_max_records: int = 500
    consumer_batch_timeout_ms: int = Field(
        default=20, ge=1, description="Poll wait; bounds the latency an idle consumer adds."
    )
    outbox_relay_process: bool = Field(
        default=False,
        description="Relay the outbox from a child process (thrive_shared.relay_process), "
        "not from the serving process's event loop.",
    )
    consumer_max_attempts: int = Field(
        default=3, description="Handler failures per event before it is dead-lettered."
    )
