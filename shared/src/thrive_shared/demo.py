"""Demo data for `make run`: the HR system publishes people, then people ask, offer and thank."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from thrive_shared.contracts import PersonUpserted, make_event, topics
from thrive_shared.kafka import OutgoingRecord, Publisher

# (id, name, team, timezone)
PEOPLE: list[tuple[str, str, str, str]] = [
    ("ada", "Ada Lovelace", "platform", "Europe/London"),
    ("grace", "Grace Hopper", "platform", "America/New_York"),
    ("linus", "Linus Torvalds", "platform", "Europe/Helsinki"),
    ("barbara", "Barbara Liskov", "payments", "America/New_York"),
    ("ken", "Ken Thompson", "payments", "America/Los_Angeles"),
    ("margaret", "Margaret Hamilton", "payments", "America/New_York"),
    ("alan", "Alan Turing", "support", "Europe/London"),
    ("katherine", "Katherine Johnson", "support", "America/New_York"),
    ("radia", "Radia Perlman", "support", "America/Los_Angeles"),
    ("edsger", "Edsger Dijkstra", "research", "Europe/Amsterdam"),
    ("frances", "Frances Allen", "research", "America/New_York"),
    ("dennis", "Dennis Ritchie", "research", "America/New_York"),
]

ASKS = [
    ("grace", "Pairing on a flaky Kafka consumer test?", ["kafka", "testing"], "chat"),
    ("ken", "Quick look at a SQL index choice", ["sql"], "quick"),
    ("alan", "Walk me through our on-call runbook", ["on-call"], "session"),
]

THANKS = [
    ("grace", "ada", "Thanks for untangling the consumer rebalance!", ["kafka"]),
    ("ken", "barbara", "Your review caught a real race. Thank you.", ["code-review"]),
    ("alan", "katherine", "The incident write-up was superb.", ["customer-first"]),
    ("edsger", "grace", "Thanks for the compiler tips.", ["python"]),
    ("radia", "linus", "Thanks for debugging the network flake with me.", ["networking"]),
    ("margaret", "ken", "Thanks for the quick SQL help!", ["sql"]),
    ("frances", "dennis", "Great pairing session on the parser.", ["python"]),
    ("katherine", "alan", "Thanks for covering my on-call shift.", ["on-call"]),
    ("ada", "edsger", "Your design notes made it click.", ["architecture"]),
    ("barbara", "margaret", "Thanks for the customer call prep.", ["customer-first"]),
]


async def publish_people(kafka: str) -> None:
    """Act as the HR system: upsert every demo person on the directory topic."""
    publisher = Publisher(kafka, client_id="thrive-demo-hr")
    await publisher.start()
    try:
        records = []
        for pid, name, team, tz in PEOPLE:
            env = make_event(
                PersonUpserted(
                    person=pid,
                    name=name,
                    email=f"{pid}@example.com",
                    team=team,
                    timezone=tz,
                ),
                source="hr/demo",
                id=f"demo-person-{pid}",
            )
            records.append(
                OutgoingRecord(
                    topic=topics.physical(topics.DIRECTORY_PERSON), key=pid, value=env.to_json()
                )
            )
        await publisher.send_all(records)
    finally:
        await publisher.stop()


async def _known(client: httpx.AsyncClient, api: str, person: str) -> bool:
    try:
        return (await client.get(f"{api}/people/{person}")).status_code == 200
    except httpx.HTTPError:
        return False


async def _already_seeded(client: httpx.AsyncClient, api: str) -> bool:
    """True if the first demo thanks' giver has given thanks: a re-run must not repeat them."""
    giver = THANKS[0][0]
    r = await client.get(f"{api}/people/{giver}", headers={"X-Thrive-Actor": giver})
    if r.status_code != 200:
        return False
    counts = r.json().get("counts", {})
    return bool(counts.get("thanks_given"))


async def seed(
    *, kafka: str, recognition: str = "http://127.0.0.1:8101", deadline_s: float = 60.0
) -> str:
    """Publish the demo people, wait until recognition knows them, then add asks and thanks."""
    await publish_people(kafka)
    api = f"{recognition}/internal/v1"
    made: dict[str, int] = {"asks": 0, "thanks": 0, "refused": 0}
    async with httpx.AsyncClient(timeout=5.0) as client:
        deadline = time.monotonic() + deadline_s
        while not all([await _known(client, api, p[0]) for p in PEOPLE[:1] + PEOPLE[-1:]]):
            if time.monotonic() > deadline:
                return "people published; recognition has not mirrored them yet (see its log)"
            await asyncio.sleep(0.3)
        if await _already_seeded(client, api):
            return f"{len(PEOPLE)} people (asks and thanks were seeded by an earlier run)"
        for asker, title, themes, size in ASKS:
            body: dict[str, Any] = {
                "asker": asker,
                "title": title,
                "details": "",
                "themes": themes,
                "size": size,
            }
            r = await client.post(f"{api}/asks", json=body, headers={"X-Thrive-Actor": asker})
            made["asks" if r.status_code in (200, 201) else "refused"] += 1
        for giver, helper, message, themes in THANKS:
            body = {
                "giver": giver,
                "helper": helper,
                "message": message,
                "themes": themes,
                "visibility": "public",
            }
            r = await client.post(f"{api}/thanks", json=body, headers={"X-Thrive-Actor": giver})
            made["thanks" if r.status_code in (200, 201) else "refused"] += 1
    return f"{len(PEOPLE)} people, {made['asks']} asks, {made['thanks']} thanks" + (
        f" ({made['refused']} refused: e.g. allowance reached on a re-run)"
        if made["refused"]
        else ""
    )
