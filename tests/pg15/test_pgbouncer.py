"""The service through PgBouncer in transaction pooling mode (ARCHITECTURE: nothing relies on session
state): ingest, the API, the outbox lease, live updates, migrations and two `router serve` processes,
with many client connections sharing two server connections, so that session state one transaction
left behind (a SET, a session advisory lock, a temporary table, a named prepared statement) would
surface in another client's transaction.

Debian's PgBouncer is 1.18, before PgBouncer tracked prepared statements (1.21,
`max_prepared_statements`): the DSN asks for `prepared_statement_cache_size=0` (router.db), which a
deployment on such a PgBouncer must do too. LISTEN does not pass through transaction pooling: the
chat's push is lost and its one-second poll delivers (the last test)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest

from router import db
from router.core.outbound import Dispatcher
from router.core.store import chat
from router.live import Batch, LiveHub
from router.web.chat_hub import ChatHub
from router.workers import senders_for
from tests import pgserver
from tests.chat.conftest import Visitor
from tests.conftest import ORIGIN, post_message, sign_in
from tests.e2e.helpers import API_TOKEN, Serve
from tests.e2e.test_email import mail, smtp_send
from tests.test_migrations import bundled_names, fresh_database
from tests.test_outbox import relay_config

# Skipped on a machine without PgBouncer, except in `make test-pg15`, whose job includes it.
pytestmark = pytest.mark.skipif(not pgserver.have_pgbouncer() and not os.environ.get("ROUTER_TEST_PG"),
                                reason="pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")

SERVER_CONNECTIONS = 2
"""Server connections PgBouncer opens per database: far fewer than the pool's clients."""
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bouncer(pg_server: str) -> Iterator[pgserver.Bouncer]:
    with pgserver.pgbouncer(pg_server, pool_size=SERVER_CONNECTIONS) as running:
        yield running


def through(bouncer: pgserver.Bouncer, dsn: str) -> str:
    """The DSN of the same database through PgBouncer, as a deployment on PgBouncer < 1.21 writes it."""
    return bouncer.dsn(urlparse(dsn).path.lstrip("/"), prepared_statement_cache_size="0")


@pytest.fixture
async def pool(database: str, bouncer: pgserver.Bouncer) -> AsyncIterator[asyncpg.Pool]:
    """The serving pool through PgBouncer (overrides conftest's: `app` and `client` use this one)."""
    pool = await db.create_pool(through(bouncer, database), min_size=1, max_size=10)
    yield pool
    await pool.close()


