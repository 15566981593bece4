"""Migrations on the real PostgreSQL: a brand-new database gets every bundled migration once and in
order, also when two processes migrate it at the same time, and ends up with exactly the schema of
the template database every other test is cloned from."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from router import db
from tests.conftest import dsn_for

USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema')"
    r" AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'"
)

# Each query reads one kind of schema object from the catalogs; rows are compared as sets, so the
# description does not depend on catalog order. Nothing that depends on the rows in the tables
# (sequence positions, statistics) is read.
SCHEMA_QUERIES = {
    "schemas": f"SELECT n.nspname FROM pg_namespace n WHERE {USER_SCHEMAS}",
    "extensions": "SELECT extname, extversion FROM pg_extension",
    "relations": f"""
        SELECT n.nspname, c.relname, c.relkind, c.relpersistence, pg_get_userbyid(c.relowner),
               c.relacl::text, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')""",
    "columns": f"""
        SELECT n.nspname, c.relname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
               a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               a.attcollation::regcollation::text, col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE {USER_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "indexes": f"""
        SELECT i.schemaname, i.tablename, i.indexname, i.indexdef
        FROM pg_indexes i JOIN pg_namespace n ON n.nspname = i.schemaname
        WHERE {USER_SCHEMAS}""",
    "constraints": f"""
        SELECT n.nspname, con.conrelid::regclass::text, con.contypid::regtype::text, con.conname,
               con.contype, pg_get_constraintdef(con.oid)
        FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
        WHERE {USER_SCHEMAS}""",
    "sequences": f"""
        SELECT s.schemaname, s.sequencename, s.data_type::text, s.start_value, s.min_value, s.max_value,
               s.increment_by, s.cycle, s.cache_size, owner.refobjid::regclass::text, col.attname
        FROM pg_sequences s
        JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
        LEFT JOIN pg_depend owner ON owner.classid = 'pg_class'::regclass AND owner.objid = c.oid
             AND owner.refclassid = 'pg_class'::regclass AND owner.deptype IN ('a', 'i')
        LEFT JOIN pg_attribute col ON col.attrelid = owner.refobjid AND col.attnum = owner.refobjsubid
        WHERE {USER_SCHEMAS}""",
    "views": f"""
        SELECT n.nspname, c.relname, pg_get_viewdef(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS} AND c.relkind IN ('v', 'm')""",
    "triggers": f"""
        SELECT n.nspname, t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS} AND NOT t.tgisinternal""",
    "functions": f"""
        SELECT n.nspname, p.oid::regprocedure::text, p.prokind, pg_get_function_result(p.oid), p.prosrc
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {USER_SCHEMAS}""",
    "types": f"""
        SELECT n.nspname, t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
               array(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {USER_SCHEMAS} AND t.typtype IN ('d', 'e', 'r', 'm')""",
}


def bundled_names() -> list[str]:
    return [name for _, name, _ in db.migration_files()]


Schema = dict[str, list[tuple[Any, ...]]]


async def describe_schema(conn: asyncpg.Connection) -> Schema:
    """A normalised description of everything in the database but its data, read from the catalogs."""
    return {kind: sorted((tuple(_hashable(v) for v in row) for row in await conn.fetch(sql)), key=repr)
            for kind, sql in SCHEMA_QUERIES.items()}


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def schema_differences(expected: Schema, actual: Schema) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Per kind of object, the rows only `expected` has and the rows only `actual` has: {} when equal."""
    differences = {}
    for kind in expected.keys() | actual.keys():
        want, got = expected.get(kind, []), actual.get(kind, [])
        if want != got:
            differences[kind] = {"missing": sorted(set(want) - set(got), key=repr),
                                 "unexpected": sorted(set(got) - set(want), key=repr)}
    return differences


@contextlib.asynccontextmanager
async def fresh_database(pg_server: str) -> AsyncIterator[str]:
    """A brand-new empty database on the test server (from template0: nothing of the tests'
    template in it), dropped afterwards even if sessions are still connected."""
    name = f"migrations_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    finally:
        await admin.close()
    try:
        yield dsn_for(pg_server, name)
    finally:
        admin = await asyncpg.connect(pg_server)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def migrated_schema(pg_server: str) -> Schema:
    """The schema that one `migrate` on an empty database produces."""
    async with fresh_database(pg_server) as dsn, connected(dsn) as conn:
        await db.migrate(conn)
        return await describe_schema(conn)


def test_bundled_migrations_are_numbered_once_each():
    versions = [version for version, _, _ in db.migration_files()]
    assert versions, "no migrations are bundled"
    assert versions == sorted(set(versions)), versions
    assert [name for version, name, _ in db.migration_files() if not name.startswith(f"{version:04d}_")] == []


async def test_migrate_applies_every_migration_in_order_then_nothing(pg_server):
    async with fresh_database(pg_server) as dsn, connected(dsn) as conn:
        assert await db.migrate(conn) == bundled_names()
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in recorded] == [(v, n) for v, n, _ in db.migration_files()]
        first = await describe_schema(conn)
        assert {"public.tickets", "public.schema_migrations"} <= {f"{s}.{t}" for s, t, *_ in first["relations"]}

        assert await db.migrate(conn) == []
        assert schema_differences(first, await describe_schema(conn)) == {}
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(bundled_names())


