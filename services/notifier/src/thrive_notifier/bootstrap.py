"""Wires adapters into the shared runtime: consumers, delivery worker, scheduler, routes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from thrive_shared.service import Runtime, ServiceSpec

from thrive_notifier.adapters.email import EmailSender
from thrive_notifier.adapters.postgres import PostgresUnitOfWork
from thrive_notifier.adapters.webhook import WebhookSender
from thrive_notifier.domain.model import Channel
from thrive_notifier.entrypoints import kafka as kafka_entry
from thrive_notifier.entrypoints.delivery_process import run_child
from thrive_notifier.entrypoints.http import NotifierApi
from thrive_notifier.entrypoints.workers import (
    configured_delivery_loop,
    fanout_loop,
    scheduler_loop,
)
from thrive_notifier.service_layer.ports import Sender
from thrive_notifier.settings import NotifierSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "notifier"


def make_senders(settings: NotifierSettings) -> dict[Channel, Sender]:
    """The outgoing channels the delivery worker sends through."""
    senders: dict[Channel, Sender] = {
        Channel.WEBHOOK: WebhookSender(
            secret=settings.webhook_secret.get_secret_value().encode(),
            policy=settings.egress_policy(),
            timeout=settings.webhook_timeout_seconds,
            max_redirects=settings.webhook_max_redirects,
            # As many as the workers may have in flight, all kept alive between batches.
            max_connections=settings.delivery_concurrency * settings.delivery_workers,
        )
    }
    if settings.email_enabled:
        senders[Channel.EMAIL] = EmailSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            start_tls=settings.smtp_start_tls,
            use_tls=settings.smtp_use_tls,
            timeout=settings.webhook_timeout_seconds,
        )
    return senders


def build_spec(settings: NotifierSettings | None = None) -> ServiceSpec:
    """The notifier as the shared runtime runs it."""
    s = settings or NotifierSettings()
    defaults = s.default_preferences()
    runtime: dict[str, Runtime] = {}
    uow = PostgresUnitOfWork(lambda: runtime["rt"].pool, defaults=defaults)
    api = NotifierApi(uow, policy=s.egress_policy(), defaults=defaults)

    async def setup(rt: Runtime) -> None:
        runtime["rt"] = rt
        # The consumer applies each poll's new events and fans their celebrations out in
        # the transaction of their inbox rows (one read, one write per batch). Several
        # members of one group (one name, so one inbox) split the partitions between them.
        lanes = s.large_fanout_lanes
        handler, batch_handler = kafka_entry.make_handlers(
            defaults=defaults, queue_large=lanes > 0, sends_first=s.large_fanout_sends_first
        )
        # A commit may have reserved webhooks or emails: wake the delivery workers rather
        # than leave them to their next poll; one that queued a large milestone wakes a lane.
        sends_due = asyncio.Event()
        large_queued = asyncio.Event()

        async def committed(applied: Sequence[Any]) -> None:
            sends_due.set()
            if any(kafka_entry.queues_large(env) for env, _meta in applied):
                large_queued.set()

        for _ in range(s.consumer_instances):
            rt.add_consumer(
                "events",
                topics=kafka_entry.TOPICS,
                handler=handler,
                batch_handler=batch_handler,
                group_id=s.consumer_group,
                after_commit=committed,
            )

        async def fanout(_rt: Runtime) -> None:
            # Without lanes: celebrations queued by an earlier version still go out.
            await fanout_loop(
                uow,
                wake=asyncio.Event(),
                batch_size=s.fanout_batch_size,
                idle_seconds=s.fanout_idle_seconds,
            )

        async def lane(_rt: Runtime) -> None:
            # One large milestone per transaction: its in-app rows and webhooks go out as
            # soon as its own fan-out commits, not with a batch of others.
            await fanout_loop(
                uow, wake=large_queued, batch_size=1, idle_seconds=s.fanout_idle_seconds
            )

        if lanes:
            for n in range(lanes):
                rt.add_task(f"fanout-lane-{n}", lane)
        else:
            rt.add_task("fanout-queue", fanout)
        senders = make_senders(s)
        rt.state["senders"] = senders

        async def deliveries(_rt: Runtime) -> None:
            await configured_delivery_loop(uow, senders, s, wake=sends_due)

        async def schedule(_rt: Runtime) -> None:
            await scheduler_loop(
                uow,
                interval_seconds=s.schedule_interval_seconds,
                reminder_after=timedelta(days=s.reminder_after_days),
            )

        if s.delivery_processes:
            # Sends in processes of their own, woken through Postgres at each commit that
            # reserved some (the consumer's NOTIFY); restarted by the runtime if they exit.
            for n in range(s.delivery_processes):

                async def child(_rt: Runtime, n: int = n) -> None:
                    await run_child(s, n, relay=n == 0)

                rt.add_task(f"delivery-process-{n}", child)
        else:
            for n in range(s.delivery_workers):
                rt.add_task(f"delivery-{n}", deliveries)
        rt.add_task("schedule", schedule)

    async def teardown(rt: Runtime) -> None:
        hook = rt.state.get("senders", {}).get(Channel.WEBHOOK)
        if isinstance(hook, WebhookSender):
            await hook.aclose()

    return ServiceSpec(
        name=NAME,
        settings=s,
        migrations_dir=MIGRATIONS,
        routes=api.routes(),
        setup=setup,
        teardown=teardown,
        schema=s.schema_name,
        # With delivery processes, the first of them relays the outbox.
        relay_outbox=s.delivery_processes == 0,
    )
