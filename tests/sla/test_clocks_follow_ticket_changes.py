"""SLA clocks follow what happens to the ticket: a merge stops the clocks of the ticket it closes, a
reopened ticket runs its clocks again, and a priority change while pending keeps them paused."""

from __future__ import annotations

from datetime import timedelta

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from sla import monitor
from tests.conftest import post_message


async def test_merge_stops_clocks_on_the_closed_ticket(client, auth, pool, config, clock):
    await post_message(client, auth, "where is my parcel", email="m@example.net")
    clock.advance(timedelta(minutes=1))
    t2 = await post_message(client, auth, "parcel still missing", sender_id="visitor-9", channel="chat")
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


async def test_reopened_ticket_gets_running_sla_clocks(client, auth, pool, clock):
    ref = await post_message(client, auth, "URGENT: site is down, login error", email="u@example.net")
    r = await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "looking"}, headers=auth)
    assert r.status_code == 201
    r = await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    clock.advance(timedelta(hours=1))
    ref2 = await post_message(client, auth, "still broken!", email="u@example.net")
    assert ref2 == ref
    rows = await pool.fetch("SELECT target, policy, met_at FROM sla_targets s JOIN tickets t ON t.id=s.ticket_id"
                            " WHERE t.number=$1", int(ref[2:]))
    assert any(r["met_at"] is None for r in rows), "reopened urgent ticket has no running SLA clock"


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