async def assert_no_session_state_left(database: str) -> None:
    """Seen from a direct connection: no backend of the database holds an advisory lock or sits in an
    open transaction, and no temporary table exists."""
    conn = await asyncpg.connect(database)
    try:
        locks = await conn.fetch("SELECT l.pid, l.objid, a.state FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                                 " WHERE l.locktype = 'advisory' AND l.pid <> pg_backend_pid()")
        assert locks == [], f"advisory locks held after the work: {locks}"
        assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relpersistence = 't'") == 0
        open_transactions = await conn.fetch(
            "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'")
        assert open_transactions == []
    finally:
        await conn.close()


async def test_ingest_and_the_agent_api_through_pgbouncer(client, auth, database):
    customers = [f"bounced{i}@customer.example" for i in range(12)]
    refs = await asyncio.gather(*(
        post_message(client, auth, f"My refund has not arrived ({n})", email=customers[n % 12],
                     external_id=f"bounced-{n}")
        for n in range(36)))
    assert len(set(refs)) == 12  # each customer's three messages in one ticket, whichever lands first
    assert all(refs[n] == refs[n % 12] for n in range(36))
    duplicate = await client.post("/api/v1/messages", headers=auth, json={
        "channel": "api", "sender": {"email": customers[0]}, "text": "again", "external_id": "bounced-0"})
    assert duplicate.json()["duplicate"] is True

    listing = await client.get("/api/v1/tickets", params={"limit": 50}, headers=auth)
    assert listing.status_code == 200, listing.text
    assert sorted(t["ref"] for t in listing.json()["tickets"]) == sorted(set(refs))
    ref = refs[0]
    answers = await asyncio.gather(
        client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Refunded today."}, headers=auth),
        client.post(f"/api/v1/tickets/{refs[1]}/notes", json={"text": "Checked the bank."}, headers=auth),
        client.post(f"/api/v1/tickets/{refs[2]}/assign", json={"agent": "ben@example.com"}, headers=auth),
        client.patch(f"/api/v1/tickets/{refs[3]}", json={"priority": "high"}, headers=auth))
    assert [answer.status_code < 300 for answer in answers] == [True] * 4, [a.text for a in answers]
    solved = await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    assert solved.status_code == 200, solved.text
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    assert detail["status"] == "solved"
    assert [m["direction"] for m in detail["messages"]].count("in") == 3
    csrf = await sign_in(client, "aiko@example.com")
    page = await client.get(f"/inbox/{refs[1]}")
    assert page.status_code == 200 and "Checked the bank." in page.text
    search = await client.get("/inbox", params={"q": "refund"})
    assert search.status_code == 200
    logged_out = await client.post("/logout", data={"csrf_token": csrf}, headers={"Origin": ORIGIN})
    assert logged_out.status_code < 400
    await assert_no_session_state_left(database)


async def test_the_outbox_lease_through_pgbouncer_delivers_each_item_once(client, auth, pool, config, clock, sink,
                                                                         database):
    for n in range(10):
        await post_message(client, auth, f"question {n}", email=f"lease{n}@customer.example")
    senders = senders_for(relay_config(config, sink.port))
    first, second = Dispatcher(pool, senders, clock), Dispatcher(pool, senders, clock)
    delivered = await asyncio.gather(first.run_once(), second.run_once(), first.run_once(), second.run_once())
    assert sum(delivered) == 10
    assert sorted(m["To"] for m in sink.messages) == sorted(f"lease{n}@customer.example" for n in range(10))
    await assert_no_session_state_left(database)


async def test_live_updates_follow_events_through_pgbouncer(client, auth, pool, clock):
    hub = LiveHub(poll_seconds=0.02, batch_seconds=0.02)
    async with hub.running(pool, clock):
        page = hub.subscribe(())
        ref = await post_message(client, auth, "Is anyone there?", email="live@customer.example")
        deadline = time.monotonic() + 10
        kinds: list[str] = []
        while "ticket.created" not in kinds and time.monotonic() < deadline:
            item = await asyncio.wait_for(page.next(), 10)
            if isinstance(item, Batch):
                kinds += [row.kind for row in item.rows]
        assert "ticket.created" in kinds, kinds
        assert ref.startswith("T-")


async def test_concurrent_migrations_through_pgbouncer_apply_once_and_leave_no_lock(pg_server, bouncer):
    async with fresh_database(pg_server) as dsn:
        connections = [await db.connect(through(bouncer, dsn)) for _ in range(3)]
        try:
            results = await asyncio.gather(*(db.migrate(conn) for conn in connections), return_exceptions=True)
            assert not [r for r in results if isinstance(r, BaseException)], results
            assert sorted(results, key=len) == [[], [], bundled_names()]
            assert await asyncio.wait_for(db.migrate(connections[0]), 30) == []  # no lock left behind
        finally:
            for conn in connections:
                await conn.close()
        await assert_no_session_state_left(dsn)


SESSION_STATE = re.compile(
    r"\bSET\s+(SESSION\s+)?(search_path|statement_timeout|lock_timeout|idle_in_transaction_session_timeout|work_mem"
    r"|timezone|time\s+zone|role|session\s+authorization|application_name|synchronous_commit|jit|enable_\w+)\b"
    r"|set_config\s*\([^)]*,\s*false\s*\)|pg_(try_)?advisory_lock(_shared)?\s*\(|CREATE\s+(TEMP|TEMPORARY)\b"
    r"|[\"']\s*LISTEN\b|add_listener\(|\.prepare\(\s*[\w\"']|DECLARE\s+\w+\s+(\w+\s+)*CURSOR", re.IGNORECASE)
ALLOWED = {
    "router/web/chat_hub.py": "one LISTEN connection per process for the chat's push; its one-second poll "
                              "delivers where LISTEN cannot pass (PgBouncer in transaction mode)",
}


def test_no_code_relies_on_session_state():
    """What PgBouncer's transaction pooling would break, found in the source: session settings,
    session advisory locks, temporary tables, LISTEN, named prepared statements, held cursors."""
    found = []
    for folder in ("router", "channels", "agents", "sla"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".py", ".sql") or "migrations" in path.parts:
                continue
            relative = path.relative_to(ROOT).as_posix()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0] if path.suffix == ".py" else line.split("--", 1)[0]
                if SESSION_STATE.search(code) and relative not in ALLOWED:
                    found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []


