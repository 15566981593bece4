"""Queries that must stay fast with 1,000,000 tickets and 3,000,000 messages: the SLA monitor's
scan, the inbox list (API), the inbox page (HTML) and search.

The data is generated inside PostgreSQL (generate_series), indexes built once after the bulk load,
so the fill takes minutes, not hours. The shapes follow production: most tickets solved long ago,
~10 % open with running SLA clocks, a few hundred crossing their warning or due time right now,
64 agents sharing the work; messages are Japanese (2/3) and English support text made of real
sentences (`bench.scale_text`), so a word like 返金 is in a few % of the tickets, with the search
terms `router.core.search` gives them.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench import scale_text
from router.app import create_app
from router.config import Config
from router.core.clock import ManualClock
from router.core.search import document_terms
from sla import monitor

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


BENCH_AGENTS = 60
"""Agents besides the demo ones: each has a realistic share of the open work (the Mine view)."""
SEARCH_EMAIL_CUSTOMER = 4242


async def fill(pool: asyncpg.Pool, tickets: int) -> None:
    """`tickets` tickets with three messages each (the customer's message, the agent's reply, the
    customer's follow-up) in Japanese (2/3) and English, with their search terms."""
    customers = tickets // 4
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        # Bulk load: no per-row foreign-key checks (the generated rows are consistent by construction).
        await conn.execute("SET session_replication_role = replica")
        await _load_text(conn)
        await conn.execute(
            "INSERT INTO agents (email, name, team_id, skills, languages, status)"
            " SELECT 'agent' || g || '@bench.example', 'Agent ' || g, 1, '{billing}', '{en,ja}', 'online'"
            " FROM generate_series(1, $1) g", BENCH_AGENTS)
        # Customer c writes in English when c % 3 = 0, else in Japanese; a fifth have a phone too.
        await conn.execute(
            "INSERT INTO customers (name, language, created_at) SELECT n.body, n.lang,"
            " $1::timestamptz - interval '400 days' FROM generate_series(1, $2) c"
            " JOIN bench_names n ON n.lang = CASE WHEN c % 3 = 0 THEN 'en' ELSE 'ja' END"
            " AND n.n = c % (SELECT count(*) FROM bench_names WHERE lang = 'ja') ORDER BY c", NOW, customers)
        await conn.execute(
            "INSERT INTO customer_identities (customer_id, kind, value)"
            " SELECT id, 'email', 'customer' || id || '@example.net' FROM customers"
            " UNION ALL SELECT id, 'phone', '+8190' || lpad(id::text, 8, '0') FROM customers WHERE id % 5 = 0")
        async with _indexes_built_after(conn, "tickets"):
            await _fill_tickets(conn, customers, tickets)
        await conn.execute("ANALYZE bench_sentences, bench_subjects, bench_names, customers, tickets")
        async with _indexes_built_after(conn, "messages"):
            await _fill_messages(conn)
        await conn.execute(
            "INSERT INTO ticket_reads (agent_id, ticket_id, read_at)"
            " SELECT assignee_id, id, updated_at FROM tickets WHERE assignee_id IS NOT NULL AND id % 2 = 0")
        await _fill_clocks(conn)
        await conn.execute("DROP TABLE bench_sentences, bench_subjects, bench_names")
        await conn.execute("RESET session_replication_role")
        # Vacuumed like autovacuum would have it (index-only scans need the visibility map); messages,
        # only read through their indexes, are just analysed (statistics of the search terms).
        await conn.execute("VACUUM (ANALYZE) tickets, customers, customer_identities, sla_targets, ticket_reads")
        await conn.execute("ANALYZE messages")
        await conn.execute("RESET maintenance_work_mem")  # pooled connections keep no session state


async def _fill_tickets(conn: asyncpg.Connection, customers: int, tickets: int) -> None:
    """Oldest first (id 1 is a year old); ~10 % open, ~10 % pending, the rest solved; most assigned."""
    workers = await conn.fetchval("SELECT array_agg(id ORDER BY id) FROM agents WHERE role = 'agent'")
    await conn.execute(
        "INSERT INTO tickets (customer_id, status, priority, channel, subject, language, team_id, assignee_id,"
        " created_at, updated_at, last_customer_message_at)"
        " SELECT c, CASE WHEN g % 10 = 0 THEN 'open' WHEN g % 10 = 1 THEN 'pending' ELSE 'solved' END,"
        " (ARRAY['low', 'normal', 'normal', 'high', 'urgent'])[1 + g % 5],"
        " (ARRAY['email', 'web', 'chat', 'line', 'api'])[1 + g % 5], s.body, s.lang, 1,"
        " CASE WHEN g % 7 = 0 THEN NULL ELSE ($4::bigint[])[1 + (g / 10) % cardinality($4::bigint[])] END,"
        " $1::timestamptz - (g || ' minutes')::interval, $1::timestamptz - (g || ' seconds')::interval,"
        " $1::timestamptz - (g || ' seconds')::interval"
        " FROM generate_series($3, 1, -1) g CROSS JOIN LATERAL (SELECT 1 + g % $2 AS c) pick"
        " JOIN bench_subjects s ON s.lang = CASE WHEN c % 3 = 0 THEN 'en' ELSE 'ja' END"
        " AND s.n = g % (SELECT count(*) FROM bench_subjects WHERE lang = 'en')",
        NOW, customers, tickets, workers)


async def _fill_clocks(conn: asyncpg.Connection) -> None:
    """Running clocks for open tickets: due times spread over the next days; ~300 cross now."""
    await conn.execute(
        "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at)"
        " SELECT id, target, 'normal', created_at,"
        " $1::timestamptz + ((id % 200000) - 150 || ' minutes')::interval,"
        " $1::timestamptz + ((id % 200000) - 100 || ' minutes')::interval"
        " FROM tickets, unnest(ARRAY['first_response', 'resolution']) AS target WHERE status = 'open'", NOW)
    await conn.execute(
        "INSERT INTO sla_targets (ticket_id, target, policy, started_at, warn_at, due_at, met_at)"
        " SELECT id, 'first_response', 'normal', created_at, created_at, created_at, created_at"
        " FROM tickets WHERE status = 'solved'")


@contextlib.asynccontextmanager
async def _indexes_built_after(conn: asyncpg.Connection, table: str) -> AsyncIterator[None]:
    """Bulk-load `table` without its secondary indexes and unique constraints, then build them once:
    many times faster than maintaining them row by row."""
    indexes = await conn.fetch(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i"
        " WHERE i.indrelid = $1::regclass AND NOT i.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", table)
    constraints = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'u'", table)
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['name']}")
    for constraint in constraints:
        await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint['conname']}")
    yield
    for constraint in constraints:
        await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {constraint['conname']} {constraint['definition']}")
    for index in indexes:
        await conn.execute(index["definition"])


