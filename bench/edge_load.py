"""Realistic mail through a real `router serve`'s edges (SMTP, API), with its CPU cost per message.

The server is `python -m router.cli serve` in its own process on the bench's PostgreSQL. The load
generator is another process (`python -m bench.edge_load …`): raw asyncio sockets on uvloop,
requests written by hand, persistent connections, so the client costs little next to the server
(aiosmtplib or httpx would spend more CPU than the intake on this 2-core machine). It generates the
same seeded corpus (`bench.realistic_mail`) itself, sends `warmup` mails untimed, says `warm`, waits
for `go` on stdin (the parent takes its CPU snapshot then), sends the timed mails and prints one JSON
line of figures. The corpus goes out in order over `clients` connections; replies name mails at
least `REPLY_GAP` earlier, so their parent is committed first.

Figures: msg/s, p50/p99 of the client-side time per message (SMTP: from `MAIL FROM` to the final
`250`, which the intake sends only after the commit; API: request to `202`), CPU ms per message of
the router process tree and of the PostgreSQL server (bench.cpu), and the count stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from bench import cpu
from bench.realistic_mail import Mail, api_request, make_corpus
from bench.rss_bench import _free_port
from bench.serving import wait_until_ready

TOKEN = "edge-bench-token"


@dataclass(frozen=True)
class Server:
    process: asyncio.subprocess.Process
    http_port: int
    smtp_port: int
    postmaster: int


@contextlib.asynccontextmanager
async def serve(dsn: str, data_dir: str, *extra_args: str, env: dict[str, str] | None = None
                ) -> AsyncIterator[Server]:
    """A real `router serve` on `dsn`, ready for HTTP and SMTP; stopped (SIGTERM) afterwards."""
    http_port, smtp_port = _free_port(), _free_port()
    environ = {**os.environ, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": data_dir, "ROUTER_HTTP_PORT": str(http_port),
               "ROUTER_SMTP_PORT": str(smtp_port), "ROUTER_SMTP_HOST": "127.0.0.1", "ROUTER_API_TOKEN": TOKEN,
               **(env or {})}
    for unset in ("ROUTER_CONFIG", "ROUTER_SMTP_RELAY", "META_ACCESS_TOKEN", "LINE_CHANNEL_TOKEN",
                  "TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN"):
        environ.pop(unset, None)  # nothing is sent anywhere: acks stay queued
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "router.cli", "serve", *extra_args,
                                                   env=environ, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=60) as client:
            await wait_until_ready(client, process)
        await _wait_for_port(smtp_port, process)
        yield Server(process, http_port, smtp_port, await cpu.postmaster_of(dsn))
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 60)


async def _wait_for_port(port: int, process: asyncio.subprocess.Process, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline or process.returncode is not None:
                raise RuntimeError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.1)


async def measure(server: Server, kind: str, *, count: int, warmup: int, clients: int, seed: int, tag: str,
                  reconnect: bool = False) -> dict[str, Any]:
    """Send `warmup` + `count` mails of the corpus on `kind` ("smtp" or "api"); figures of the timed part."""
    port = server.smtp_port if kind == "smtp" else server.http_port
    argv = [sys.executable, "-m", "bench.edge_load", kind, "--port", str(port), "--count", str(count),
            "--warmup", str(warmup), "--clients", str(clients), "--seed", str(seed), "--tag", tag]
    load = await asyncio.create_subprocess_exec(*argv, *(["--reconnect"] if reconnect else []),
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert load.stdin is not None and load.stdout is not None
    try:
        line = await asyncio.wait_for(load.stdout.readline(), 600)
        if line.strip() != b"warm":
            raise RuntimeError(f"the load generator failed during warm-up: {line!r}")
        trees = {"router": server.process.pid, "postgres": server.postmaster}
        before = cpu.snapshot(**trees)
        load.stdin.write(b"go\n")
        await load.stdin.drain()
        line = await asyncio.wait_for(load.stdout.readline(), 900)
        after = cpu.snapshot(**trees)
        figures = json.loads(line)
    finally:
        if load.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                load.kill()
        await load.wait()
    spent = cpu.per_message(before, after, count)
    return {**figures, "cpu_router_ms": spent["router"], "cpu_postgres_ms": spent["postgres"],
            "cpu_total_ms": spent["total"], "router_cores": round(cpu.busy_share(before, after, "router"), 2)}


async def stored(dsn: str, tag: str) -> int:
    """Messages of the corpus `tag` in the database (their Message-IDs / external ids start with it)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'"
                                       " AND external_id LIKE $1", f"{tag}-%"))
    finally:
        await conn.close()


