"""Ingest throughput through the real pipeline vs a raw-asyncpg baseline, in the same run.

The baseline inserts the same number of message rows (same columns, one autocommit INSERT each,
same concurrency) into a copy of the `messages` table without foreign keys: the cost of durably
storing the bare rows, which the pipeline's ratio is measured against (SPEC §4).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg

from router.config import Config
from router.inbound import InboundMessage, email_identity
from router.pipeline import Pipeline

SAMPLES = [
    ("My invoice shows the wrong amount, please refund the difference", "Invoice problem"),
    ("The app crashes with an error when I try to login", "Login error"),
    ("Where is my delivery? The tracking number does not work", None),
    ("請求書の金額が間違っています。返金をお願いします。", "ご請求について"),
    ("ログインするとエラーが表示されます。至急対応してください。", None),
    ("注文した商品が届かないのですが、配送状況を教えてください。", "配送について"),
    ("Just a question about your opening hours", None),
]


@dataclass(frozen=True)
class Run:
    count: int
    seconds: float
    latencies_ms: list[float]

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


async def _timed(concurrency: int, jobs: list, run_one) -> Run:
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            started = time.perf_counter()
            await run_one(job)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(len(jobs), time.perf_counter() - started, latencies)


async def pipeline_run(pool: asyncpg.Pool, config: Config, messages: list[InboundMessage],
                       concurrency: int) -> Run:
    pipeline = Pipeline(config)
    return await _timed(concurrency, messages, lambda m: pipeline.ingest(pool, m))


async def baseline_run(pool: asyncpg.Pool, messages: list[InboundMessage], concurrency: int) -> Run:
    async with pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_baseline_messages")
        await conn.execute("CREATE TABLE bench_baseline_messages (LIKE messages INCLUDING DEFAULTS INCLUDING INDEXES)")

    async def insert(message: InboundMessage) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO bench_baseline_messages (ticket_id, customer_id, channel, direction, external_id,"
                " sender_name, subject, body_text, metadata) VALUES (1, 1, $1, 'in', $2, $3, $4, $5, '{}')",
                message.channel, message.external_id, message.sender_name, message.subject, message.text)

    try:
        return await _timed(concurrency, messages, insert)
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DROP TABLE bench_baseline_messages")


def summarize(name: str, run: Run) -> dict[str, object]:
    return {"benchmark": name, "count": run.count, "per_second": round(run.rate, 1),
            "p50_ms": round(statistics.median(run.latencies_ms), 2), "p99_ms": round(run.percentile(99), 2)}
