"""Three `router serve` processes on one database under mixed load; one is SIGKILLed mid-way (SPEC §4
Reliability, issue 14 §5).

Mail over SMTP and messages over the integration API are spread over the three processes; a sender
whose process fails tries the next one, as an MTA tries the next MX or a load balancer the next
backend. Agents reply and solve through the API meanwhile (solving frees a slot, so queued tickets
are drained by every process at once), and a 4-second SLA policy makes every process's monitor
alert the leads' (fake) Slack. The victim relays mail to a server that accepts connections and never
answers, so the acks and replies it leased stay `sending` under its lease when it is killed.

Checked afterwards: every accepted message is stored exactly once; no ticket was assigned twice and
every agent's load is the number of tickets they hold, within capacity; every mail reached the relay
at most once (acks and replies by Message-ID) and no ticket's Slack card was posted twice; the
survivors leave the killed process's leased items alone while the lease runs, and settle them once
it has ended: marked dead as interrupted (they may or may not have left: at most once, the agent
sees them), never sent again. The lease (two minutes) is ended by the test rather than waited for.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import asyncpg
import httpx

from router.core.store.outbox import INTERRUPTED
from tests.channels.slack.fake_slack import SIGNING_SECRET, TOKEN, FakeSlack
from tests.channels.slack.fixtures import slack_config_text
from tests.conftest import Sink, free_port
from tests.e2e.helpers import API_TOKEN, Serve

MAILS = 30
POSTS = 30
CLIENTS = 4  # per channel
AGENTS = ("aiko", "ben", "chie")
DEADLINE = 45.0  # for the load, the kill included (a bound for a busy machine; it takes ~10 s)
POLICY = """
[[sla_policies]]
name = "scale-fast"
first_response = "4s"
calendar = "24x7"
warn_at = [0.5]
"""
SLACK = "[slack]\ndigest_time = false\nburst_limit = 100000\n"


class Blackhole:
    """An SMTP relay that accepts connections and never says a word: a delivery to it hangs."""

    def __init__(self) -> None:
        self.connections: list[asyncio.StreamWriter] = []
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections.append(writer)
            self.connected.set()

        self.server = await asyncio.start_server(hold, "127.0.0.1", self.port)

    async def stop(self) -> None:
        for writer in self.connections:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Load:
    """What the senders were told, and the moment to kill."""

    def __init__(self, serves: list[Serve]) -> None:
        self.serves = serves
        self.accepted: Counter[str] = Counter()
        self.replies: list[str] = []
        self.maybe_replies: list[str] = []
        self.failures: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.killed = asyncio.Event()
        self.done = asyncio.Event()
        self.all_accepted = asyncio.Event()
        self.progress = asyncio.Event()  # something was accepted, or the victim took a lease

    def ok(self, key: str) -> None:
        self.accepted[key] += 1
        self.progress.set()
        if sum(self.accepted.values()) >= MAILS + POSTS:
            self.all_accepted.set()

    def ring(self, start: int) -> Iterator[Serve]:
        """The processes from `start` on, round the ring, as a sender tries them (it is not told
        which one died: it finds out, as a mail server or a load balancer does)."""
        for step in range(len(self.serves)):
            yield self.serves[(start + step) % len(self.serves)]


async def until_accepted(load: Load, start: int, send: Callable[[Serve], Awaitable[bool]], what: str) -> None:
    """Try the processes in turn until one accepts; a refusal or a dropped connection is retried."""
    while True:
        for serve in load.ring(start):
            try:
                if await send(serve):
                    return
            except (OSError, aiosmtplib.SMTPException, httpx.TransportError) as exc:
                load.failures[type(exc).__name__] += 1
        await asyncio.sleep(0.05)
        if load.done.is_set():
            load.unexpected.append(f"{what}: never accepted")
            return


def mail(i: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Customer {i} <scale{i}@customer.example>"
    message["To"] = "support@example.com"
    message["Subject"] = f"Delivery {i} is late" if i % 2 else f"請求書 {i} について"
    message["Message-ID"] = f"<scale-{i}@customer.example>"
    message.set_content(f"My parcel {i} has not arrived, the tracking shows nothing." if i % 2
                        else f"請求書 {i} の金額が二重に請求されています。返金をお願いします。")
    return message


async def smtp_sender(load: Load, numbers: list[int]) -> None:
    for i in numbers:
        if i >= MAILS // 2:
            await load.killed.wait()  # the second half arrives after the kill: the kill is mid-load

        async def send(serve: Serve, i: int = i) -> bool:
            try:
                await aiosmtplib.send(mail(i), hostname="127.0.0.1", port=serve.smtp_port, timeout=10)
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code >= 500:
                    load.unexpected.append(f"mail {i}: {exc.code} {exc.message}")
                    return True
                load.failures[str(exc.code)] += 1
                return False
            load.ok(f"scale-{i}@customer.example")
            return True

        await until_accepted(load, i, send, f"mail {i}")


async def api_sender(load: Load, numbers: list[int]) -> None:
    clients = {serve.http_port: httpx.AsyncClient(base_url=serve.base_url, timeout=10,
                                                  headers={"Authorization": f"Bearer {API_TOKEN}"})
               for serve in load.serves}
    try:
        for i in numbers:
            if i >= POSTS // 2:
                await load.killed.wait()

            async def send(serve: Serve, i: int = i) -> bool:
                body = {"channel": "api", "sender": {"email": f"api{i}@customer.example", "name": f"API {i}"},
                        "text": f"Order {i}: the invoice charged me twice, please refund.",
                        "external_id": f"scale-api-{i}"}
                response = await clients[serve.http_port].post("/api/v1/messages", json=body)
                if response.status_code == 202:
                    load.ok(f"scale-api-{i}")
                    return True
                if response.status_code == 503:
                    load.failures["503"] += 1
                    return False
                load.unexpected.append(f"api {i}: {response.status_code} {response.text[:200]}")
                return True

            await until_accepted(load, i, send, f"api {i}")
    finally:
        for client in clients.values():
            await client.aclose()


async def agent(load: Load, name: str, start: int) -> None:
    """An agent working their tickets through the API of whichever process is up: a reply, then
    solved (which frees a slot, and the process drains the queue). A reply whose answer was lost
    with the connection is not retried: it counts as 'maybe'."""
    email, number = f"{name}@example.com", start
    while not load.done.is_set():
        number += 1
        serve = next(load.ring(number))
        async with httpx.AsyncClient(base_url=serve.base_url, timeout=10,
                                     headers={"Authorization": f"Bearer demo-{name}"}) as api:
            try:
                listed = await api.get("/api/v1/tickets", params={"assignee": email, "status": "open", "limit": "5"})
                tickets = listed.json()["tickets"] if listed.status_code == 200 else []
                for ticket in tickets[:3]:
                    text = f"{name} answers {ticket['ref']} ({number})"
                    replied = await api.post(f"/api/v1/tickets/{ticket['ref']}/replies", json={"text": text})
                    if replied.status_code == 201:
                        load.replies.append(text)
                    else:
                        load.maybe_replies.append(text)
                    await api.patch(f"/api/v1/tickets/{ticket['ref']}", json={"status": "solved"})
            except (httpx.TransportError, OSError) as exc:
                load.failures[f"agent {type(exc).__name__}"] += 1
        await asyncio.sleep(0.02)


async def killer(load: Load, victim: int, blackhole: Blackhole) -> None:
    """SIGKILL the victim once a quarter of the load was accepted and it holds leased mail."""
    await blackhole.connected.wait()
    while sum(load.accepted.values()) < (MAILS + POSTS) // 4:
        load.progress.clear()
        await load.progress.wait()
    process = load.serves[victim].process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    await asyncio.to_thread(process.wait)
    load.killed.set()
    print(f"SIGKILL after {sum(load.accepted.values())} of {MAILS + POSTS} messages accepted")


@contextmanager
def cluster(base: Path, database: str, config: Path, *, relays: list[int], slack_url: str) -> Iterator[list[Serve]]:
    serves = [Serve(base, database_url=database, relay_port=relay, name=f"serve-{n}") for n, relay in enumerate(relays)]
    try:
        for serve in serves:
            serve.env.update(ROUTER_SECRET_KEY="one key for every process of the service", ROUTER_CONFIG=str(config),
                             SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                             SLACK_ALERT_CHANNEL="#alerts", SLACK_API_URL=slack_url)
            serve.start()
        for serve in serves:
            serve.wait_ready()
        yield serves
    finally:
        for serve in serves:
            started = time.monotonic()
            serve.close()
            print(f"closed {serve.log_path.name} in {time.monotonic() - started:.1f}s")


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], within: float, serves: list[Serve]) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within}s for {what}\n" + "\n".join(s.log_tail(3000) for s in serves))
        await asyncio.sleep(0.2)


def message_id(raw: bytes) -> str:
    found = re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.IGNORECASE | re.MULTILINE)
    assert found, raw[:500]
    return found.group(1).decode()


async def test_three_processes_one_killed_mid_load(tmp_path: Path, database: str, sink: Sink) -> None:
    fake = FakeSlack()
    await fake.start()
    blackhole = Blackhole()
    await blackhole.start()
    config = tmp_path / "router.toml"
    config.write_text(slack_config_text(slack=SLACK, policy=POLICY), encoding="utf-8")
    victim = 0
    relays = [blackhole.port, sink.port, sink.port]
    timings = {"start": time.monotonic()}
    try:
        with cluster(tmp_path, database, config, relays=relays, slack_url=fake.api_url) as serves:
            timings["ready"] = time.monotonic()
            load = Load(serves)
            mails, posts = list(range(MAILS)), list(range(POSTS))
            try:
                async with asyncio.timeout(DEADLINE):
                    async with asyncio.TaskGroup() as senders:
                        senders.create_task(killer(load, victim, blackhole))
                        workers = [senders.create_task(agent(load, name, n)) for n, name in enumerate(AGENTS)]
                        for c in range(CLIENTS):
                            senders.create_task(smtp_sender(load, mails[c::CLIENTS]))
                            senders.create_task(api_sender(load, posts[c::CLIENTS]))
                        await load.killed.wait()
                        await load.all_accepted.wait()
                        await asyncio.sleep(0.5)  # the agents go on for a moment on the survivors
                        load.done.set()
                        await asyncio.gather(*workers)
            except TimeoutError:
                raise AssertionError(f"the load was not done within {DEADLINE}s: {sum(load.accepted.values())}"
                                     f" accepted, failures {dict(load.failures)}\n"
                                     + "\n".join(s.log_tail(3000) for s in serves)) from None
            timings["load done"] = time.monotonic()
            print(f"accepted {sum(load.accepted.values())}, replies {len(load.replies)}"
                  f" (+{len(load.maybe_replies)} unanswered), failures {dict(load.failures)},"
                  f" victim's held deliveries {len(blackhole.connections)}")
            assert not load.unexpected, load.unexpected[:10]
            assert load.failures, "no sender met the killed process: nothing was retried on a survivor"
            assert load.replies, "no agent reply went through"

            conn = await asyncpg.connect(database)
            try:
                await check_stored_once(conn, load)
                await check_assigned_once(conn)

                async def survivors_idle() -> bool:  # no mail is left for the survivors to send
                    return not await conn.fetchval(
                        "SELECT count(*) FROM outbox WHERE channel = 'email' AND status = 'pending'")

                await wait_for("the survivors to deliver what is due", survivors_idle, 15, serves)
                # What is still `sending` a few seconds apart is the killed process's: a survivor's
                # delivery to the sink or the fake Slack takes milliseconds.
                in_flight = "SELECT id, payload->>'message_id' AS message_id FROM outbox WHERE status = 'sending'"
                first = set(await conn.fetch(in_flight))
                await asyncio.sleep(2)
                held = list(first & set(await conn.fetch(in_flight)))
                timings["settled"] = time.monotonic()
                held_mail = {row["message_id"] for row in held if row["message_id"]}
                assert len(held_mail) == len(blackhole.connections), (
                    f"the survivors must leave the killed process's leased items alone while the lease runs:"
                    f" {len(blackhole.connections)} deliveries were hanging, {held} are still 'sending'")

                # The lease ends (two minutes in production; ended here instead of waited for).
                await conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = ANY($1::bigint[])",
                                   [row["id"] for row in held])

                async def taken_over() -> bool:
                    return not await conn.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[])"
                                                   " AND status = 'sending'", [row["id"] for row in held])

                await wait_for("the survivors to settle the killed process's items", taken_over, 10, serves)
                settled = await conn.fetch("SELECT id, status, last_error FROM outbox WHERE id = ANY($1::bigint[])",
                                           [row["id"] for row in held])
                assert all(r["status"] == "dead" and r["last_error"] == INTERRUPTED for r in settled), settled
                dead_events = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE kind = 'outbox.dead' AND (payload->>'id')::bigint = ANY($1)",
                    [row["id"] for row in held])
                assert dead_events == len(held), "each interrupted item is on its ticket's timeline once"

                timings["taken over"] = time.monotonic()
                await check_mail_sent_once(conn, sink, held_mail)
            finally:
                await conn.close()
            check_cards_posted_once(fake)
            marks = list(timings.items())
            print("timings: " + ", ".join(f"{name} +{at - marks[0][1]:.1f}s" for name, at in marks[1:]))
    finally:
        await blackhole.stop()
        await fake.stop()


async def check_stored_once(conn: asyncpg.Connection, load: Load) -> None:
    stored = Counter({row["external_id"]: row["n"] for row in await conn.fetch(
        "SELECT external_id, count(*) AS n FROM messages WHERE direction = 'in' GROUP BY 1")})
    lost = [key for key in load.accepted if stored[key] == 0]
    doubled = {key: n for key, n in stored.items() if n > 1}
    assert not lost and not doubled, f"lost {lost[:10]}, stored twice {doubled}"
    assert len(stored) == MAILS + POSTS, f"stored {len(stored)} distinct messages for {MAILS + POSTS} sent"
    for text in load.replies:
        count = await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'out' AND body_text = $1", text)
        assert count == 1, f"reply {text!r} stored {count} times"
    for text in load.maybe_replies:
        count = await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'out' AND body_text = $1", text)
        assert count <= 1, f"reply {text!r} stored {count} times"


async def check_assigned_once(conn: asyncpg.Connection) -> None:
    twice = await conn.fetch("SELECT ticket_id, count(*) AS n FROM events WHERE kind = 'ticket.assigned'"
                             " GROUP BY 1 HAVING count(*) > 1")
    assert not twice, f"tickets assigned more than once: {[dict(r) for r in twice]}"
    assignments = await conn.fetchval("SELECT count(*) FROM events WHERE kind = 'ticket.assigned'")
    assert assignments > 3 * 5, "the queue was never drained: no slot freed by solving was taken again"
    loads = await conn.fetch(
        "SELECT a.email, a.load, a.capacity, (SELECT count(*) FROM tickets t WHERE t.assignee_id = a.id"
        " AND t.status IN ('open', 'pending')) AS holding FROM agents a WHERE a.capacity > 0")
    for row in loads:
        assert row["load"] == row["holding"] <= row["capacity"], dict(row)


async def check_mail_sent_once(conn: asyncpg.Connection, sink: Sink, held: set[str]) -> None:
    received = Counter(message_id(raw) for raw in sink.raw)
    assert not {key: n for key, n in received.items() if n > 1}, "a mail reached the relay twice"
    assert not held & set(received), "an item the killed process held was sent again"
    sent = {row["message_id"] for row in await conn.fetch(
        "SELECT payload->>'message_id' AS message_id FROM outbox WHERE channel = 'email' AND status = 'sent'")}
    assert sent == set(received), f"sent but not received {sent - set(received)}; the reverse {set(received) - sent}"
    acks = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE channel = 'email' AND kind = 'ack' AND status = 'sent'")
    assert acks > 0, "no acknowledgement went out"


def check_cards_posted_once(fake: FakeSlack) -> None:
    refs = Counter()
    for call in fake.called("chat.postMessage"):
        found = re.search(r"\bT-\d+\b", call.args.get("text", ""))
        if found:
            refs[found.group(0)] += 1
    assert refs, "no SLA alert reached Slack"
    assert not {ref: n for ref, n in refs.items() if n > 1}, "a ticket's Slack card was posted twice"

