"""Defects a hostile review of the identity work found, each pinned by the attack or accident it
describes: typed addresses never become where an owner's replies go, an undo racing a message
leaves nothing on the wrong side, undone merges are surveyed, bad input is a 422 not a 500, and a
code request never tells the asker that someone else asked for the same address."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from router.core.actions import Context
from router.core.actions import identity as proofs
from router.core.inbound import Identity, InboundMessage
from router.core.merge import split
from router.core.pipeline import Pipeline
from tests.conftest import post_message
from tests.csat.conftest import HOUR, decision, mail_config, reply_and_solve, scheduler, survey_rows

__all__ = ["mail_config", "scheduler"]  # the feedback tests' fixtures, used here by name

AGENT = {"Authorization": "Bearer demo-aiko"}
LEAD = {"Authorization": "Bearer demo-lena"}
OWNER_PHONE = "+819012345678"


async def send(client, auth, sender: dict[str, object], text: str) -> str:
    answer = await client.post("/api/v1/messages", json={"channel": "api", "sender": sender, "text": text},
                               headers=auth)
    assert answer.status_code == 202, answer.text
    ref: str = answer.json()["ticket_ref"]
    return ref


async def ticket(pool, ref: str):
    return await pool.fetchrow("SELECT id, customer_id, status FROM tickets WHERE number = $1", int(ref[2:]))


async def reply_goes_to(client, pool, ref: str, channel: str = "email") -> str | None:
    answer = await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "Here is your answer.",
                                                                       "channel": channel}, headers=AGENT)
    if answer.status_code != 201:
        return None
    to: str | None = await pool.fetchval("SELECT payload->>'to' FROM outbox WHERE kind = 'reply' ORDER BY id DESC"
                                         " LIMIT 1")
    return to


# H1 ------------------------------------------------------------------------------------------------


async def test_a_suggestion_merge_never_sends_the_owners_replies_to_what_the_claimant_typed(client, auth, pool):
    owner_ref = await send(client, auth, {"id": "o-1", "phone": OWNER_PHONE, "verified": ["phone"]},
                           "My invoice is wrong")
    owner = (await ticket(pool, owner_ref))["customer_id"]
    await send(client, auth, {"phone": OWNER_PHONE, "email": "attacker@evil.example"}, "I am the owner, really")
    [suggestion] = (await client.get(f"/api/v1/customers/{owner}/suggestions", headers=AGENT)).json()["suggestions"]
    merged = await client.post(f"/api/v1/customers/{owner}/suggestions/{suggestion['id']}/merge", headers=AGENT)
    assert merged.status_code == 201, merged.text

    assert await reply_goes_to(client, pool, owner_ref) is None  # the owner has no email: refused, never sent
    assert not await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'reply'"
                                   " AND payload->>'to' = 'attacker@evil.example'")
    assert not await pool.fetchval("SELECT count(*) FROM customer_identities WHERE value = 'attacker@evil.example'"
                                   " AND customer_id = $1", owner)
    # The dropped claim is on the merge log: the undo gives the claimant back exactly what they typed.
    [entry] = (await client.get(f"/api/v1/customers/{owner}/merges", headers=LEAD)).json()["merges"]
    assert (await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=LEAD)).status_code == 200
    claimant = suggestion["claimant"]["id"]
    typed = await pool.fetch("SELECT kind, value, verified FROM customer_identities WHERE customer_id = $1"
                             " ORDER BY kind", claimant)
    assert [tuple(r) for r in typed] == [("email", "attacker@evil.example", False), ("phone", OWNER_PHONE, False)]
    senders = await pool.fetch("SELECT sender_identity_id FROM messages WHERE customer_id = $1"
                              " AND direction = 'in'", claimant)
    assert senders and all(r["sender_identity_id"] is not None for r in senders)


async def test_an_address_a_lead_merge_brought_in_unverified_is_not_where_replies_go(client, auth, pool):
    """Second guard: a merged customer with a proved identity of their own may carry a typed address;
    it stays on the profile but replies never go there while the merge holds."""
    owner_ref = await send(client, auth, {"id": "o-2", "phone": OWNER_PHONE, "verified": ["phone"]}, "Hello")
    other_ref = await send(client, auth, {"id": "k-2", "email": "typed@evil.example"}, "Hello too")
    owner, other = (await ticket(pool, owner_ref))["customer_id"], (await ticket(pool, other_ref))["customer_id"]
    assert (await client.post(f"/api/v1/customers/{owner}/merge", json={"other": other},
                              headers=LEAD)).status_code == 200
    assert await reply_goes_to(client, pool, owner_ref) is None
    # A web-form sender known only by what they typed still hears back there.
    form_ref = await send(client, auth, {"email": "form-only@example.net"}, "From the form")
    assert await reply_goes_to(client, pool, form_ref) == "form-only@example.net"


# H4 ------------------------------------------------------------------------------------------------


async def test_a_claimant_never_joins_an_earlier_claimant_who_typed_more(client, auth, pool):
    attacker_ref = await send(client, auth, {"phone": "+819011112222", "email": "attacker@evil.example"}, "hi")
    victim_ref = await send(client, auth, {"phone": "+819011112222"}, "My card ends 4242")
    assert victim_ref != attacker_ref
    assert (await ticket(pool, victim_ref))["customer_id"] != (await ticket(pool, attacker_ref))["customer_id"]
    assert await reply_goes_to(client, pool, victim_ref, channel="phone") in (None, "+819011112222")
    assert not await pool.fetchval("SELECT count(*) FROM outbox WHERE payload::text LIKE '%4242%'"
                                   " AND payload->>'to' = 'attacker@evil.example'")
    # The same claims typed again are the same claimant: their one thread.
    assert await send(client, auth, {"phone": "+819011112222"}, "and again") == victim_ref


# H2 ------------------------------------------------------------------------------------------------


async def merged_pair(client, auth, pool) -> tuple[int, int, int, int]:
    """Two proved customers, each with an active ticket, merged by a lead: (merge, survivor, merged,
    merged side's ticket id)."""
    a_ref = await send(client, auth, {"id": "race-a", "email": "a@example.net", "verified": ["email"]}, "A writes")
    b_ref = await send(client, auth, {"id": "race-b", "email": "b@example.net", "verified": ["email"]}, "B writes")
    a, b = await ticket(pool, a_ref), await ticket(pool, b_ref)
    assert (await client.post(f"/api/v1/customers/{a['customer_id']}/merge", json={"other": b["customer_id"]},
                              headers=LEAD)).status_code == 200
    merge_id = await pool.fetchval("SELECT id FROM customer_merges ORDER BY id DESC LIMIT 1")
    return merge_id, a["customer_id"], b["customer_id"], b["id"]


async def test_a_message_arriving_while_an_undo_waits_goes_to_its_own_side(client, auth, pool, config, clock):
    """Deterministic: the undo holds its locks uncommitted while the message waits on them."""
    merge_id, _, merged, merged_ticket = await merged_pair(client, auth, pool)
    clock.advance(timedelta(minutes=1))
    message = InboundMessage("api", (Identity("api", "race-b"),), "B again, during the undo",
                             external_id="race-b-2")
    async with pool.acquire() as conn:
        undo = conn.transaction()
        await undo.start()
        await split(conn, config.sla, merge_id, clock(), why="two people", actor_id=None,
                    reopen_window=config.service.reopen_window)
        ingest = asyncio.create_task(Pipeline(config, clock).ingest(pool, message))
        while not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                                      conn.get_server_pid()):  # the message waits on the undo's locks
            assert not ingest.done(), ingest
            await asyncio.sleep(0.01)
        await undo.commit()
    result = await ingest
    row = await pool.fetchrow("SELECT ticket_id, customer_id FROM messages WHERE id = $1", result.message_id)
    assert (row["ticket_id"], row["customer_id"]) == (merged_ticket, merged)


