"""Threading: which ticket a message joins when it refers to another one.

A reference to an old ticket joins the customer's open one, a reference to a ticket merged away
reopens the thread that holds it, and only Message-IDs we really sent can pull a mail into a ticket."""

from __future__ import annotations

from datetime import timedelta

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline


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
