"""Queries that must stay fast with 1,000,000 tickets: the SLA monitor's scan and the inbox list.

The data is generated inside PostgreSQL (generate_series) so filling a million tickets takes
seconds; the shapes follow production: most tickets solved long ago, ~10 % open with running SLA
clocks, a few hundred crossing their warning or due time right now.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import asyncpg
import httpx

from router.app import create_app
from router.config import Config
from router.core.clock import ManualClock
from sla import monitor

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


async def fill(pool: asyncpg.Pool, tickets: int) -> None:
    customers = tickets // 4
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute(
            "INSERT INTO customers (name, created_at) SELECT 'Customer ' || g, $1::timestamptz - interval '400 days'"
            " FROM generate_series(1, $2) g", NOW, customers)
        await conn.execute(
            "INSERT INTO tickets (customer_id, status, priority, channel, subject, language, team_id, assignee_id,"
            " created_at, updated_at)"
            " SELECT 1 + (g % $2), CASE WHEN g % 10 = 0 THEN 'open' WHEN g % 10 = 1 THEN 'pending' ELSE 'solved' END,"
            " (ARRAY['low', 'normal', 'normal', 'high', 'urgent'])[1 + g % 5],"
            " (ARRAY['email', 'web', 'api'])[1 + g % 3],"
            " 'Question ' || g, CASE WHEN g % 3 = 0 THEN 'en' ELSE 'ja' END, 1,"
            " CASE WHEN g % 7 = 0 THEN NULL ELSE 1 + g % 3 END,"
            " $1::timestamptz - (g || ' minutes')::interval, $1::timestamptz - (g || ' seconds')::interval"
            " FROM generate_series(1, $3) g", NOW, customers, tickets)
        # Running clocks for open tickets: due times spread over the next days; ~300 cross now.
        await conn.execute(
            "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at)"
            " SELECT id, target, 'normal', created_at,"
            " $1::timestamptz + ((id % 200000) - 150 || ' minutes')::interval,"
            " $1::timestamptz + ((id % 200000) - 100 || ' minutes')::interval"
            " FROM tickets, unnest(ARRAY['first_response', 'resolution']) AS target WHERE status = 'open'", NOW)
        await conn.execute(
            "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at, met_at)"
            " SELECT id, 'first_response', 'normal', created_at, created_at, created_at, created_at"
            " FROM tickets WHERE status = 'solved'")
        await conn.execute("ANALYZE")
        await conn.execute("RESET maintenance_work_mem")  # pooled connections keep no session state


async def sla_scan_run(pool: asyncpg.Pool, config: Config, rounds: int = 30) -> dict[str, float]:
    """Time one monitor scan, rolled back each round so every round does the same work."""
    timings = []
    fired = 0
    async with pool.acquire() as conn:
        for _ in range(rounds):
            transaction = conn.transaction()
            await transaction.start()
            started = time.perf_counter()
            fired = len(await monitor.scan(conn, NOW, alerts=False, ref_prefix="T-"))
            timings.append((time.perf_counter() - started) * 1000)
            await transaction.rollback()
    return _summary(timings) | {"events_per_scan": fired}


async def inbox_list_run(pool: asyncpg.Pool, config: Config, token: str, rounds: int = 100) -> dict[str, float]:
    """Inbox list pages through the real HTTP handler (first pages and the next keyset page)."""
    app = create_app(config, pool=pool, clock=ManualClock(NOW))
    timings = []
    queries = [{"limit": "50"}, {"status": "open", "limit": "50"}, {"assignee": "2", "status": "open,pending"},
               {"assignee": "none", "status": "open"}, {"team": "support", "limit": "50"}]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for i in range(rounds):
            params = dict(queries[i % len(queries)])
            started = time.perf_counter()
            page = (await client.get("/api/v1/tickets", params=params, headers=headers)).json()
            timings.append((time.perf_counter() - started) * 1000)
            if page.get("next_cursor"):
                started = time.perf_counter()
                await client.get("/api/v1/tickets", params={**params, "cursor": page["next_cursor"]},
                                 headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
    return _summary(timings)


def _summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)}