async def test_undo_and_a_message_at_once_end_with_the_message_on_its_own_side(client, auth, pool, config, clock):
    """Whichever commits first, the message ends on the merged side's ticket (several start orders)."""
    merge_id, survivor, merged, merged_ticket = await merged_pair(client, auth, pool)
    for round_, delay in enumerate((0.0, 0.0, 0.001, 0.003, 0.01, 0.03)):
        if round_:
            assert (await client.post(f"/api/v1/customers/{survivor}/merge", json={"other": merged},
                                      headers=LEAD)).status_code == 200
            merge_id = await pool.fetchval("SELECT id FROM customer_merges ORDER BY id DESC LIMIT 1")
        clock.advance(timedelta(minutes=1))
        message = InboundMessage("api", (Identity("api", "race-b"),), f"B, round {round_}",
                                 external_id=f"race-b-round-{round_}")

        async def undo(wait: float = delay, merge: int = merge_id) -> None:
            await asyncio.sleep(wait)
            async with pool.acquire() as conn, conn.transaction():
                await split(conn, config.sla, merge, clock(), why="two people", actor_id=None,
                            reopen_window=config.service.reopen_window)

        result, _ = await asyncio.gather(Pipeline(config, clock).ingest(pool, message), undo())
        row = await pool.fetchrow("SELECT m.customer_id, t.id, t.customer_id AS owner FROM messages m"
                                  " JOIN tickets t ON t.id = m.ticket_id WHERE m.id = $1", result.message_id)
        assert (row["customer_id"], row["owner"], row["id"]) == (merged, merged, merged_ticket), (round_, dict(row))