async def _load_text(conn: asyncpg.Connection) -> None:
    """The sentences, subjects and names messages are made of, each with its search terms."""
    for table in ("bench_sentences", "bench_subjects", "bench_names"):
        await conn.execute(f"CREATE TABLE {table} (lang text, n int, body text, terms text[])")
    pieces = {
        "bench_sentences": [("ja", s) for s in scale_text.JA_SENTENCES] + [("en", s) for s in scale_text.EN_SENTENCES],
        "bench_subjects": [("ja", s) for s in scale_text.JA_SUBJECTS] + [("en", s) for s in scale_text.EN_SUBJECTS],
        "bench_names": scale_text.names(),
    }
    for table, rows in pieces.items():
        numbered = {lang: 0 for lang, _ in rows}
        records = []
        for lang, body in rows:
            terms = document_terms((), names=(body,)) if table == "bench_names" else document_terms((body,))
            records.append((lang, numbered[lang], body, terms))
            numbered[lang] += 1
        await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2, $3, $4)", records)


async def _fill_messages(conn: asyncpg.Connection) -> None:
    """Three messages per ticket. The customer's carry the terms `router.core.search` gives them (the
    sentences', the sender's name, address and phone, an order number; the first message also the
    ticket reference); the agent's reply carries none, as replies queued through the outbox."""
    count = await conn.fetchval("SELECT count(*) FROM bench_sentences WHERE lang = 'en'")
    await conn.execute(
        "INSERT INTO messages (ticket_id, customer_id, channel, direction, external_id, sender_name, subject,"
        " body_text, created_at, search_terms)"
        " SELECT t.id, t.customer_id, t.channel, CASE WHEN k = 2 THEN 'out' ELSE 'in' END,"
        "  'fill-' || t.id || '-' || k, CASE WHEN k = 2 THEN NULL ELSE c.name END,"
        "  CASE WHEN k = 1 THEN t.subject END,"
        "  CASE WHEN k = 2 THEN r.body ELSE a.body || sep || b.body || sep || sep || ord.body END,"
        "  t.created_at + (t.updated_at - t.created_at) * (k - 1) / 2,"
        "  CASE WHEN k = 2 THEN '{}'::text[] ELSE a.terms || b.terms || ord.terms || n.terms"
        "   || ARRAY['customer' || t.customer_id || '@example.net', 'customer' || t.customer_id, 'example', 'net']"
        "   || CASE WHEN t.customer_id % 5 = 0 THEN ARRAY['tel:' || lpad(t.customer_id::text, 8, '0'),"
        "      '8190' || lpad(t.customer_id::text, 8, '0')] ELSE '{}' END"
        "   || CASE WHEN k = 1 THEN ARRAY['t-' || t.number, t.number::text] || s.terms ELSE '{}' END END"
        " FROM tickets t JOIN customers c ON c.id = t.customer_id"
        " CROSS JOIN generate_series(1, 3) k"
        " CROSS JOIN LATERAL (SELECT CASE WHEN t.language = 'ja' THEN '' ELSE ' ' END AS sep,"
        "  (t.id * 7 + k * 13) % $1 AS i, (t.id * 11 + k * 29 + 5) % $1 AS j) pick"
        " JOIN bench_sentences a ON a.lang = t.language AND a.n = pick.i"
        " JOIN bench_sentences b ON b.lang = t.language AND b.n = pick.j"
        " JOIN bench_subjects s ON s.lang = t.language AND s.body = t.subject"
        " JOIN bench_names n ON n.lang = c.language AND n.body = c.name"
        " CROSS JOIN LATERAL (SELECT CASE WHEN t.language = 'ja' THEN '注文番号 A' ELSE 'Order A' END"
        "  || (t.id * 37 % 9000000 + 1000000) AS body,"
        "  CASE WHEN t.language = 'ja' THEN ARRAY['注文', '文番', '番号'] ELSE ARRAY['order'] END"
        "  || ('a' || (t.id * 37 % 9000000 + 1000000)) AS terms) ord"
        " CROSS JOIN (VALUES ('ja', $2::text), ('en', $3::text)) AS r(lang, body)"
        " WHERE r.lang = t.language",
        count, scale_text.REPLIES["ja"], scale_text.REPLIES["en"])


