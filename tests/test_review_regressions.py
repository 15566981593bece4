"""Regressions from the code review: lock order, threading, SLA on merge/reopen, loop safety, and
mail that must be kept rather than refused."""

import asyncio
from datetime import timedelta

import aiosmtplib
import asyncpg
import pytest

from agents import assignment
from channels.email.intake import start_server
from router.config import ConfigError, demo_config_text, parse_config
from router.core import actions
from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from router.workers import smtp_intake_handler
from sla import monitor
from tests.conftest import free_port


async def api(client, auth, text, *, email=None, chat=None, channel="api"):
    sender = {}
    if email:
        sender["email"] = email
    if chat:
        sender["id"] = chat
    r = await client.post("/api/v1/messages", json={"channel": channel, "sender": sender, "text": text}, headers=auth)
    assert r.status_code == 202, r.text
    return r.json()["ticket_ref"]


async def test_merge_stops_clocks_on_the_closed_ticket(client, auth, pool, config, clock):
    await api(client, auth, "where is my parcel", email="m@example.net")
    clock.advance(timedelta(minutes=1))
    t2 = await api(client, auth, "parcel still missing", chat="visitor-9", channel="chat")
    c = await pool.fetch("SELECT id FROM customers ORDER BY id")
    r = await client.post(f"/api/v1/customers/{c[0]['id']}/merge", json={"other": c[1]['id']}, headers=auth)
    assert r.status_code == 200, r.text
    t2row = await pool.fetchrow("SELECT id, status FROM tickets WHERE number = $1", int(t2[2:]))
    assert t2row["status"] == "closed"
    clock.advance(timedelta(days=5))
    async with pool.acquire() as conn, conn.transaction():
        fired = await monitor.scan(conn, clock(), alerts=False, ref_prefix="T-")
    on_closed = [e for e in fired if e.ticket_id == t2row["id"]]
    assert not on_closed


async def test_reference_to_old_ticket_joins_the_open_one(pool, config, clock):
    p = Pipeline(config, clock)
    who = (Identity("email", "k@example.net"),)
    a = await p.ingest(pool, InboundMessage("email", who, "first question about my invoice", external_id="m1@x"))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tickets SET status='solved', solved_at=$2 WHERE id=$1", a.ticket_id, clock())
    clock.advance(timedelta(days=10))
    b = await p.ingest(pool, InboundMessage("email", who, "new question about refund", external_id="m2@x"))
    assert b.new_ticket
    # the customer now replies to an old mail of the first ticket, subject "[T-…]"
    c = await p.ingest(pool, InboundMessage("email", who, "one more thing", external_id="m3@x",
                                            subject=f"Re: [{a.ticket_ref}] invoice",
                                            ticket_number_hint=int(a.ticket_ref[2:])))
    active = await pool.fetchval("SELECT count(*) FROM tickets WHERE status IN ('open','pending')")
    assert c.ticket_ref == b.ticket_ref and active == 1


async def test_null_envelope_sender_is_not_acknowledged(config, pool, clock):
    p = Pipeline(config, clock)

    handler = smtp_intake_handler(config, pool, lambda: p)
    port = free_port()
    server = await start_server(handler, "127.0.0.1", port,
                                hostname="example.com")
    raw = (b"From: Jo <jo@example.net>\r\nTo: support@example.com\r\nSubject: hello\r\n"
           b"Message-ID: <nullsender-1@example.net>\r\n\r\nI am away until Monday.\r\n")
    try:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        await smtp.mail("")
        await smtp.rcpt("support@example.com")
        await smtp.data(raw)
        await smtp.quit()
    finally:
        server.close()
    acks = await pool.fetchval("SELECT count(*) FROM outbox WHERE kind='ack'")
    assert acks == 0


async def test_reopened_ticket_gets_running_sla_clocks(client, auth, pool, clock):
    ref = await api(client, auth, "URGENT: site is down, login error", email="u@example.net")
    r = await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "looking"}, headers=auth)
    assert r.status_code == 201
    r = await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    clock.advance(timedelta(hours=1))
    ref2 = await api(client, auth, "still broken!", email="u@example.net")
    assert ref2 == ref
    rows = await pool.fetch("SELECT target, policy, met_at FROM sla_targets s JOIN tickets t ON t.id=s.ticket_id"
                            " WHERE t.number=$1", int(ref[2:]))
    assert any(r["met_at"] is None for r in rows), "reopened urgent ticket has no running SLA clock"