# H3 ------------------------------------------------------------------------------------------------


async def test_undo_returns_later_messages_of_a_side_that_had_no_active_ticket(client, auth, pool, config, clock):
    a_ref = await send(client, auth, {"id": "h3-a", "email": "h3a@example.net", "verified": ["email"]}, "A writes")
    b_ref = await send(client, auth, {"id": "h3-b"}, "B writes")
    assert (await client.patch(f"/api/v1/tickets/{b_ref}", json={"status": "solved"},
                               headers=AGENT)).status_code == 200
    a, b = await ticket(pool, a_ref), await ticket(pool, b_ref)
    assert (await client.post(f"/api/v1/customers/{a['customer_id']}/merge", json={"other": b["customer_id"]},
                              headers=LEAD)).status_code == 200
    clock.advance(timedelta(minutes=5))
    assert await send(client, auth, {"id": "h3-b"}, "B, after the merge") == a_ref  # one thread while merged
    [entry] = (await client.get(f"/api/v1/customers/{a['customer_id']}/merges", headers=LEAD)).json()["merges"]
    undone = await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=LEAD)
    assert undone.status_code == 200 and undone.json()["later_messages_moved"] == 1
    row = await pool.fetchrow("SELECT m.customer_id, m.ticket_id, t.status FROM messages m JOIN tickets t"
                              " ON t.id = m.ticket_id WHERE m.body_text = 'B, after the merge'")
    # Within the reopen window: B's own ticket, reopened, theirs.
    assert (row["customer_id"], row["ticket_id"], row["status"]) == (b["customer_id"], b["id"], "open")