async def test_concurrent_migrate_applies_once(pg_server):
    expected = await migrated_schema(pg_server)
    async with fresh_database(pg_server) as dsn, connected(dsn) as one, connected(dsn) as two:
        # return_exceptions: both calls finish before anything is asserted or closed
        results = await asyncio.gather(db.migrate(one), db.migrate(two), return_exceptions=True)
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert sorted(results, key=len) == [[], bundled_names()]
        held = await one.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()")
        assert held == 0, "migrate left an advisory lock held"
        assert schema_differences(expected, await describe_schema(one)) == {}


async def test_template_database_is_what_the_migrations_produce(pg_server, template_dsn):
    expected = await migrated_schema(pg_server)
    async with connected(template_dsn) as conn:  # read only; closed before the next test clones it
        template = await describe_schema(conn)
        recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert schema_differences(expected, template) == {}
    assert [(r["version"], r["name"]) for r in recorded] == [(v, n) for v, n, _ in db.migration_files()]


@pytest.mark.parametrize(("kind", "change"), [
    ("columns", "ALTER TABLE tickets ALTER COLUMN subject TYPE varchar(200)"),
    ("columns", "ALTER TABLE tickets ALTER COLUMN subject SET NOT NULL"),
    ("columns", "ALTER TABLE tickets ALTER COLUMN priority SET DEFAULT 'high'"),
    ("columns", "ALTER TABLE customers ADD COLUMN note text"),
    ("relations", "CREATE TABLE extra (id integer)"),
    ("indexes", "DROP INDEX tickets_queue"),
    ("indexes", "CREATE INDEX tickets_subject ON tickets (subject)"),
    ("constraints", "ALTER TABLE agents DROP CONSTRAINT agents_capacity_check"),
    ("constraints", "ALTER TABLE outbox ADD CHECK (attempts >= 0)"),
    ("sequences", "ALTER SEQUENCE ticket_number_seq START WITH 1"),
    ("views", "CREATE VIEW open_tickets AS SELECT id FROM tickets WHERE status = 'open'"),
    ("triggers", "CREATE TRIGGER same BEFORE UPDATE ON tickets"
                 " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()"),
    ("functions", "CREATE FUNCTION one() RETURNS integer LANGUAGE sql AS 'SELECT 1'"),
    ("types", "CREATE TYPE mood AS ENUM ('ok', 'sad')"),
])
async def test_schema_description_notices_a_change(pg_server, kind, change):
    """The comparison above can fail: each kind of schema difference shows in the description."""
    async with fresh_database(pg_server) as dsn, connected(dsn) as conn:
        await db.migrate(conn)
        before = await describe_schema(conn)
        await conn.execute(change)
        after = await describe_schema(conn)
    assert kind in schema_differences(before, after)
