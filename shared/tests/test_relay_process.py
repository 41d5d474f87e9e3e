"""The outbox relay's child process: its metrics reach the parent, its settings reach it."""

import os

import pytest
from thrive_shared.observability import metrics as shared_metrics
from thrive_shared.relay_process import RelayMetrics, apply_relay_metrics, settings_env
from thrive_shared.settings import CommonSettings


def test_the_relays_counters_reach_the_parent_as_increments_and_its_gauges_as_values():
    produced = shared_metrics.EVENTS_PRODUCED.labels("relay-test", "t.v1", "x")
    backlog = shared_metrics.OUTBOX_BACKLOG.labels("relay-test")
    child = RelayMetrics()
    child.report()  # whatever this process counted before
    produced.inc(5)
    backlog.set(7)
    first = child.report()
    assert ["EVENTS_PRODUCED", ["relay-test", "t.v1", "x"], 5.0] in first["inc"]
    assert ["OUTBOX_BACKLOG", ["relay-test"], 7.0] in first["set"]
    assert not any(i[1][0] == "relay-test" for i in child.report()["inc"])  # sent once
    before = produced._value.get()
    apply_relay_metrics(first)  # what the parent does with it
    assert produced._value.get() == before + 5
    apply_relay_metrics({"inc": [["HTTP_REQUESTS", ["a", "b", "c", "d"], 1]]})  # ignored


def test_the_relay_child_reads_back_the_common_settings_of_its_service(
    monkeypatch: pytest.MonkeyPatch,
):
    class ServiceSettings(CommonSettings):  # type: ignore[misc, unused-ignore]
        model_config = CommonSettings.model_config | {"env_prefix": "THRIVE_RELAYTEST_"}
        port: int = 8199
        outbox_relay_process: bool = True

    settings = ServiceSettings(
        database_url="postgresql://u:p@db.example.test:5432/n",
        kafka_bootstrap_servers="k1:9092,k2:9092",
        kafka_sasl_username="relay",
        kafka_sasl_password="s3cret",
        log_json=False,
        port=8200,
    )
    for key in list(os.environ):
        if key.startswith(("THRIVE_RELAYTEST_", "KAFKA_", "DATABASE_URL", "LOG_")):
            monkeypatch.delenv(key)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    assert ServiceSettings().model_dump() == settings.model_dump()
    child = CommonSettings()  # what the relay process reads
    assert child.database_url == settings.database_url
    assert child.kafka_bootstrap_servers == settings.kafka_bootstrap_servers
    assert child.kafka_sasl_password is not None
    assert child.kafka_sasl_password.get_secret_value() == "s3cret"
    assert child.log_json is False
