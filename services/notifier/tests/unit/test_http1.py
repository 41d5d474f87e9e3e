"""The webhooks' HTTP/1.1 client against a scripted local server: framing and keep-alive."""

import asyncio

import pytest
from thrive_notifier.adapters.http1 import Http1Client, ProtocolError

CLOSE = b"<close>"
HEAD = b"POST /hook HTTP/1.1\r\nHost: h.example.test\r\nContent-Length: 2\r\n\r\n"


class Scripted:
    """Answers each request with the next scripted reply; `None` closes the connection
    without one, and a reply ending in CLOSE closes it after the reply."""

    def __init__(self, *replies: bytes | None, close_idle: bool = False) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.close_idle = close_idle
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                body = await reader.readexactly(2)
                self.requests.append(head + body)
                reply = self.replies.pop(0)
                if reply is None:
                    return
                writer.write(reply.removesuffix(CLOSE))
                await writer.drain()
                # close_idle: as a server whose keep-alive timeout ran out would
                if self.close_idle or reply.endswith(CLOSE):
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> "Scripted":
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


async def post(client: Http1Client, server: Scripted, *, max_body: int = 1024):
    return await client.post(
        scheme="http",
        ip="127.0.0.1",
        port=server.port,
        server_name="h.example.test",
        head=HEAD,
        body=b"{}",
        max_body=max_body,
    )


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_a_connection_is_kept_alive_between_sends():
    async with Scripted(OK, OK, OK) as server:
        client = Http1Client()
        for _ in range(3):
            assert (await post(client, server)).status == 200
        await client.aclose()
    assert server.connections == 1
    assert server.requests == [HEAD + b"{}"] * 3


async def test_a_kept_connection_the_server_closed_is_replaced_and_the_request_sent_again():
    async with Scripted(OK, None, OK) as server:
        client = Http1Client()
        assert (await post(client, server)).status == 200
        # The server drops the kept connection on the next request without answering.
        assert (await post(client, server)).status == 200
        await client.aclose()
    assert server.connections == 2 and len(server.requests) == 3


async def test_a_connection_closed_while_idle_is_not_reused():
    async with Scripted(OK, OK, close_idle=True) as server:
        client = Http1Client()
        assert (await post(client, server)).status == 200
        await asyncio.sleep(0.05)  # the server's close reaches the client
        assert (await post(client, server)).status == 200
        await client.aclose()
    assert server.connections == 2


@pytest.mark.timeout(10)
async def test_chunked_and_close_delimited_bodies_and_interim_responses():
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
        b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    until_close = b"HTTP/1.0 503 Busy\r\n\r\nbody until close" + CLOSE
    async with Scripted(chunked, OK, until_close) as server:
        client = Http1Client()
        first = await post(client, server)
        assert (first.status, first.size, first.headers["retry-after"]) == (201, 5, "3")
        assert (await post(client, server)).status == 200  # same connection after chunks
        last = await post(client, server)
        assert (last.status, last.size) == (503, 16)
        await client.aclose()
    assert server.connections == 1


async def test_a_huge_body_is_not_read_to_its_end_and_its_connection_is_dropped():
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
    async with Scripted(huge, OK) as server:
        client = Http1Client()
        assert (await post(client, server, max_body=1000)).size == 1000
        assert (await post(client, server)).status == 200
        await client.aclose()
    assert server.connections == 2


async def test_garbage_is_a_protocol_error_and_a_fresh_connection_that_closes_is_a_reset():
    async with Scripted(b"SMTP ready\r\n\r\n") as server:
        with pytest.raises(ProtocolError):
            await post(Http1Client(), server)
    async with Scripted(None) as server:
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await post(Http1Client(), server)
