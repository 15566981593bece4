"""The ingest hot paths (SPEC §4: one database round trip per message on the common follow-up),
and that every case the one-statement follow-up hands over to the full path still behaves as the
full path does: clocks, priority, tier, redelivery, search by the new ticket's reference."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from router.core.refs import ref
from router.core.search import document_terms
from router.core.store.tickets import ref_terms_sql
from router.db import ServingConnection


class Statements:
    """Counts the statements (= round trips, BEGIN and COMMIT included) sent on every connection."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def reset(self) -> None:
        self.sent.clear()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    seen = Statements()
    for name in ("execute", "fetch", "fetchrow", "fetchval", "executemany"):
        original = getattr(ServingConnection, name)

        def counting(self, query, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            seen.sent.append(query.split(None, 1)[0] if query.startswith(("BEGIN", "COMMIT")) else query[:60])
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(ServingConnection, name, counting)
    yield seen


def mail(text: str, external_id: str, sender: str = "round@example.net", **fields: object) -> InboundMessage:
    return InboundMessage("email", (Identity("email", sender),), text, external_id=external_id, **fields)


async def test_a_follow_up_by_the_same_customer_is_one_round_trip(pool, config, clock, statements):
    p = Pipeline(config, clock)
    first = await p.ingest(pool, mail("my parcel has not arrived", "r1@x"))
    statements.reset()
    clock.advance(timedelta(minutes=1))
    second = await p.ingest(pool, mail("any news on the parcel?", "r2@x"))
    assert second.ticket_id == first.ticket_id and not second.new_ticket and not second.duplicate
    assert len(statements.sent) == 1, statements.sent
    row = await pool.fetchrow("SELECT updated_at, last_customer_message_at FROM tickets WHERE id = $1",
                              first.ticket_id)
    assert row["updated_at"] == row["last_customer_message_at"] == clock()
    kinds = await pool.fetch("SELECT kind, payload FROM events WHERE payload->>'message_id' = $1::text",
                             str(second.message_id))
    assert [(k["kind"], k["payload"]["channel"]) for k in kinds] == [("message.received", "email")]


async def test_a_reply_threaded_by_in_reply_to_is_one_round_trip(pool, config, clock, statements):
    p = Pipeline(config, clock)
    first = await p.ingest(pool, mail("login error on the app", "t1@x"))
    statements.reset()
    reply = await p.ingest(pool, mail("still failing", "t2@x", thread_refs=("t1@x",)))
    assert reply.ticket_id == first.ticket_id
    assert len(statements.sent) == 1, statements.sent


async def test_a_new_ticket_costs_fewer_round_trips_than_before(pool, config, clock, statements):
    """A first-time sender: the follow-up attempt, BEGIN, the key lock, lookup-or-create, the ticket
    with its message, routing (read, decide, write), clocks, the ack, COMMIT — 10, was 12."""
    p = Pipeline(config, clock)
    created = await p.ingest(pool, mail("refund for invoice 42 please", "n1@x", sender="new@example.net"))
    assert created.new_ticket
    assert len(statements.sent) <= 10, statements.sent


async def test_the_opening_message_is_found_by_its_ticket_reference(pool, config, clock):
    created = await Pipeline(config, clock).ingest(pool, mail("where is my order", "s1@x"))
    number = int(created.ticket_ref[2:])
    terms = await pool.fetchval("SELECT search_terms FROM messages WHERE id = $1", created.message_id)
    assert set(document_terms([ref(number)])) <= set(terms)
    assert await pool.fetchval(f"SELECT {ref_terms_sql('$1::bigint')}", number) == document_terms([ref(number)])
    created_event = await pool.fetchval("SELECT payload FROM events WHERE kind = 'ticket.created' AND ticket_id = $1",
                                        created.ticket_id)
    assert created_event == {"ref": created.ticket_ref, "channel": "email", "message_id": created.message_id}
    kinds = await pool.fetch("SELECT kind FROM events WHERE ticket_id = $1 ORDER BY id", created.ticket_id)
    assert [k["kind"] for k in kinds][:2] == ["ticket.created", "message.received"]


async def test_a_redelivered_follow_up_changes_nothing(pool, config, clock):
    p = Pipeline(config, clock)
    await p.ingest(pool, mail("the app crashes", "d1@x"))
    clock.advance(timedelta(minutes=1))
    once = await p.ingest(pool, mail("it crashes again", "d2@x"))
    before = await pool.fetchval("SELECT updated_at FROM tickets WHERE id = $1", once.ticket_id)
    clock.advance(timedelta(minutes=1))
    again = await p.ingest(pool, mail("it crashes again", "d2@x"))
    assert again.duplicate and again.message_id == once.message_id and again.ticket_id == once.ticket_id
    assert await pool.fetchval("SELECT updated_at FROM tickets WHERE id = $1", once.ticket_id) == before
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE external_id = 'd2@x'") == 1


async def test_a_follow_up_after_an_agent_reply_starts_the_next_response_clock(client, auth, pool, config, clock):
    p = Pipeline(config, clock)
    first = await p.ingest(pool, mail("my invoice is wrong", "c1@x"))
    reply = await client.post(f"/api/v1/tickets/{first.ticket_ref}/replies", json={"text": "Checking."},
                              headers=auth)
    assert reply.status_code in (200, 201), reply.text
    clock.advance(timedelta(minutes=5))
    await p.ingest(pool, mail("thanks, any update?", "c2@x"))
    clock.advance(timedelta(minutes=5))
    await p.ingest(pool, mail("and another detail", "c3@x"))  # the clock runs already: same cycle
    row = await pool.fetchrow("SELECT cycle, started_at, met_at FROM sla_targets"
                              " WHERE ticket_id = $1 AND target = 'next_response'", first.ticket_id)
    assert row is not None and row["met_at"] is None
    assert row["started_at"] == clock() - timedelta(minutes=5)


async def test_a_follow_up_on_a_pending_ticket_reopens_it_and_resumes_its_clocks(pool, config, clock):
    p = Pipeline(config, clock)
    first = await p.ingest(pool, mail("shipping question", "p1@x"))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tickets SET status = 'pending' WHERE id = $1", first.ticket_id)
        await conn.execute("UPDATE sla_targets SET paused_at = $2 WHERE ticket_id = $1", first.ticket_id, clock())
    clock.advance(timedelta(hours=1))
    await p.ingest(pool, mail("here is the tracking number", "p2@x"))
    assert await pool.fetchval("SELECT status FROM tickets WHERE id = $1", first.ticket_id) == "open"
    assert await pool.fetchval("SELECT count(*) FROM sla_targets WHERE ticket_id = $1 AND paused_at IS NOT NULL",
                               first.ticket_id) == 0


async def test_an_urgent_follow_up_raises_the_priority_and_the_policy(pool, config, clock):
    p = Pipeline(config, clock)
    first = await p.ingest(pool, mail("question about my invoice", "u1@x"))
    await p.ingest(pool, mail("this is urgent", "u2@x"))
    row = await pool.fetchrow("SELECT priority, sla_policy FROM tickets WHERE id = $1", first.ticket_id)
    assert (row["priority"], row["sla_policy"]) == ("urgent", "urgent")
    policies = await pool.fetch("SELECT DISTINCT policy FROM sla_targets WHERE ticket_id = $1 AND met_at IS NULL",
                                first.ticket_id)
    assert [r["policy"] for r in policies] == ["urgent"]


async def test_a_vip_follow_up_is_classified_for_their_tier(pool, config, clock):
    p = Pipeline(config, clock)
    first = await p.ingest(pool, mail("question about my invoice", "v1@x"))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE customers SET tier = 'vip'")
    await p.ingest(pool, mail("one more question", "v2@x"))
    assert await pool.fetchval("SELECT priority FROM tickets WHERE id = $1", first.ticket_id) == "high"


async def test_a_follow_up_fills_in_a_name_the_customer_lacked(pool, config, clock):
    p = Pipeline(config, clock)
    await p.ingest(pool, mail("hello, my parcel", "a1@x"))
    await p.ingest(pool, mail("hello again", "a2@x", sender_name="Aya Tanaka"))
    assert await pool.fetchval("SELECT name FROM customers") == "Aya Tanaka"
