"""Kafka client security follows the settings Kubernetes sets (Strimzi: SCRAM-SHA-512 over TLS)."""

from __future__ import annotations

import pytest
from faststream.security import SASLScram512
from thrive_shared.kafka.producer import kafka_security, security_from_settings
from thrive_shared.settings import CommonSettings


def test_plaintext_locally_means_no_security() -> None:
    assert kafka_security(protocol="PLAINTEXT") is None


def test_strimzi_settings_give_scram_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "thrive-recognition")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    settings = CommonSettings()
    assert "s3cret" not in repr(settings)  # the password is a SecretStr
    security = security_from_settings(settings)
    assert isinstance(security, SASLScram512)
    assert security.use_ssl is True
    assert security.ssl_context is not None


def test_sasl_without_credentials_is_a_clear_configuration_error() -> None:
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        kafka_security(protocol="SASL_SSL")


def test_unknown_mechanism_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        kafka_security(protocol="SASL_SSL", mechanism="MD5", username="u", password="p")


def test_a_closed_connection_is_transient_but_a_programming_error_is_not() -> None:
    import asyncpg
    from thrive_shared.kafka.consumer import _raise_if_transient, _Transient

    with pytest.raises(_Transient):
        _raise_if_transient(
            asyncpg.InterfaceError("cannot perform operation: connection is closed")
        )
    # A bug (wrong argument count) must not make a batch retry forever: it is left to the
    # retry-then-dead-letter path.
    _raise_if_transient(asyncpg.InterfaceError("the server expects 2 arguments, 3 were passed"))
