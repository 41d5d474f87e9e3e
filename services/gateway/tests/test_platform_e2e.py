"""The whole platform (four real services, Kafka, Postgres): thanks given through the gateway
appear live on another person's wall — over graphql-transport-ws, and in a real browser."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from thrive_shared.contracts import topics
from thrive_shared.devstack import Endpoints
from thrive_shared.platform import Platform
from thrive_shared.testing import isolated_platform, wait_for

from .wsclient import GraphQLWs

pytestmark = [pytest.mark.stack, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def running(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """The four services on free ports, a fresh database and their own topic copies, seeded
    with the demo people."""
    log_dir = tmp_path_factory.mktemp("gateway-e2e-logs")
    async with isolated_platform(stack, label="gw_e2e", log_dir=log_dir) as plat:
        previous = os.environ.get(topics.SUFFIX_ENV)
        os.environ[topics.SUFFIX_ENV] = plat.topic_suffix
        try:
            from thrive_shared.demo import publish_people

            await publish_people(plat.kafka)
            async with httpx.AsyncClient() as client:

                async def known() -> bool:
                    r = await client.get(plat.url("recognition") + "/internal/v1/people/grace")
                    return r.status_code == 200

                await wait_for(known, timeout=60, interval=0.3, message="people never mirrored")
            yield plat
        finally:
            if previous is None:
                os.environ.pop(topics.SUFFIX_ENV, None)
            else:
                os.environ[topics.SUFFIX_ENV] = previous


async def token_for(client: httpx.AsyncClient, gateway: str, person: str) -> str:
    r = await client.post(f"{gateway}/dev-oidc/token", json={"username": person})
    r.raise_for_status()
    return str(r.json()["access_token"])


async def test_thanks_given_through_the_gateway_reaches_another_wall_live(
    running: Platform,
) -> None:
    gateway = running.url("gateway")
    async with httpx.AsyncClient(timeout=10) as http:
        ada, linus = await token_for(http, gateway, "ada"), await token_for(http, gateway, "linus")
        wall = GraphQLWs(gateway.replace("http", "ws") + "/graphql")
        await wall.connect(linus)
        await wall.subscribe(
            "subscription { feed { __typename"
            " ... on Thanks { message giver { name } helper { name } } } }"
        )
        message = f"thanks for the review {uuid.uuid4().hex[:6]}"

        async def give() -> dict[str, Any]:
            r = await http.post(
                f"{gateway}/graphql",
                json={
                    "query": "mutation($m: String!) { giveThanks(input: {"
                    'helper: "grace", message: $m, themes: ["kafka"]})'
                    " { __typename ... on UserError { message } } }",
                    "variables": {"m": message},
                },
                headers={"Authorization": f"Bearer {ada}"},
            )
            body: dict[str, Any] = r.json()
            return body

        # /ready (awaited by the fixture) includes the live consumer being positioned.
        result = await give()
        assert result["data"]["giveThanks"]["__typename"] == "ThanksGiven", result
        got = await wall.next(timeout=30)
        while got["payload"]["data"]["feed"].get("message") != message:
            got = await wall.next(timeout=30)
        assert got["payload"]["data"]["feed"] == {
            "__typename": "Thanks",
            "message": message,
            "giver": {"name": "Ada Lovelace"},
            "helper": {"name": "Grace Hopper"},
        }
        await wall.close()

        # The profile counts come from recognition through the gateway.
        me = await http.post(
            f"{gateway}/graphql",
            json={"query": '{ person(id: "grace") { counts { thanksReceived } } }'},
            headers={"Authorization": f"Bearer {linus}"},
        )
        assert me.json()["data"]["person"]["counts"]["thanksReceived"] >= 1


@pytest.mark.browser
async def test_give_thanks_in_one_browser_and_see_it_live_on_another(running: Platform) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    gateway = running.url("gateway")
    message = f"Thanks for pairing on the flaky test {uuid.uuid4().hex[:6]}"
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            watcher = await (await browser.new_context()).new_page()
            await watcher.goto(f"{gateway}/demo?as=linus")
            wall = watcher.locator("thrive-kudos-wall")
            await wall.locator(".status").filter(has_text="").first.wait_for(state="attached")

            giver = await (await browser.new_context()).new_page()
            await giver.goto(f"{gateway}/demo?as=ada")
            form = giver.locator("thrive-give-thanks")
            await form.locator("input[name=helper]").fill("grace")
            await form.locator("textarea[name=message]").fill(message)
            await form.locator("input[name=themes]").fill("#testing")
            await form.locator("button[type=submit]").click()
            await playwright_api.expect(form.locator(".status")).to_have_text(
                "Thanks sent to Grace Hopper.", timeout=15_000
            )
            # No reload: the wall in the other session receives it over the subscription.
            await playwright_api.expect(wall.locator("li", has_text=message)).to_be_visible(
                timeout=15_000
            )
            item = await wall.locator("li", has_text=message).inner_text()
            assert "Ada Lovelace" in item and "Grace Hopper" in item
            await watcher.screenshot(path=str(running.log_dir / "wall.png"), full_page=True)
        finally:
            await browser.close()
