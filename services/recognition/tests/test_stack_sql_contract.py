"""The SQL repository and the in-memory fake reach the same state for the same events."""

from __future__ import annotations

import asyncio

import pytest
from thrive_recognition.adapters.unit_of_work import SqlUnitOfWork
from thrive_recognition.service_layer import handlers
from thrive_recognition.settings import RecognitionSettings
from thrive_shared.db import create_pool, migrate

from .conftest import NOW, make_uow
from .test_batch import ev

pytestmark = pytest.mark.stack

PEOPLE = ["ada", "bob", "cy", "dee", "eve"]


def scenario():  # type: ignore[no-untyped-def]
    # Over ~two months (streaks form and break), four teams, a two- and a three-person
    # cycle that repeat (rings), and one-way help.
    pairs = [
        ("ada", "bob"),
        ("bob", "ada"),
        ("cy", "dee"),
        ("dee", "eve"),
        ("eve", "cy"),
        ("ada", "eve"),
        ("cy", "bob"),
    ]
    return [ev(i, *pairs[i % len(pairs)], minutes=i * 700 + (i % 3) * 4000) for i in range(120)]


@pytest.mark.parametrize("batch_size", [1, 7, 500])
async def test_sql_batches_match_the_fake_one_by_one(database_url, policies, batch_size) -> None:
    settings = RecognitionSettings(database_url=database_url)
    await asyncio.to_thread(
        migrate, database_url, schema="recognition", migrations_dir=settings.migrations_dir
    )
    fake = make_uow()
    events = scenario()
    for e in events:
        await handlers.ingest_external_many(fake, [e], policies=policies, now=NOW)

    pool = await create_pool(database_url, schema="recognition")
    try:
        async with pool.acquire() as conn:
            uow = SqlUnitOfWork(conn)
            for person in fake.repo.people.values():
                await uow.repo.upsert_person(person)
        for i in range(0, len(events), batch_size):
            async with pool.acquire() as conn, conn.transaction():
                uow = SqlUnitOfWork(conn)
                await handlers.ingest_external_many(
                    uow, events[i : i + batch_size], policies=policies, now=NOW
                )
                await uow.flush()
        async with pool.acquire() as conn:
            uow = SqlUnitOfWork(conn)
            counts = await uow.repo.get_counts(PEOPLE)
            milestones = {
                (m.person, m.rule_id, m.scope, m.level)
                for p in PEOPLE
                for m in await uow.repo.person_milestones(p)
            }
            discounted = await conn.fetchval("SELECT count(*) FROM thanks WHERE discounted")
            outbox = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE event_type = 'thrive.milestone.reached'"
            )
    finally:
        await pool.close()
    assert counts == fake.repo.counts
    assert milestones == set(fake.repo.milestones)
    assert outbox == len(milestones)
    assert discounted == sum(1 for t in fake.repo.thanks.values() if t.discounted) > 0
    assert any(c.longest_streak >= 2 for c in counts.values())
