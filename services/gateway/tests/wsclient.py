"""A minimal graphql-transport-ws client for tests (and the benchmark)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets


class GraphQLWs:
    """One connection: init with a token, subscribe, read `next` payloads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None

    async def connect(self, token: str | None) -> dict[str, Any]:
        """Open and send connection_init; returns the ack (or raises on rejection)."""
        self.ws = await websockets.connect(self.url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        return message

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, *, id: str = "1"
    ) -> None:
        await self.ws.send(
            json.dumps(
                {
                    "id": id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `next`/`error` message (pings are answered)."""
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            if message["type"] in ("next", "error", "complete"):
                return message

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
