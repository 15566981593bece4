"""Ingest throughput through the real pipeline vs raw-asyncpg baselines, in the same run.

Two baselines, same messages, same concurrency, into copies of the tables (indexes and defaults,
no foreign keys):
- `same_rows_baseline_run` (SPEC §4, "the raw baseline of inserting the same rows"): per message,
  one transaction of plain INSERTs writing the rows the pipeline writes for it (customer and
  identity for a new sender; ticket, SLA clocks, routing log, ack outbox item and ack message for a
  new ticket; the message and its events; the ticket update for a follow-up) — storage without
  lookups, locks or decisions. The pipeline's target ratio is against this one.
- `message_rows_baseline_run`: one autocommit INSERT of the bare message row per message — the
  floor of durably storing anything, reported for context.

Each run also reports the CPU milliseconds per message of this process (the pipeline runs in it)
and of the PostgreSQL server (`bench.cpu`): on a shared 2-core machine they hold steady while the
rates swing with whatever else runs.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from bench import cpu
from router.config import Config
from router.core.inbound import InboundMessage, email_identity
from router.core.pipeline import Pipeline

SAMPLES = [
    ("My invoice shows the wrong amount, please refund the difference", "Invoice problem"),
    ("The app crashes with an error when I try to login", "Login error"),
    ("Where is my delivery? The tracking number does not work", None),
    ("請求書の金額が間違っています。返金をお願いします。", "ご請求について"),
    ("ログインするとエラーが表示されます。至急対応してください。", None),
    ("注文した商品が届かないのですが、配送状況を教えてください。", "配送について"),
    ("Just a question about your opening hours", None),
]


WARMUP = 200


@dataclass(frozen=True)
class Run:
    count: int
    seconds: float
    latencies_ms: list[float]
    cpu_ms: dict[str, float]  # "router" (this process), "postgres": CPU ms over the timed part, all messages

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def make_messages(n: int, customers: int, seed: int = 7) -> list[InboundMessage]:
    rng = random.Random(seed)
    messages = []
    for i in range(n):
        customer = rng.randrange(customers)
        text, subject = rng.choice(SAMPLES)
        messages.append(InboundMessage(
            channel=rng.choice(["api", "web", "email"]),
            identities=(email_identity(f"customer{customer}@bench.example"),),
            text=f"{text} (#{i})", subject=subject, external_id=f"bench-{i}-{uuid.uuid4().hex[:8]}",
            sender_name=f"Customer {customer}"))
    return messages


async def _timed(pool: asyncpg.Pool, concurrency: int, jobs: list, run_one, warmup: int = WARMUP) -> Run:
    """Run `jobs` with `concurrency` workers; the first `warmup` jobs are not timed, so every
    measurement starts with warm connections (prepared statements, catalog caches)."""
    async def drain(batch: list, latencies: list[float]) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        for job in batch:
            queue.put_nowait(job)

        async def worker() -> None:
            while not queue.empty():
                job = queue.get_nowait()
                started = time.perf_counter()
                await run_one(job)
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await drain(jobs[:warmup], [])
    async with pool.acquire() as conn:
        postmaster = cpu.postmaster_of_backend(await conn.fetchval("SELECT pg_backend_pid()"))
    latencies: list[float] = []
    before = cpu.snapshot(router=os.getpid(), postgres=postmaster)
    await drain(jobs[warmup:], latencies)
    after = cpu.snapshot(router=os.getpid(), postgres=postmaster)
    return Run(len(jobs) - warmup, after.wall - before.wall, latencies,
               {label: after.cpu_ms[label] - before.cpu_ms[label] for label in before.cpu_ms})


async def pipeline_run(pool: asyncpg.Pool, config: Config, messages: list[InboundMessage],
                       concurrency: int) -> Run:
    pipeline = Pipeline(config)
    return await _timed(pool, concurrency, messages, lambda m: pipeline.ingest(pool, m))


BASELINE_TABLES = ("customers", "customer_identities", "tickets", "messages", "events", "routing_log",
                   "sla_targets", "outbox")


async def _with_copies(pool: asyncpg.Pool, run) -> Run:
    async with pool.acquire() as conn:
        for table in BASELINE_TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS bench_{table}")
            await conn.execute(f"CREATE TABLE bench_{table} (LIKE {table} INCLUDING ALL)")
    try:
        return await run()
    finally:
        async with pool.acquire() as conn:
            for table in BASELINE_TABLES:
                await conn.execute(f"DROP TABLE bench_{table}")


async def message_rows_baseline_run(pool: asyncpg.Pool, messages: list[InboundMessage], concurrency: int) -> Run:
    async def insert(message: InboundMessage) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO bench_messages (ticket_id, customer_id, channel, direction, external_id,"
                " sender_name, subject, body_text, metadata) VALUES (1, 1, $1, 'in', $2, $3, $4, $5, '{}')",
                message.channel, message.external_id, message.sender_name, message.subject, message.text)

    return await _with_copies(pool, lambda: _timed(pool, concurrency, messages, insert))


async def same_rows_baseline_run(pool: asyncpg.Pool, messages: list[InboundMessage], concurrency: int) -> Run:
    """Per message, the pipeline's rows as plain INSERTs in one transaction (see module docstring)."""
    owners: dict[str, int] = {}
    jobs = []
    for number, message in enumerate(messages, start=1):
        owner = owners.setdefault(message.identities[0].key, number)  # customer and ticket id: first message
        jobs.append((number, owner, message))
    now = datetime.now(UTC)

    async def event(conn: asyncpg.Connection, ticket: int, kind: str) -> None:
        await conn.execute("INSERT INTO bench_events (ticket_id, kind, payload) VALUES ($1, $2, '{}')", ticket, kind)

    async def insert(job: tuple[int, int, InboundMessage]) -> None:
        number, ticket, message = job
        new = number == ticket
        async with pool.acquire() as conn, conn.transaction():
            if new:
                await conn.execute("INSERT INTO bench_customers (id, name, created_at) OVERRIDING SYSTEM VALUE"
                                   " VALUES ($1, $2, $3)", ticket, message.sender_name, now)
                await conn.execute(
                    "INSERT INTO bench_customer_identities (customer_id, kind, value) VALUES ($1, $2, $3)",
                    ticket, message.identities[0].kind, message.identities[0].value)
                await conn.execute(
                    "INSERT INTO bench_tickets (id, number, customer_id, channel, subject, priority, language,"
                    " created_at, updated_at) OVERRIDING SYSTEM VALUE"
                    " VALUES ($1, $1, $1, $2, $3, 'normal', 'en', $4, $4)",
                    ticket, message.channel, message.subject, now)
                await event(conn, ticket, "ticket.created")
            else:
                await conn.execute("UPDATE bench_tickets SET updated_at = $2, last_customer_message_at = $2"
                                   " WHERE id = $1", ticket, now)
            await conn.execute(
                "INSERT INTO bench_messages (ticket_id, customer_id, channel, direction, external_id,"
                " sender_name, subject, body_text, metadata) VALUES ($1, $1, $2, 'in', $3, $4, $5, $6, '{}')",
                ticket, message.channel, message.external_id, message.sender_name, message.subject, message.text)
            await event(conn, ticket, "message.received")
            if new:
                await conn.execute(
                    "INSERT INTO bench_routing_log (ticket_id, action, reason) VALUES ($1, 'assigned', 'x')", ticket)
                await event(conn, ticket, "ticket.assigned")
                for target in ("first_response", "resolution"):
                    await conn.execute(
                        "INSERT INTO bench_sla_targets (ticket_id, target, policy, started_at, warn_at, due_at)"
                        " VALUES ($1, $2, 'normal', $3, $3, $3)", ticket, target, now)
                await conn.execute(
                    "INSERT INTO bench_outbox (idempotency_key, kind, channel, ticket_id, payload)"
                    " VALUES ($1, 'ack', 'email', $2, '{}')", f"ack:{ticket}", ticket)
                await conn.execute(
                    "INSERT INTO bench_messages (ticket_id, channel, direction, external_id, body_text)"
                    " VALUES ($1, 'email', 'out', $2, 'ack')", ticket, f"ack-{ticket}")
                await event(conn, ticket, "message.sent")

    return await _with_copies(pool, lambda: _timed(pool, concurrency, jobs, insert))


def merged(runs: list[Run]) -> Run:
    """Several rounds as one: all messages over all the time they took, every latency."""
    return Run(sum(r.count for r in runs), sum(r.seconds for r in runs), [x for r in runs for x in r.latencies_ms],
               {label: sum(r.cpu_ms[label] for r in runs) for label in runs[0].cpu_ms})


def summarize(name: str, run: Run) -> dict[str, object]:
    return {"benchmark": name, "count": run.count, "per_second": round(run.rate, 1),
            "p50_ms": round(statistics.median(run.latencies_ms), 2), "p99_ms": round(run.percentile(99), 2),
            "cpu_ms_per_msg": " + ".join(f"{label} {ms / run.count:.2f}" for label, ms in run.cpu_ms.items())}