def test_template_typo_is_a_config_error_not_a_broken_ingest(settings):
    text = demo_config_text() + '\n[templates.ack]\nen = "Thanks {name}, ticket {ref} due {due}"\n'
    with pytest.raises(ConfigError, match=r"templates\.ack\.en: unknown placeholder \{name\}"):
        parse_config(text, settings)


async def test_crossing_transfers_forced_interleaving(client, auth, pool, clock, monkeypatch):
    """T1 aiko→ben and T2 ben→aiko at once, each pausing between its two agent locks."""
    from agents import store

    t1 = await api(client, auth, "delivery tracking please", email="a1@example.net")  # aiko
    t2 = await api(client, auth, "app crash error", email="a2@example.net")            # ben
    real = store.release_load

    async def slow_release(conn, agent_id):
        await real(conn, agent_id)
        await asyncio.sleep(0.3)   # scheduling delay between the two agent-row locks
    monkeypatch.setattr(store, "release_load", slow_release)
    results = await asyncio.gather(
        client.post(f"/api/v1/tickets/{t1}/assign", json={"agent": "ben@example.com"}, headers=auth),
        client.post(f"/api/v1/tickets/{t2}/assign", json={"agent": "aiko@example.com"}, headers=auth))
    # A deadlock is answered as a 503 (the database aborted one transfer), never raised: check the answers.
    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assignees = await pool.fetch("SELECT a.email FROM tickets t JOIN agents a ON a.id = t.assignee_id"
                                 " WHERE t.number = ANY($1::bigint[]) ORDER BY t.number", [int(t1[2:]), int(t2[2:])])
    assert [r["email"] for r in assignees] == ["ben@example.com", "aiko@example.com"]


async def queue_crossing_batches(pool) -> None:
    """Four waiting tickets whose two drain batches need the same two agents in opposite orders:
    batch 1 urgent shipping/en (aiko) then technical/ja (chie); batch 2 technical/ja then shipping/en."""
    async with pool.acquire() as conn:
        cust = await conn.fetchval("INSERT INTO customers (name) VALUES ('q') RETURNING id")
        team = await conn.fetchval("SELECT id FROM teams")
        spec = [("urgent", "shipping", "en"), ("urgent", "technical", "ja"),
                ("high", "technical", "ja"), ("high", "shipping", "en")]
        for i, (prio, skill, lang) in enumerate(spec):
            await conn.execute(
                "INSERT INTO tickets (customer_id, channel, priority, skill, language, team_id, created_at)"
                " VALUES ($1,'api',$2,$3,$4,$5, now() + make_interval(secs => $6))", cust, prio, skill, lang, team, i)


async def test_drains_forced_interleaving(pool, clock, monkeypatch):
    """Each drain pauses after each agent lock, so crossing lock orders would deadlock."""
    monkeypatch.setattr(assignment, "DRAIN_BATCH", 2)
    await queue_crossing_batches(pool)
    real = assignment._take_and_assign

    async def slow(*a, **k):
        r = await real(*a, **k)
        await asyncio.sleep(0.3)
        return r
    monkeypatch.setattr(assignment, "_take_and_assign", slow)

    async def later():
        await asyncio.sleep(0.05)  # the second drain starts slightly later, so it gets the other batch
        return await actions.drain_queue(pool, clock())

    res = await asyncio.gather(actions.drain_queue(pool, clock()), later(), return_exceptions=True)
    assert not any(isinstance(r, Exception) for r in res)
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE assignee_id IS NOT NULL") == 4


async def test_queue_worker_survives_a_failing_step(monkeypatch):
    from router import workers
    calls = 0

    async def boom(pool, now):
        nonlocal calls
        calls += 1
        raise asyncpg.DeadlockDetectedError("deadlock detected")
    monkeypatch.setattr(actions, "drain_queue", boom)
    monkeypatch.setattr(workers, "QUEUE_DRAIN_SECONDS", 0.01)

    class Svc:
        def require_pool(self): return None
        def clock(self): return None
    task = asyncio.create_task(workers.queue_worker(Svc()))
    try:
        await asyncio.sleep(0.2)
        assert not task.done()
        assert calls >= 3  # it kept trying after each failure
    finally:
        task.cancel()  # never leave it running into later tests (with the real drain patched back)
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_ack_message_ids_cannot_be_guessed_to_join_a_strangers_ticket(pool, config, clock):
    import hashlib

    p = Pipeline(config, clock)
    victim = await p.ingest(pool, InboundMessage("email", (Identity("email", "victim@example.net"),),
                                                 "refund to my card please", external_id="v1@example.net"))
    ack_id = await pool.fetchval("SELECT payload->>'message_id' FROM outbox WHERE kind='ack'")
    guessed = hashlib.sha256(f"ack:{victim.ticket_id}".encode()).hexdigest()[:32] + "@example.com"
    assert ack_id != guessed
    evil = await p.ingest(pool, InboundMessage("email", (Identity("email", "mallory@evil.test"),),
                                               "Please send the refund to IBAN XX00 EVIL instead",
                                               external_id="e1@evil.test", thread_refs=(guessed, "v1@example.net")))
    assert evil.ticket_ref != victim.ticket_ref
    colleague = await p.ingest(pool, InboundMessage("email", (Identity("email", "boss@example.net"),),
                                                    "Adding my manager", external_id="c1@example.net",
                                                    thread_refs=(ack_id,)))
    assert colleague.ticket_ref == victim.ticket_ref  # a reply to our real mail still threads