async def test_undo_past_the_reopen_window_starts_a_new_ticket_for_the_later_messages(client, auth, pool, config,
                                                                                     clock):
    a_ref = await send(client, auth, {"id": "h3w-a", "email": "w@example.net", "verified": ["email"]}, "A writes")
    b_ref = await send(client, auth, {"id": "h3w-b"}, "B writes")
    assert (await client.patch(f"/api/v1/tickets/{b_ref}", json={"status": "solved"},
                               headers=AGENT)).status_code == 200
    a, b = await ticket(pool, a_ref), await ticket(pool, b_ref)
    assert (await client.post(f"/api/v1/customers/{a['customer_id']}/merge", json={"other": b["customer_id"]},
                              headers=LEAD)).status_code == 200
    clock.advance(timedelta(minutes=5))
    await send(client, auth, {"id": "h3w-b"}, "B, after the merge")
    clock.advance(config.service.reopen_window + timedelta(hours=1))
    [entry] = (await client.get(f"/api/v1/customers/{a['customer_id']}/merges", headers=LEAD)).json()["merges"]
    assert (await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=LEAD)).status_code == 200
    row = await pool.fetchrow("SELECT m.customer_id, t.id, t.customer_id AS owner, t.status, t.previous_ticket_id"
                              " FROM messages m JOIN tickets t ON t.id = m.ticket_id"
                              " WHERE m.body_text = 'B, after the merge'")
    assert row["customer_id"] == row["owner"] == b["customer_id"]
    assert row["id"] not in (a["id"], b["id"]) and row["status"] == "open" and row["previous_ticket_id"] == b["id"]
    assert await pool.fetchval("SELECT count(*) FROM sla_targets WHERE ticket_id = $1", row["id"])


# M3 ------------------------------------------------------------------------------------------------


async def test_a_ticket_whose_merge_was_undone_is_surveyed(scheduler, client, auth, clock, pool):
    first = await post_message(client, auth, "My invoice is wrong", email="kim@customer.example")
    second = await post_message(client, auth, "Invoice question", sender_id="kim-chat", channel="chat")
    a, b = await ticket(pool, first), await ticket(pool, second)
    assert (await client.post(f"/api/v1/customers/{a['customer_id']}/merge", json={"other": b["customer_id"]},
                              headers=LEAD)).status_code == 200
    [entry] = (await client.get(f"/api/v1/customers/{a['customer_id']}/merges", headers=LEAD)).json()["merges"]
    assert (await client.post(f"/api/v1/merges/{entry['id']}/undo", headers=LEAD)).status_code == 200
    await reply_and_solve(client, auth, second)
    clock.advance(2 * HOUR)
    await scheduler.run_once()
    assert await decision(pool, second) != "merged"
    assert int(second[2:]) in [r["number"] for r in await survey_rows(pool)]


# M1, M4 --------------------------------------------------------------------------------------------


async def test_a_link_with_a_non_ascii_digit_is_invalid_not_a_crash(client):
    answer = await client.get("/verify/%C2%B2.abc")
    assert answer.status_code == 404


async def test_an_overlong_identity_is_refused(client, auth, pool):
    ref = await send(client, auth, {"id": "long-1"}, "hello")
    customer = (await ticket(pool, ref))["customer_id"]
    for kind, value in (("email", "a" * 20_000 + "@example.net"), ("phone", "+81" + "1" * 40)):
        answer = await client.post(f"/api/v1/customers/{customer}/identities", json={"kind": kind, "value": value},
                                   headers=AGENT)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]


# L3 ------------------------------------------------------------------------------------------------


async def test_a_code_request_past_the_address_caps_looks_like_any_other_and_sends_nothing(
        client, auth, pool, config, clock):
    ctx = Context(pool, config, clock)
    address = Identity("email", "hanako@example.net")
    visitors = []
    for n in range(12):
        ref = await send(client, auth, {"id": f"cap-{n}"}, "hi")
        visitors.append((await ticket(pool, ref))["customer_id"])
    (hourly, hour), (daily, _) = proofs.CODES_PER_ADDRESS
    sent = 0
    for n, visitor in enumerate(visitors):
        if n and n % hourly == 0:
            clock.advance(hour)
        assert await proofs.request_proof(ctx, visitor, address, channel="chat") == "h…@example.net"
        sent += 1
    assert sent > daily
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'identity_proof'") == daily