async def sla_scan_run(pool: asyncpg.Pool, config: Config, rounds: int = 30) -> dict[str, float]:
    """Time one monitor scan, rolled back each round so every round does the same work."""
    timings = []
    fired = 0
    async with pool.acquire() as conn:
        for _ in range(rounds):
            transaction = conn.transaction()
            await transaction.start()
            started = time.perf_counter()
            fired = len(await monitor.scan(conn, NOW, alerts=False, ref_prefix="T-", rules=config.sla))
            timings.append((time.perf_counter() - started) * 1000)
            await transaction.rollback()
    return _summary(timings) | {"events_per_scan": fired}


async def inbox_list_run(pool: asyncpg.Pool, config: Config, token: str, rounds: int = 100) -> dict[str, float]:
    """Inbox list pages through the real HTTP handler (first pages and the next keyset page)."""
    app = create_app(config, pool=pool, clock=ManualClock(NOW))
    timings = []
    queries = [{"limit": "50"}, {"status": "open", "limit": "50"}, {"assignee": "2", "status": "open,pending"},
               {"assignee": "none", "status": "open"}, {"team": "support", "limit": "50"}]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        for i in range(rounds):
            params = dict(queries[i % len(queries)])
            started = time.perf_counter()
            page = (await client.get("/api/v1/tickets", params=params, headers=headers)).json()
            timings.append((time.perf_counter() - started) * 1000)
            if page.get("next_cursor"):
                started = time.perf_counter()
                await client.get("/api/v1/tickets", params={**params, "cursor": page["next_cursor"]},
                                 headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
    return _summary(timings)


SEARCHES = {
    "Japanese two-character word (返金)": "返金",
    "frequent Japanese word (請求)": "請求",
    "email address": f"customer{SEARCH_EMAIL_CUSTOMER}@example.net",
    "ticket reference": "T-{middle}",
}
"""What agents search for, as typed into the top bar's search box (the page's All view)."""


@contextlib.asynccontextmanager
async def _signed_in_client(app: Any, email: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app (over ASGI) with `email`'s inbox session."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        response = await client.post("/login", data={"email": email, "password": "demo", "next": "/inbox"},
                                     headers={"Origin": "http://bench"})
        if response.status_code != 303:
            raise RuntimeError(f"bench sign-in failed: {response.status_code} {response.text[:200]}")
        yield client


async def _timed_pages(client: httpx.AsyncClient, path: str, params: dict[str, str], rounds: int) -> list[float]:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = await client.get(path, params=params)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
    return timings


async def inbox_page_run(pool: asyncpg.Pool, config: Config, rounds: int = 200) -> dict[str, float]:
    """The inbox page (HTML, Mine view: rows, view counts, filters) as the demo agent aiko gets it,
    through the real app; and the next page of the All view ("Load more")."""
    app = create_app(config, pool=pool, clock=ManualClock(NOW))
    async with _signed_in_client(app, "aiko@example.com") as client:
        await _timed_pages(client, "/inbox", {}, 20)  # warm: prepared statements, caches
        timings = await _timed_pages(client, "/inbox", {}, rounds)
        first = await client.get("/inbox", params={"view": "all"})
        cursor = first.text.split("cursor=", 1)[1].split('"', 1)[0]
        more = await _timed_pages(client, "/inbox/rows", {"view": "all", "cursor": cursor}, rounds // 4)
    return _summary(timings) | {"load_more_p99_ms": _summary(more)["p99_ms"]}


async def search_run(pool: asyncpg.Pool, config: Config, rounds: int = 100) -> dict[str, dict[str, float]]:
    """Search through the inbox page (`/inbox?q=…`), per kind of query: p50 and p99."""
    app = create_app(config, pool=pool, clock=ManualClock(NOW))
    async with pool.acquire() as conn:
        middle = await conn.fetchval("SELECT number FROM tickets ORDER BY id OFFSET (SELECT count(*) / 2 FROM tickets)"
                                     " LIMIT 1")
    results = {}
    async with _signed_in_client(app, "aiko@example.com") as client:
        for name, query in SEARCHES.items():
            params = {"q": query.format(middle=middle)}
            await _timed_pages(client, "/inbox", params, 5)
            results[name] = _summary(await _timed_pages(client, "/inbox", params, rounds))
    return results


def _summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)}
