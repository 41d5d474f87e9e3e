"""Delivery processes: they get exactly the serving process's settings, and stop on request
after recording the batch in hand."""

import asyncio
import os

import pytest
from pydantic import SecretStr
from thrive_notifier.entrypoints.delivery_process import settings_env
from thrive_notifier.entrypoints.workers import delivery_loop
from thrive_notifier.service_layer.delivery import BatchReport
from thrive_notifier.settings import NotifierSettings


def test_a_child_reads_back_the_settings_it_was_given(monkeypatch: pytest.MonkeyPatch):
    settings = NotifierSettings(
        database_url="postgresql://u:p@db.example.test:5432/n",
        kafka_bootstrap_servers="k1:9092,k2:9092",
        webhook_secret=SecretStr("s3cret"),
        webhook_allow_networks=["127.0.0.1/32", "10.0.0.0/8"],
        webhook_require_https=False,
        delivery_workers=3,
        delivery_poll_seconds=0.25,
        log_json=False,
        smtp_password=SecretStr("pw"),
    )
    for key in list(os.environ):
        if key.startswith("THRIVE_NOTIFIER_"):
            monkeypatch.delenv(key)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    again = NotifierSettings()
    assert again.model_dump() == settings.model_dump()
    assert again.webhook_secret.get_secret_value() == "s3cret"


async def test_a_stopped_loop_finishes_its_batch_and_returns(monkeypatch: pytest.MonkeyPatch):
    from thrive_notifier.entrypoints import workers

    stop = asyncio.Event()
    seen: list[BatchReport] = []

    async def one_batch(*_args, **_kwargs) -> BatchReport:
        stop.set()  # asked to stop while a batch is in hand
        return BatchReport(claimed=5, outcomes={"webhook": {"delivered": 5}})

    monkeypatch.setattr(workers, "deliver_batch", one_batch)
    await asyncio.wait_for(
        delivery_loop(
            None,  # type: ignore[arg-type]
            {},
            policy=None,  # type: ignore[arg-type]
            batch_size=10,
            concurrency=1,
            lease_seconds=60,
            poll_seconds=30,
            stop=stop,
            observe=seen.append,
        ),
        5,
    )
    assert [r.claimed for r in seen] == [5]