# The load generator (runs in its own process).

async def _smtp_reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply, all its lines."""
    lines = b""
    while True:
        line = await reader.readuntil(b"\r\n")
        lines += line
        if line[3:4] != b"-":
            return lines


class SmtpClient:
    """A minimal SMTP client over one connection: EHLO once, then MAIL/RCPT/DATA per mail. Like
    Postfix, it pipelines MAIL, RCPT and DATA (RFC 2920) when the server offers PIPELINING."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pipelining = False

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self._expect(b"220", await _smtp_reply(self.reader))
        self.writer.write(b"EHLO bench.example\r\n")
        features = await _smtp_reply(self.reader)
        await self._expect(b"250", features)
        self.pipelining = b"\r\n250-PIPELINING\r\n" in features or features.endswith(b"250 PIPELINING\r\n")

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await _smtp_reply(self.reader)
        self.writer.close()

    async def send(self, mail: Mail) -> None:
        commands = [b"MAIL FROM:<%s> SIZE=%d\r\n" % (mail.sender.encode(), len(mail.data)),
                    *(b"RCPT TO:<%s>\r\n" % recipient.encode() for recipient in mail.recipients), b"DATA\r\n"]
        expected = [b"250"] * (len(commands) - 1) + [b"354"]
        if self.pipelining:
            self.writer.write(b"".join(commands))
            for code in expected:
                await self._expect(code, await _smtp_reply(self.reader))
        else:
            for command, code in zip(commands, expected, strict=True):
                self.writer.write(command)
                await self._expect(code, await _smtp_reply(self.reader))
        body = mail.data.replace(b"\r\n.", b"\r\n..")  # dot-stuffing (RFC 5321 §4.5.2)
        self.writer.write((b"." if body.startswith(b".") else b"") + body
                          + (b".\r\n" if body.endswith(b"\r\n") else b"\r\n.\r\n"))
        await self._expect(b"250", await _smtp_reply(self.reader))

    @staticmethod
    async def _expect(code: bytes, reply: bytes) -> None:
        if not reply.startswith(code):
            raise RuntimeError(f"expected {code.decode()}, the server said {reply[:200]!r}")


class ApiClient:
    """`POST /api/v1/messages` over one kept-alive HTTP/1.1 connection, written by hand."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        self.writer.close()

    async def send(self, mail: Mail) -> None:
        path, body, headers = api_request(mail, TOKEN)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{head}"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
        content = await self.reader.readexactly(int(length.group(1))) if length else b""
        if not answer.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"the API answered {answer[:40]!r}: {content[:200]!r}")


async def _send_all(kind: str, port: int, mails: list[Mail], clients: int, reconnect: bool) -> list[float]:
    """Every mail, in order, over `clients` connections; each mail's latency in ms."""
    pending = iter(mails)
    latencies: list[float] = []

    async def one_connection() -> None:
        client = SmtpClient(port) if kind == "smtp" else ApiClient(port)
        await client.open()
        try:
            for mail in pending:
                started = time.perf_counter()
                if reconnect:
                    await client.close()
                    await client.open()
                await client.send(mail)
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            await client.close()

    await asyncio.gather(*(one_connection() for _ in range(clients)))
    return latencies


async def _generate(args: argparse.Namespace) -> None:
    mails = make_corpus(args.warmup + args.count, args.seed, tag=args.tag)
    await _send_all(args.kind, args.port, mails[:args.warmup], args.clients, args.reconnect)
    print("warm", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.perf_counter()
    latencies = sorted(await _send_all(args.kind, args.port, mails[args.warmup:], args.clients, args.reconnect))
    seconds = time.perf_counter() - started
    print(json.dumps({"count": len(latencies), "seconds": round(seconds, 3),
                      "per_second": round(len(latencies) / seconds, 1),
                      "p50_ms": round(statistics.median(latencies), 2),
                      "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
                      "mean_bytes": round(sum(len(m.data) for m in mails) / len(mails))}), flush=True)


if __name__ == "__main__":
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m bench.edge_load", description="the load generator")
    parser.add_argument("kind", choices=["smtp", "api"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tag", default="edge")
    parser.add_argument("--reconnect", action="store_true", help="a new connection for every mail")
    uvloop.run(_generate(parser.parse_args()))
