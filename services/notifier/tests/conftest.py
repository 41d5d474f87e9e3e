"""Fixtures for the notifier's tests: migrated schema, local webhook sink and SMTP server,
suffixed topics, and the notifier itself on the real stack (in-process or as a subprocess)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email
import email.policy
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka.admin import NewTopic
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from thrive_notifier.adapters.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from thrive_notifier.adapters.webhook import verify as verify_signature
from thrive_notifier.bootstrap import MIGRATIONS, build_spec
from thrive_notifier.entrypoints.kafka import TOPICS
from thrive_notifier.settings import NotifierSettings
from thrive_shared.contracts import Envelope, PersonUpserted, make_event, topics
from thrive_shared.contracts.topics import SUFFIX_ENV
from thrive_shared.db import create_pool, migrate
from thrive_shared.devstack import probes
from thrive_shared.devstack.probes import TopicSpec
from thrive_shared.kafka import OutgoingRecord, Publisher
from thrive_shared.service import Runtime, build_app
from thrive_shared.settings import CommonSettings
from thrive_shared.testing import unique_name, wait_for

SCHEMA = "notifier"
SECRET = "test-webhook-secret"


@pytest.fixture
async def notifier_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with the shared and the notifier's migrations applied."""
    await asyncio.to_thread(migrate, database_url, schema=SCHEMA, migrations_dir=MIGRATIONS)
    pool = await create_pool(database_url, schema=SCHEMA, min_size=1, max_size=8)
    yield pool
    await pool.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- a local webhook receiver ----------------------------------------------------------------
@dataclass
class Hit:
    key: str
    body: bytes
    status: int
    signed: bool