async def test_long_plain_text_mail_is_accepted_truncated(config, pool, clock):
    from aiosmtpd.smtp import Envelope
    p = Pipeline(config, clock)

    handler = smtp_intake_handler(config, pool, lambda: p)
    log = ("ERROR 2026-11-25 stack frame at module.function line 42\r\n" * 5000).encode()  # ~290 KB, < 10 MB limit
    raw = (b"From: dev@example.net\r\nTo: support@example.com\r\nSubject: crash log\r\n"
           b"Message-ID: <big-1@example.net>\r\n\r\nHere is the log:\r\n" + log)
    env = Envelope()
    env.mail_from = "dev@example.net"
    env.rcpt_tos = ["support@example.com"]
    env.original_content = env.content = raw
    answer = await handler.handle_DATA(None, None, env)
    assert answer.startswith("250")
    text = await pool.fetchval("SELECT body_text FROM messages WHERE external_id = 'big-1@example.net'")
    assert text.startswith("Here is the log:")
    assert text.endswith("[… truncated: the full text is in the original message]")


async def test_priority_change_on_pending_ticket_keeps_every_clock_paused(client, auth, pool, config, clock):
    cid = await pool.fetchval("INSERT INTO customers (name, tier) VALUES ('V', 'vip') RETURNING id")
    await pool.execute("INSERT INTO customer_identities (customer_id, kind, value) VALUES ($1, 'email', $2)",
                       cid, "v@example.net")
    p = Pipeline(config, clock)
    r = await p.ingest(pool, InboundMessage("api", (Identity("email", "v@example.net"),), "where is my parcel"))
    assert await pool.fetchval("SELECT sla_policy FROM tickets WHERE id=$1", r.ticket_id) == "vip"
    resp = await client.patch(f"/api/v1/tickets/{r.ticket_ref}", json={"status": "pending"}, headers=auth)
    assert resp.status_code == 200, resp.text
    resp = await client.patch(f"/api/v1/tickets/{r.ticket_ref}", json={"priority": "urgent"}, headers=auth)
    assert resp.status_code == 200, resp.text
    clock.advance(timedelta(hours=9))
    async with pool.acquire() as conn, conn.transaction():
        fired = await monitor.scan(conn, clock(), alerts=False, ref_prefix="T-")
    # the ticket waits on the customer the whole time: nothing may breach
    assert not [e for e in fired if e.ticket_id == r.ticket_id], fired


async def test_reference_to_merged_ticket_reopens_its_thread(client, auth, pool, config, clock):
    p = Pipeline(config, clock)
    a = await p.ingest(pool, InboundMessage("email", (Identity("email", "m@example.net"),), "parcel missing",
                                            external_id="a1@x"))
    clock.advance(timedelta(minutes=1))
    b = await p.ingest(pool, InboundMessage("chat", (Identity("chat", "visitor-7"),), "parcel still missing"))
    c = await pool.fetch("SELECT id FROM customers ORDER BY id")
    resp = await client.post(f"/api/v1/customers/{c[0]['id']}/merge", json={"other": c[1]["id"]}, headers=auth)
    assert resp.status_code == 200, resp.text
    resp = await client.patch(f"/api/v1/tickets/{a.ticket_ref}", json={"status": "solved"}, headers=auth)
    assert resp.status_code == 200, resp.text
    clock.advance(timedelta(hours=1))  # well within the reopen window
    d = await p.ingest(pool, InboundMessage("email", (Identity("email", "m@example.net"),), "it came back broken",
                                            external_id="d1@x", subject=f"Re: [{b.ticket_ref}]",
                                            ticket_number_hint=int(b.ticket_ref[2:])))
    # SPEC 2.5: within the reopen window the solved thread (which holds T-b's messages) reopens
    assert d.ticket_ref == a.ticket_ref and d.reopened, d
