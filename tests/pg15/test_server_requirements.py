"""`migrate` names what the server lacks (a too old PostgreSQL, a missing extension) before applying
anything, and our DSN parameter for PgBouncer reaches asyncpg."""

from __future__ import annotations

import asyncpg
import pytest

from router import db
from tests.test_migrations import connected, fresh_database

MIGRATIONS = [(1, "0001_base.sql", "CREATE TABLE kept (id int);"),
              (2, "0002_search.sql", "-- CREATE EXTENSION commented_out;\n"
                                     "CREATE EXTENSION IF NOT EXISTS pg_trgm;\n"
                                     'CREATE EXTENSION "router_no_such_extension";\n'
                                     "CREATE TABLE later (id int);")]


def test_required_extensions_are_read_from_the_migrations_sql():
    assert db.required_extensions(sql for _, _, sql in MIGRATIONS) == ["pg_trgm", "router_no_such_extension"]


def test_the_bundled_schema_needs_no_extension():
    """The README's list of required extensions ("none") is this; a migration that adds one must
    also add it to the README and to `db.EXTENSION_PACKAGES` if it comes from -contrib."""
    needed = db.required_extensions(sql for _, _, sql in db.migration_files())
    assert [name for name in needed if name not in db.EXTENSION_PACKAGES] == []
    assert needed == []


async def test_a_missing_extension_is_named_with_how_to_install_it_and_nothing_is_applied(pg_server, monkeypatch):
    monkeypatch.setattr(db, "migration_files", lambda: MIGRATIONS)
    async with fresh_database(pg_server) as dsn, connected(dsn) as conn:
        with pytest.raises(db.UnsuitableServer) as raised:
            await db.migrate(conn)
        message = str(raised.value)
        assert "router_no_such_extension is not available on this server" in message
        assert "install the package that provides it" in message
        assert "pg_trgm" not in message  # available on every server the suite runs on
        assert await conn.fetchval("SELECT to_regclass('kept')") is None  # not even the migration before


async def test_a_missing_contrib_extension_names_the_package(pg_server, monkeypatch):
    monkeypatch.setattr(db, "EXTENSION_PACKAGES", {"router_no_such_extension": "postgresql-contrib"})
    async with fresh_database(pg_server) as dsn, connected(dsn) as conn:
        with pytest.raises(db.UnsuitableServer, match="router_no_such_extension is not available on this server: "
                                                       "install postgresql-contrib"):
            await db.check_server(conn, ["CREATE EXTENSION router_no_such_extension;"])


async def test_an_available_extension_passes_and_is_created(pg_server, monkeypatch):
    search = (2, "0002_search.sql", "CREATE EXTENSION IF NOT EXISTS pg_trgm;")
    monkeypatch.setattr(db, "migration_files", lambda: [MIGRATIONS[0], search])
    async with fresh_database(pg_server) as dsn, connected(dsn) as conn:
        assert await db.migrate(conn) == ["0001_base.sql", "0002_search.sql"]
        assert await conn.fetchval("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'") == "pg_trgm"


async def test_a_server_older_than_14_is_refused(pg_server):
    class Pg13:
        async def fetchval(self, query: str, *args: object, **kwargs: object) -> str:
            return "130016" if "server_version_num" in query else "13.16"

    with pytest.raises(db.UnsuitableServer, match=r"PostgreSQL 13\.16 is too old: the router needs PostgreSQL 14"):
        await db.check_server(Pg13(), [])  # type: ignore[arg-type]


async def test_the_suites_server_is_14_or_later(pg_server):
    async with connected(pg_server) as conn:
        await db.check_server(conn, [])
        assert int(await conn.fetchval("SHOW server_version_num")) >= 140000


def test_the_statement_cache_parameter_is_taken_out_of_the_dsn():
    plain, options = db.connect_options("postgresql://app@bouncer:6432/router?prepared_statement_cache_size=0"
                                        "&sslmode=require")
    assert (plain, options) == ("postgresql://app@bouncer:6432/router?sslmode=require", {"statement_cache_size": 0})
    assert db.connect_options("postgresql://app@/router?host=/run/pg") == ("postgresql://app@/router?host=/run/pg", {})
    with pytest.raises(ValueError, match="expected a number"):
        db.connect_options("postgresql://app@db/router?prepared_statement_cache_size=off")


async def test_the_pool_and_connect_turn_the_statement_cache_off_when_asked(database):
    pool = await db.create_pool(database + ("&" if "?" in database else "?") + "prepared_statement_cache_size=0",
                                min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT $1::int", 1)
            assert conn._stmt_cache.get_max_size() == 0
            assert await conn.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0
    finally:
        await pool.close()
    conn = await db.connect(database)
    try:
        await conn.fetchval("SELECT $1::int", 1)
        assert await conn.fetchval("SELECT count(*) FROM pg_prepared_statements") > 0  # the default: cached
    finally:
        await conn.close()
    assert isinstance(conn, asyncpg.Connection)
