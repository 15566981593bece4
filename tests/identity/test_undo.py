"""Every merge can be undone (issue 11 §4, SPEC §2.4): splitting a merge puts each message, identity
and ticket back where it came from, with the tickets' status, agent, priority and SLA clocks exactly
as a twin pair of customers that was never merged has them."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import post_message

LEAD = {"Authorization": "Bearer demo-lena"}
AGENT = {"Authorization": "Bearer demo-aiko"}
CLOCK_COLUMNS = ("target, cycle, policy, started_at, warn_at, due_at, paused_at, paused_for, met_at, warned_at,"
                 " breached_at")


async def ticket_row(pool, ref: str):
    return await pool.fetchrow("SELECT id, customer_id, status, priority, sla_policy, assignee_id FROM tickets"
                               " WHERE number = $1", int(ref[2:]))


async def clocks(pool, ref: str) -> list[tuple]:
    rows = await pool.fetch(f"SELECT {CLOCK_COLUMNS} FROM sla_targets s JOIN tickets t ON t.id = s.ticket_id"
                            " WHERE t.number = $1 ORDER BY target", int(ref[2:]))
    return [tuple(row) for row in rows]


async def world(pool) -> dict[str, object]:
    """Everything a merge moves: where each message and identity is, each ticket's state, agents' loads."""
    return {
        "messages": [tuple(r) for r in await pool.fetch(
            "SELECT id, ticket_id, customer_id, sender_identity_id FROM messages ORDER BY id")],
        "identities": [tuple(r) for r in await pool.fetch(
            "SELECT id, customer_id, kind, value, verified FROM customer_identities ORDER BY id")],
        "tickets": [tuple(r) for r in await pool.fetch(
            "SELECT id, customer_id, status, priority, sla_policy, assignee_id FROM tickets ORDER BY id")],
        "customers": [tuple(r) for r in await pool.fetch(
            "SELECT id, name, tier, language, timezone, merged_into FROM customers ORDER BY id")],
        "loads": [tuple(r) for r in await pool.fetch("SELECT id, load FROM agents ORDER BY id")],
        "clocks": [tuple(r) for r in await pool.fetch(f"SELECT ticket_id, {CLOCK_COLUMNS} FROM sla_targets"
                                                      " ORDER BY ticket_id, target")],
    }


async def test_a_split_puts_every_message_identity_ticket_and_clock_back(client, auth, pool, clock):
    # The twins are created step by step at the same instants as the pair that will be merged.
    merged_pair, control_pair = await two_customers_in_step(client, auth, clock, ("x", "y"))
    before = await world(pool)
    a, b = merged_pair
    a_row, b_row = await ticket_row(pool, a), await ticket_row(pool, b)

    clock.advance(timedelta(minutes=35))
    merged = await client.post(f"/api/v1/customers/{a_row['customer_id']}/merge",
                               json={"other": b_row["customer_id"], "reason": "same person, per phone call"},
                               headers=LEAD)
    assert merged.status_code == 200, merged.text
    assert (await ticket_row(pool, b))["status"] == "closed"
    assert (await ticket_row(pool, a))["priority"] == "urgent"
    assert await world(pool) != before
    listing = (await client.get(f"/api/v1/customers/{a_row['customer_id']}/merges", headers=AGENT)).json()
    [entry] = listing["merges"]
    assert entry["reason"] == "same person, per phone call" and entry["actor"] == "lena@example.com"

    clock.advance(timedelta(minutes=30))
    undone = await client.post(f"/api/v1/merges/{entry['id']}/undo", json={"reason": "two different people"},
                               headers=LEAD)
    assert undone.status_code == 200, undone.text

    after = await world(pool)
    assert after["messages"] == before["messages"]
    assert after["identities"] == before["identities"]
    assert after["customers"] == before["customers"]
    assert after["loads"] == before["loads"]
    assert after["tickets"] == before["tickets"]
    # Both SLA clock sets are what a pair that was never merged has, at the same moment.
    for ref, twin in zip(merged_pair, control_pair, strict=True):
        assert await clocks(pool, ref) == await clocks(pool, twin)
    assert after["clocks"] == before["clocks"]
    # Who split it and why, on the record and on the timeline of both tickets.
    listing = (await client.get(f"/api/v1/customers/{a_row['customer_id']}/merges", headers=AGENT)).json()
    assert listing["merges"][0]["undone"]["why"] == "two different people"
    kinds = await pool.fetch("SELECT ticket_id FROM events WHERE kind = 'customer.split' ORDER BY ticket_id")
    assert [r["ticket_id"] for r in kinds] == [a_row["id"], b_row["id"]]


async def two_customers_in_step(client, auth, clock, prefixes: tuple[str, str]) -> tuple[tuple[str, str],
                                                                                          tuple[str, str]]:
    """For each prefix, a normal billing ticket with a first reply and a follow-up (next-response clock
    running), and an urgent one waiting on the customer (clocks paused); each step is done for every
    prefix before the clock moves on, so the pairs are twins."""
    refs: dict[str, list[str]] = {p: [] for p in prefixes}
    for p in prefixes:
        refs[p].append(await post_message(client, auth, "My invoice is wrong", sender_id=f"{p}-a",
                                          email=f"{p}-a@example.net", verified=["email"], name=f"{p} A"))
    clock.advance(timedelta(minutes=5))
    for p in prefixes:
        refs[p].append(await post_message(client, auth, "urgent: the app crashes at login", sender_id=f"{p}-b",
                                          name=f"{p} B"))
    clock.advance(timedelta(minutes=5))
    for p in prefixes:
        reply = await client.post(f"/api/v1/tickets/{refs[p][0]}/replies", json={"text": "Looking."}, headers=auth)
        assert reply.status_code == 201
    clock.advance(timedelta(minutes=10))
    for p in prefixes:
        await post_message(client, auth, "It is invoice 77", sender_id=f"{p}-a")
    clock.advance(timedelta(minutes=5))
    for p in prefixes:
        pending = await client.patch(f"/api/v1/tickets/{refs[p][1]}", json={"status": "pending"}, headers=auth)
        assert pending.status_code == 200
    x, y = prefixes
    return (refs[x][0], refs[x][1]), (refs[y][0], refs[y][1])


async def test_messages_after_the_merge_follow_their_sender_back(client, auth, pool, clock):
    first = await post_message(client, auth, "My invoice is wrong", sender_id="p-a", email="p-a@example.net",
                               verified=["email"])
    clock.advance(timedelta(minutes=5))
    second = await post_message(client, auth, "Where is my parcel?", sender_id="p-b")
    a, b = await ticket_row(pool, first), await ticket_row(pool, second)
    merged = await client.post(f"/api/v1/customers/{a['customer_id']}/merge", json={"other": b["customer_id"]},
                               headers=LEAD)
    assert merged.status_code == 200
    clock.advance(timedelta(minutes=5))
    # Both write again after the merge: one thread.
    assert await post_message(client, auth, "from b, after", sender_id="p-b") == first
    assert await post_message(client, auth, "from a, after", sender_id="p-a") == first
    assert (await client.post(f"/api/v1/tickets/{first}/replies", json={"text": "We are on it."},
                              headers=AGENT)).status_code == 201
    [entry] = (await client.get(f"/api/v1/customers/{a['customer_id']}/merges", headers=LEAD)).json()["merges"]
    undone = await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=LEAD)
    assert undone.status_code == 200 and undone.json()["later_messages_moved"] == 1

    async def texts(ticket_id: int) -> list[str]:
        rows = await pool.fetch("SELECT body_text FROM messages WHERE ticket_id = $1"
                                " AND (direction = 'in' OR author_agent_id IS NOT NULL) ORDER BY id", ticket_id)
        return [r["body_text"] for r in rows]

    assert await texts(a["id"]) == ["My invoice is wrong", "from a, after", "We are on it."]
    assert await texts(b["id"]) == ["Where is my parcel?", "from b, after"]
    owners = await pool.fetch("SELECT DISTINCT customer_id FROM messages WHERE ticket_id = $1 AND direction = 'in'",
                              b["id"])
    assert [r["customer_id"] for r in owners] == [b["customer_id"]]


async def test_a_merge_that_a_later_merge_built_on_is_undone_after_it(client, auth, pool):
    refs = [await post_message(client, auth, f"hello {n}", sender_id=f"o-{n}") for n in range(3)]
    ids = [(await ticket_row(pool, ref))["customer_id"] for ref in refs]
    for other in ids[1:]:
        assert (await client.post(f"/api/v1/customers/{ids[0]}/merge", json={"other": other},
                                  headers=LEAD)).status_code == 200
    later, earlier = [m["id"] for m in (await client.get(f"/api/v1/customers/{ids[0]}/merges",
                                                         headers=LEAD)).json()["merges"]]
    refused = await client.post(f"/api/v1/merges/{earlier}/undo", headers=LEAD)
    assert refused.status_code == 409 and f"undo merge {later} first" in refused.json()["detail"]
    assert (await client.post(f"/api/v1/merges/{later}/undo", headers=LEAD)).status_code == 200
    assert (await client.post(f"/api/v1/merges/{earlier}/undo", headers=LEAD)).status_code == 200
    again = await client.post(f"/api/v1/merges/{earlier}/undo", headers=LEAD)
    assert again.status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 3
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE status = 'open'") == 3


async def test_only_leads_and_admins_undo_a_merge(client, auth, pool):
    refs = [await post_message(client, auth, f"hello {n}", sender_id=f"q-{n}") for n in range(2)]
    ids = [(await ticket_row(pool, ref))["customer_id"] for ref in refs]
    assert (await client.post(f"/api/v1/customers/{ids[0]}/merge", json={"other": ids[1]},
                              headers=LEAD)).status_code == 200
    [entry] = (await client.get(f"/api/v1/customers/{ids[0]}/merges", headers=AGENT)).json()["merges"]
    refused = await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=AGENT)
    assert refused.status_code == 403
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", ids[1]) == ids[0]
    assert (await client.post("/api/v1/merges/999999/undo", headers=LEAD)).status_code == 404
