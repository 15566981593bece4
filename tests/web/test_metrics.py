"""`/metrics`: who may scrape it (SPEC §3: `ROUTER_METRICS_TOKEN`, else loopback clients only), and
what a scrape costs: never a count of a whole table, however many tickets and sent items there are."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from router import db, metrics
from router.app import create_app
from router.config import demo_config_text, parse_config
from tests.conftest import make_settings

TICKETS = 50_000
SENT = 50_000


def client_for(app, address: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://router.test")


@pytest.mark.parametrize("address", ["203.0.113.9", "10.0.0.2", "::ffff:192.0.2.1"])
async def test_without_a_token_metrics_answer_loopback_clients_only(app, address) -> None:
    async with client_for(app, address) as client:
        refused = await client.get("/metrics")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    for loopback in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        async with client_for(app, loopback) as client:
            assert (await client.get("/metrics")).status_code == 200, loopback


async def test_with_a_token_metrics_need_it_from_everyone(data_dir, pool, clock) -> None:
    settings = make_settings(data_dir, metrics_token="scrape-secret")
    app = create_app(parse_config(demo_config_text(), settings), pool=pool, clock=clock)
    for address in ("127.0.0.1", "203.0.113.9"):
        async with client_for(app, address) as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-secret"}):
                refused = await client.get("/metrics", headers=headers)
                assert refused.status_code == 401, (address, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert refused.json()["error"] == "unauthorized"
            scraped = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
            assert scraped.status_code == 200 and "router_outbox_items" in scraped.text


@pytest.fixture
async def logged_pool(database: str) -> AsyncIterator[tuple[asyncpg.Pool, list[tuple[str, tuple]]]]:
    """A one-connection pool recording every statement it runs; the setup timeout, since the tests' bulk
    fills are not requests (a loaded machine took over 30 s for one)."""
    pool = await db.create_pool(database, min_size=1, max_size=1, command_timeout=db.SETUP_TIMEOUT)
    statements: list[tuple[str, tuple]] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append((record.query, record.args)))
    yield pool, statements
    await pool.close()


def rows_visited(plan: dict, tables: set[str]) -> int:
    """Rows (or index entries) the plan's scans of `tables` read, including those a filter dropped."""
    visited = 0
    if plan.get("Relation Name") in tables:
        visited += (plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"]
    return visited + sum(rows_visited(child, tables) for child in plan.get("Plans", []))


async def test_a_scrape_reads_no_whole_table(logged_pool, config, clock) -> None:
    pool, statements = logged_pool
    async with pool.acquire() as conn:
        customer = await conn.fetchval("INSERT INTO customers (name) VALUES ('bulk') RETURNING id")
        # Years of history (solved and closed tickets, sent items) and a little current work: 20 tickets
        # in the queue, 5 outbox items waiting, 2 being sent, 3 given up on.
        await conn.execute(
            "INSERT INTO tickets (customer_id, channel, status) SELECT $1, 'email', "
            "CASE WHEN i % 2 = 0 THEN 'closed' ELSE 'solved' END FROM generate_series(1, $2) AS i",
            customer, TICKETS)
        await conn.execute("INSERT INTO tickets (customer_id, channel) SELECT $1, 'api' FROM generate_series(1, 20)",
                           customer)
        await conn.execute(
            "INSERT INTO outbox (idempotency_key, kind, channel, payload, status, sent_at) "
            "SELECT 'bulk-' || i, 'ack', 'email', '{}', "
            "CASE WHEN i <= $2 THEN 'sent' WHEN i <= $2 + 5 THEN 'pending' WHEN i <= $2 + 7 THEN 'sending' "
            "ELSE 'dead' END, CASE WHEN i <= $2 THEN now() END FROM generate_series(1, $1) AS i",
            SENT + 10, SENT)
        await conn.execute("ANALYZE tickets, outbox")  # what autovacuum does after such a load
    statements.clear()

    async with client_for(create_app(config, pool=pool, clock=clock)) as client:
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert "router_queued_tickets 20.0" in scraped.text
    assert 'router_outbox_items{status="pending"} 5.0' in scraped.text
    assert 'router_outbox_items{status="sending"} 2.0' in scraped.text
    assert 'router_outbox_items{status="dead"} 3.0' in scraped.text

    scrape = list(statements)
    assert scrape, "the scrape ran no statement through the pool"
    async with pool.acquire() as conn:
        for query, args in scrape:
            [explained] = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
            visited = rows_visited(explained["Plan"], {"tickets", "outbox"})
            assert visited <= 100, f"{visited} rows read by {query!r}:\n{explained['Plan']}"


async def test_a_backlog_is_counted_up_to_the_cap_at_the_cost_of_the_cap(logged_pool, config, clock,
                                                                         monkeypatch) -> None:
    """A relay down for a day leaves every ack pending, and dead items pile up unread: the scrape still
    reads at most the cap of each, and says "at least the cap"."""
    monkeypatch.setattr(metrics, "OUTBOX_COUNT_CAP", 40)
    pool, statements = logged_pool
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (idempotency_key, kind, channel, payload, status) "
            "SELECT 'backlog-' || i, 'ack', 'email', '{}', CASE WHEN i % 2 = 0 THEN 'pending' ELSE 'dead' END "
            "FROM generate_series(1, 4000) AS i")
        await conn.execute("ANALYZE outbox")
    statements.clear()

    async with client_for(create_app(config, pool=pool, clock=clock)) as client:
        scraped = await client.get("/metrics")
    assert 'router_outbox_items{status="pending"} 40.0' in scraped.text
    assert 'router_outbox_items{status="dead"} 40.0' in scraped.text
    assert "Counted up to 40 each" in scraped.text
    async with pool.acquire() as conn:
        for query, args in statements:
            [explained] = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
            visited = rows_visited(explained["Plan"], {"tickets", "outbox"})
            assert visited <= 3 * 40, f"{visited} rows read by {query!r}:\n{explained['Plan']}"