async def test_two_serve_processes_through_pgbouncer_and_chat_falls_back_to_its_poll(tmp_path, database, bouncer):
    """Two `router serve` processes with DATABASE_URL on PgBouncer: start-up (pool, migrate, config
    sync), mail through the SMTP intake, the API, and a chat widget on one process getting a reply
    written through the other. The LISTEN the chat hub takes never hears a notification through
    transaction pooling (PgBouncer drops them: "got packet 'A' from server when not linked"), so the
    entry comes by the one-second poll."""
    url = through(bouncer, database)
    servers = [Serve(tmp_path, database_url=url, name=name) for name in ("bounced-a", "bounced-b")]
    try:
        for serve in servers:
            serve.env["ROUTER_SECRET_KEY"] = "one key for every process of the service"
            serve.start()
        for serve in servers:
            serve.wait_ready()
        a, b = servers
        visitor = Visitor(f"ws://127.0.0.1:{b.http_port}/chat/ws")
        await visitor.open()
        await visitor.send({"type": "message", "id": "bounced-1", "text": "Hello through PgBouncer"})
        ref = (await visitor.until(lambda f: f["type"] == "sent"))["ref"]
        async with httpx.AsyncClient(base_url=a.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
            replied = await api.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Answered through A"})
            assert replied.status_code == 201, replied.text
            await visitor.until(lambda f: f["type"] == "entry" and f["text"] == "Answered through A", seconds=5)
            await smtp_send(b.smtp_port, mail("Taro <taro@customer.example>", "請求書について",
                                              "先月の請求書が届いていません。"))
            tickets = (await api.get("/api/v1/tickets", params={"limit": 5})).json()["tickets"]
            assert ref in [t["ref"] for t in tickets]
            assert "請求書について" in [t["subject"] for t in tickets]
        await visitor.close()
        for serve in servers:
            assert "Traceback" not in serve.log_tail(), serve.log_tail()
    finally:
        for serve in servers:
            serve.close()


async def test_the_chat_hub_listens_on_its_own_direct_connection_when_told(pool, database, clock):
    """Through PgBouncer the LISTEN on a pooled connection hears nothing; with `ROUTER_LISTEN_DATABASE_URL`
    (here: the database itself) the hub holds its LISTEN there and hears the commits of the pool's
    connections."""
    async def hears(listen_dsn: str | None) -> bool:
        heard = asyncio.Event()
        hub = ChatHub(pool, clock, messages_per_minute_per_ip=60, listen_dsn=listen_dsn)
        hub._notified = lambda *_: heard.set()  # type: ignore[method-assign]
        listening = asyncio.create_task(hub._listen())
        try:
            for _ in range(12):  # until the LISTEN is in place
                async with pool.acquire() as conn:
                    await conn.execute("SELECT pg_notify($1, '1:1')", chat.NOTIFY_CHANNEL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(heard.wait(), 0.25)
                    return True
            return False
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    assert await hears(database)
    assert not await hears(None)
