"""A lean HTTP/1.1 client for webhooks: one POST at a time per connection, kept alive.

Webhooks are small POSTs to a handful of endpoints, sent at thousands per second. httpx
(with httpcore, h11 and OpenTelemetry's wrapper) spent most of the notifier's webhook CPU
on generality these sends never use: the pool's per-request scan of every connection, the
request/response models, the event machinery of h11. This client does only what a webhook
needs: write one request, read one response (Content-Length, chunked, or until close),
keep the connection for the next send to the same destination.

The caller decides where a socket goes (the SSRF guard resolves and checks the host and
passes the checked IP); the name is kept for the Host header and TLS (SNI, certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import certifi

StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# (ip, port, ssl context or None, server name for TLS or None) -> a connected stream pair.
Opener = Callable[[str, int, ssl.SSLContext | None, str | None], Awaitable[StreamPair]]

_HEAD_LIMIT = 64 * 1024  # status line and headers of a response, at most


class ProtocolError(Exception):
    """The peer did not answer with a well-formed HTTP/1.1 response."""


async def open_tcp(
    ip: str, port: int, context: ssl.SSLContext | None, server_name: str | None
) -> StreamPair:
    """Connect to exactly `ip` (TLS with SNI and certificate check against `server_name`)."""
    if context is None:
        return await asyncio.open_connection(ip, port, limit=_HEAD_LIMIT)
    return await asyncio.open_connection(
        ip, port, ssl=context, server_hostname=server_name, limit=_HEAD_LIMIT
    )


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    size: int = 0  # body bytes read (at most the caller's limit)


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: int = 0  # requests already answered on it

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class Http1Client:
    """Keep-alive HTTP/1.1 connections by destination (scheme, ip, port, server name)."""

    opener: Opener = open_tcp
    max_idle_per_destination: int = 32
    ssl_context: ssl.SSLContext | None = None
    _idle: dict[tuple[str, str, int, str], list[_Conn]] = field(default_factory=dict)

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            # The CA bundle httpx verified webhooks with before (certifi's), not the OS store.
            self.ssl_context = ssl.create_default_context(cafile=certifi.where())
        return self.ssl_context

    async def post(
        self,
        *,
        scheme: str,
        ip: str,
        port: int,
        server_name: str,
        head: bytes,
        body: bytes,
        max_body: int,
    ) -> Response:
        """Send `head` (request line and headers, ending in a blank line) and `body` to the
        destination; read the response, keeping at most `max_body` bytes of its body.

        A kept-alive connection the server had closed meanwhile fails before any byte of a
        response arrives: the request is then sent once more on a fresh connection (the
        webhook carries an Idempotency-Key, so a receiver that did see it dedups it).
        """
        key = (scheme, ip, port, server_name)
        conn = self._take(key)
        if conn is not None:
            try:
                return await self._exchange(key, conn, head, body, max_body)
            except _StaleConnection:
                pass
        conn = await self._open(scheme, ip, port, server_name)
        try:
            return await self._exchange(key, conn, head, body, max_body)
        except _StaleConnection as exc:
            raise ConnectionResetError("connection closed before a response") from exc

    def _take(self, key: tuple[str, str, int, str]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _open(self, scheme: str, ip: str, port: int, server_name: str) -> _Conn:
        context = self._context() if scheme == "https" else None
        reader, writer = await self.opener(ip, port, context, server_name if context else None)
        return _Conn(reader, writer)

    async def _exchange(
        self, key: tuple[str, str, int, str], conn: _Conn, head: bytes, body: bytes, max_body: int
    ) -> Response:
        keep = False
        try:
            try:
                conn.writer.write(head + body)
                await conn.writer.drain()
                raw = await conn.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
                if conn.used and not partial:  # nothing came back on a reused connection
                    raise _StaleConnection from exc
                raise
            except asyncio.LimitOverrunError as exc:
                raise ProtocolError("response head too large") from exc
            resp, keep = await self._read_response(conn.reader, raw, max_body)
            conn.used += 1
            return resp
        finally:
            if keep:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self.max_idle_per_destination:
                    idle.append(conn)
                else:
                    conn.close()
            else:
                conn.close()

    @staticmethod
    async def _read_response(
        reader: asyncio.StreamReader, raw: bytes, max_body: int
    ) -> tuple[Response, bool]:
        status, version, headers = _parse_head(raw)
        while 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): read on
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError as exc:
                raise ProtocolError("response head too large") from exc
            status, version, headers = _parse_head(raw)
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if status in (204, 304):
            return Response(status, headers, 0), keep
        te = headers.get("transfer-encoding", "").lower()
        if te:
            if te != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding {te!r}")
            size, complete = await _read_chunked(reader, max_body)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError as exc:
                raise ProtocolError("bad content-length") from exc
            if length < 0:
                raise ProtocolError("bad content-length")
            size, complete = await _read_exactly(reader, length, max_body)
        else:  # the body runs until the server closes
            size, complete = await _read_to_eof(reader, max_body), False
        return Response(status, headers, size), keep and complete

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class _StaleConnection(Exception):
    """A reused connection failed before any response byte: resend on a fresh one."""


def _parse_head(raw: bytes) -> tuple[int, str, dict[str, str]]:
    try:
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
    except (ValueError, IndexError) as exc:
        raise ProtocolError("bad status line") from exc
    if not version.startswith("HTTP/1.") or not 100 <= status <= 599:
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("bad header line")
        headers[name.strip().lower()] = value.strip()
    return status, version, headers


async def _read_exactly(
    reader: asyncio.StreamReader, length: int, max_body: int
) -> tuple[int, bool]:
    """Read a Content-Length body; past `max_body` stop (the connection is then not reused)."""
    if length <= max_body:
        if length:
            await reader.readexactly(length)
        return length, True
    await reader.readexactly(max_body)
    return max_body, False


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> tuple[int, bool]:
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            n = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise ProtocolError("bad chunk size") from exc
        if n < 0:
            raise ProtocolError("bad chunk size")
        if n == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return size, True
        if size + n > max_body:
            return size, False
        await reader.readexactly(n + 2)
        size += n


async def _read_to_eof(reader: asyncio.StreamReader, max_body: int) -> int:
    size = 0
    while size <= max_body:
        chunk = await reader.read(65536)
        if not chunk:
            break
        size += len(chunk)
    return min(size, max_body)