@dataclass
class Sink:
    """A webhook receiver on 127.0.0.1 that behaves like a careful real one.

    It verifies signatures, deduplicates on the idempotency key (a repeat has no second
    effect), and can be told to fail, stay down, redirect, or answer slowly.
    """

    port: int = 0
    fail_first: int = 0  # per key: the first N requests get 503
    down: bool = False
    redirect_to: str | None = None
    delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    effects: dict[str, bytes] = field(default_factory=dict)  # key -> body of the one effect
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def url(self, name: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def keys_hit(self, key: str) -> list[Hit]:
        return [h for h in self.hits if h.key == key]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        signed = verify_signature(
            SECRET.encode(),
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        self.attempts[key] += 1
        if not signed:
            status = 401
        elif self.redirect_to:
            self.hits.append(Hit(key, body, 307, signed))
            return Response(status_code=307, headers={"Location": self.redirect_to})
        elif self.down or self.attempts[key] <= self.fail_first:
            status = 503
        else:
            status = 200
            self.effects.setdefault(key, body)
        self.hits.append(Hit(key, body, status, signed))
        return Response(b"ok" if status == 200 else b"nope", status_code=status)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    app = Starlette(routes=[Route("/{name:path}", s.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, timeout=10, message="sink did not start")
    s.port = server.servers[0].sockets[0].getsockname()[1]
    yield s
    server.should_exit = True
    await task


# -- any webhook destination, for the sender's own tests ---------------------------------------
@dataclass
class TestTLS:
    """A throwaway CA and a server certificate it signed for `names` (made with cryptography)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def server_context(self, tmp: Path) -> ssl.SSLContext:
        (tmp / "cert.pem").write_bytes(self.cert_pem)
        (tmp / "key.pem").write_bytes(self.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
        return ctx


def make_tls(*names: str) -> TestTLS:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, *, ca: bool) -> Any:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            ).add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        else:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        return b.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("thrive test CA", ca_key, "thrive test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(names[0], key, "thrive test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    return TestTLS(
        ca_pem=ca.public_bytes(pem),
        cert_pem=cert.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@pytest.fixture(name="make_tls")
def make_tls_fixture() -> Any:
    """make_tls(*names) -> a TestTLS whose server certificate is for `names`."""
    return make_tls


class Endpoint:
    """Any webhook destination, played by one local HTTP/1.1 server on a loopback address
    of its own (127.0.0.0/8 all reaches this host), plain or TLS.

    `handler` answers each request: an httpx.Request whose URL host is the address the
    connection really arrived on, with the TLS name the client sent (SNI) in
    `extensions["sni_hostname"]`.
    """

    def __init__(self, handler: Any, ip: str, tls: ssl.SSLContext | None) -> None:
        self.handler = handler
        self.ip = ip
        self.tls = tls
        self.seen: list[httpx.Request] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._sni: dict[int, str | None] = {}
        if tls is not None:
            tls.sni_callback = self._record_sni

    def _record_sni(self, obj: Any, name: str | None, _ctx: Any) -> None:
        self._sni[id(obj)] = name

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        arrived_on = writer.get_extra_info("sockname")[0]
        tls = writer.get_extra_info("ssl_object")
        server_name = self._sni.get(id(tls)) if tls is not None else None
        scheme = "https" if tls is not None else "http"
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = lines[0].split(" ")
                pairs = [line.split(":", 1) for line in lines[1:] if line]
                headers = [(k.strip(), v.strip()) for k, v in pairs]
                length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
                body = await reader.readexactly(length)
                request = httpx.Request(
                    method,
                    f"{scheme}://{arrived_on}{target}",
                    headers=headers,
                    content=body,
                    extensions={"sni_hostname": server_name} if server_name else {},
                )
                self.seen.append(request)
                response = self.handler(request)
                content = response.content
                out = [f"HTTP/1.1 {response.status_code} X"]
                out += [f"{k}: {v}" for k, v in response.headers.items() if k != "content-length"]
                out.append(f"content-length: {len(content)}")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + content)
                await writer.drain()
        finally:
            writer.close()

    async def __aenter__(self) -> Endpoint:
        self._server = await asyncio.start_server(self._serve, self.ip, 0, ssl=self.tls)
        return self

    async def __aexit__(self, *_: Any) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Any]:
    """endpoint(handler, ip=..., tls=TestTLS|None) -> a started Endpoint, closed after."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(handler: Any, *, ip: str = "127.0.0.1", tls: TestTLS | None = None) -> Any:
            ctx = tls.server_context(tmp_path) if tls is not None else None
            return await stack.enter_async_context(Endpoint(handler, ip, ctx))

        yield make


# -- a local SMTP server ---------------------------------------------------------------------
@dataclass
class Mailbox:
    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Any:
    from aiosmtpd.controller import Controller  # test-only: in the root dev group

    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


# -- topics with one suffix, like THRIVE_TOPIC_SUFFIX gives a whole deployment ---------------
@dataclass
class Topics:
    suffix: str

    def __call__(self, contract: str) -> str:
        return f"{contract}-{self.suffix}"


@pytest.fixture
async def notifier_topics(stack: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Topics]:
    """The notifier's topics under one fresh suffix, set as THRIVE_TOPIC_SUFFIX for this test."""
    t = Topics(unique_name("n").split("-", 1)[1])
    names = [t(c) for c in (*TOPICS, topics.CELEBRATION_DELIVERED_V2, topics.DLQ)]
    admin = probes.admin_client(stack.kafka_bootstrap)
    await admin.start()
    try:
        await probes.create_topics(admin, [NewTopic(n, 3, 1) for n in names])
        await probes.wait_topics_ready(
            admin, {n: TopicSpec(partitions=3) for n in names}, deadline=time.monotonic() + 30
        )
    finally:
        await admin.close()
    monkeypatch.setenv(SUFFIX_ENV, t.suffix)
    yield t
    with contextlib.suppress(Exception):
        await probes.delete_topics(stack.kafka_bootstrap, names)


# -- the notifier, in-process ----------------------------------------------------------------
@dataclass
class Notifier:
    rt: Runtime
    client: httpx.AsyncClient
    publisher: Publisher
    topics: Topics
    settings: NotifierSettings
    run_id: str = field(default_factory=lambda: unique_name("p").split("-", 1)[1])

    def pid(self, name: str) -> str:
        """A person id no other test run shares."""
        return f"{name}-{self.run_id}"

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self.rt.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.rt.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        await self.publisher.send_all(
            [
                OutgoingRecord(topic=self.topics(e.data.TOPIC), key=e.subject, value=e.to_json())
                for e in events
            ]
        )

    async def add_people(self, *names: str, team: str = "blue", timezone: str = "UTC") -> list[str]:
        """Publish people on the directory topic and wait until the notifier mirrors them."""
        ids = [self.pid(n) for n in names]
        await self.publish(
            [
                make_event(
                    PersonUpserted(
                        person=i,
                        name=n.title(),
                        email=f"{i}@example.test",
                        team=team,
                        timezone=timezone,
                    ),
                    source="hr/test",
                )
                for n, i in zip(names, ids, strict=True)
            ]
        )

        async def mirrored() -> bool:
            n = await self.fetchval("SELECT count(*) FROM person WHERE person = ANY($1)", ids)
            return bool(n == len(ids))

        await wait_for(mirrored, timeout=30, message=f"people {names} not mirrored")
        return ids

    def as_(self, person: str, roles: str = "employee") -> dict[str, str]:
        return {"X-Thrive-Actor": person, "X-Thrive-Roles": roles}

    async def inbox(self, person: str) -> list[dict[str, Any]]:
        r = await self.client.get(
            f"/internal/v1/people/{person}/inbox",
            params={"first": 100},
            headers=self.as_(person),
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


def notifier_settings(database_url: str, kafka: str, **overrides: Any) -> NotifierSettings:
    base: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka,
        "log_json": False,
        "consumer_group": unique_name("notifier-test"),
        "webhook_secret": SECRET,
        "webhook_allow_networks": ["127.0.0.1/32"],
        "webhook_require_https": False,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "schedule_interval_seconds": 3600,
        "email_enabled": False,
    }
    return NotifierSettings(**(base | overrides))


@pytest.fixture
async def start_notifier(
    stack: Any, database_url: str, notifier_topics: Topics
) -> AsyncIterator[Any]:
    """`await start_notifier(**settings)` -> a running notifier on the real stack."""
    started: list[Notifier] = []

    async def start(**overrides: Any) -> Notifier:
        settings = notifier_settings(database_url, stack.kafka_bootstrap, **overrides)
        await asyncio.to_thread(migrate, database_url, schema=SCHEMA, migrations_dir=MIGRATIONS)
        spec = build_spec(settings)
        rt = Runtime(spec)
        await rt.start()
        app = build_app(spec, runtime=rt)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://notifier"
        )
        publisher = Publisher(stack.kafka_bootstrap, client_id=unique_name("notifier-test"))
        await publisher.start()
        n = Notifier(rt, client, publisher, notifier_topics, settings)
        started.append(n)
        return n

    yield start
    for n in started:
        await n.client.aclose()
        await n.publisher.stop()
        await n.rt.stop()


def subprocess_env(settings: NotifierSettings, suffix: str) -> dict[str, str]:
    """Environment for `thrive-notifier` as a separate process with exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THRIVE_NOTIFIER_")}
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            SUFFIX_ENV: suffix,
            "LOG_JSON": "false",
            "THRIVE_NOTIFIER_PORT": str(free_port()),
        }
    )
    for name in NotifierSettings.model_fields:
        if name in CommonSettings.model_fields:
            continue
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        env[f"THRIVE_NOTIFIER_{name.upper()}"] = str(value)
    return env


@pytest.fixture
def make_settings(stack: Any, database_url: str) -> Any:
    """`make_settings(**overrides)` -> test settings for this test's database."""
    return lambda **overrides: notifier_settings(database_url, stack.kafka_bootstrap, **overrides)


@pytest.fixture
def notifier_cli() -> Any:
    """`notifier_cli(notifier, *args)` runs `thrive-notifier ARGS` against its database."""

    def run(n: Notifier, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "thrive_notifier", *args],
            env=subprocess_env(n.settings, n.topics.suffix),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture
def spawn_notifier(tmp_path: Any) -> Any:
    """`spawn_notifier(settings, suffix)` -> `thrive-notifier serve` as its own process."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(settings: NotifierSettings, suffix: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"notifier-{len(procs)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "thrive_notifier", "serve"],
            env=subprocess_env(settings, suffix),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
