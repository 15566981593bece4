"""SMTP intake throughput: concurrent clients over real sockets, each `250` only after the commit.

The load generator runs in a separate process (as a real mail server would), so its CPU does not
count against the intake's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg

from channels.email.intake import start_server
from router.config import Config
from router.core.pipeline import Pipeline
from router.workers import smtp_intake_handler

SUBJECTS = ["請求について", "Login error", "配送が届かない", "Refund request", "お問い合わせ"]
BODIES = ["請求書の金額が間違っています。ご確認ください。", "I get an error when I try to login.",
          "注文した商品がまだ届きません。", "Please refund my last order.", "使い方を教えてください。"]


def _message(i: int, senders: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Customer {i % senders} <customer{i % senders}@mail.example>"
    message["To"] = "support@example.com"
    message["Subject"] = SUBJECTS[i % len(SUBJECTS)]
    message["Message-ID"] = f"<bench-{i}@mail.example>"
    message.set_content(BODIES[i % len(BODIES)], charset="iso-2022-jp" if i % 2 else "utf-8")
    return message


async def _client_load(port: int, count: int, clients: int, warmup: int) -> tuple[float, list[float]]:
    """`warmup` untimed messages first (warm connections on both sides), then `count` timed ones."""
    latencies: list[float] = []
    sessions = []
    for _ in range(clients):
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        await smtp.connect()
        sessions.append(smtp)

    async def send(smtp: aiosmtplib.SMTP, numbers, timings: list[float]) -> None:
        for i in numbers:
            started = time.perf_counter()
            await smtp.send_message(_message(i, (count + warmup) // 4))
            timings.append((time.perf_counter() - started) * 1000)

    warm = iter(range(warmup))
    await asyncio.gather(*(send(smtp, warm, []) for smtp in sessions))
    timed = iter(range(warmup, warmup + count))
    started = time.perf_counter()
    await asyncio.gather(*(send(smtp, timed, latencies) for smtp in sessions))
    seconds = time.perf_counter() - started
    for smtp in sessions:
        await smtp.quit()
    return seconds, latencies


def _client_process(port: int, count: int, clients: int, warmup: int, results) -> None:
    results.put(asyncio.run(_client_load(port, count, clients, warmup)))


async def run(pool: asyncpg.Pool, config: Config, data_dir: Path, count: int = 2000,
              clients: int = 8, warmup: int = 200) -> dict[str, float]:
    pipeline = Pipeline(config)

    server = await start_server(smtp_intake_handler(config, pool, lambda: pipeline), "127.0.0.1", 0,
                                hostname="example.com")
    port = server.sockets[0].getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_client_process, args=(port, count, clients, warmup, results))
    process.start()
    try:
        seconds, latencies = await asyncio.to_thread(results.get, True, 600)
    finally:
        await asyncio.to_thread(process.join, 30)
        server.close()
        await server.wait_closed()
    stored = await pool.fetchval(
        "SELECT count(*) FROM messages WHERE channel = 'email' AND external_id LIKE 'bench-%@mail.example'")
    ordered = sorted(latencies)
    return {"count": count, "stored": stored - warmup, "per_second": round(count / seconds, 1),
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2)}
