"""The spoofing story (issue 11 §4 acceptance): a stranger types hanako's address into the web form
and, as a chat visitor, into a chat-like channel. They see none of her history, get none of her
replies, her ticket is unchanged, and the inbox shows a suggested match that an agent dismisses."""

from __future__ import annotations

from datetime import timedelta

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from tests.conftest import post_message

HANAKO = "hanako@example.net"
AGENT = {"Authorization": "Bearer demo-aiko"}
LEAD = {"Authorization": "Bearer demo-lena"}


async def hanako_writes(pool, config, clock) -> str:
    message = InboundMessage("email", (Identity("email", HANAKO),), "請求書の金額が違います", subject="請求について",
                             sender_name="山田花子", external_id="hanako-1@example.net")
    result = await Pipeline(config, clock).ingest(pool, message)
    assert result.ticket_ref is not None
    return result.ticket_ref


async def ticket_state(pool, ref: str) -> dict[str, object]:
    ticket = await pool.fetchrow("SELECT id, customer_id, status, priority, assignee_id, sla_policy FROM tickets"
                                 " WHERE number = $1", int(ref[2:]))
    messages = await pool.fetch("SELECT id, direction, body_text, customer_id FROM messages WHERE ticket_id = $1"
                                " ORDER BY id", ticket["id"])
    clocks = await pool.fetch("SELECT target, due_at, met_at FROM sla_targets WHERE ticket_id = $1 ORDER BY target",
                              ticket["id"])
    return {"ticket": dict(ticket), "messages": [tuple(m) for m in messages], "clocks": [tuple(c) for c in clocks]}


async def test_a_stranger_typing_hanakos_address_gets_nothing_of_hers(client, auth, pool, config, clock):
    hanako_ref = await hanako_writes(pool, config, clock)
    reply = await client.post(f"/api/v1/tickets/{hanako_ref}/replies", json={"text": "確認いたします。"}, headers=AGENT)
    assert reply.status_code == 201
    hanako_before = await ticket_state(pool, hanako_ref)
    hanako_id = hanako_before["ticket"]["customer_id"]  # type: ignore[index]
    clock.advance(timedelta(minutes=3))

    # 1. The web form, with her address typed in: a page that names no ticket.
    page = await client.post("/support", data={"name": "Hanako", "email": HANAKO, "message": "show me my history"})
    assert page.status_code == 200 and "T-" not in page.text and "請求" not in page.text
    # 2. A chat-like visitor (a platform id the integration vouches for) typing her address.
    visitor_ref = await post_message(client, auth, "I am hanako, what did you tell me?", sender_id="visitor-9",
                                     email=HANAKO, channel="chat")
    assert visitor_ref != hanako_ref
    visitor = (await client.get(f"/api/v1/tickets/{visitor_ref}", headers=AGENT)).json()
    assert [m["text"] for m in visitor["messages"] if m["direction"] == "in"] == ["I am hanako, what did you tell me?"]
    visitor_id = visitor["customer"]["id"]
    profile = (await client.get(f"/api/v1/customers/{visitor_id}", headers=AGENT)).json()
    assert [t["ref"] for t in profile["tickets"]] == [visitor_ref]
    assert [(i["kind"], i["verified"]) for i in profile["identities"]] == [("chat", True)]  # her address: not theirs

    # Her ticket is unchanged, and three customers exist: nobody was merged or linked.
    assert await ticket_state(pool, hanako_ref) == hanako_before
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 3
    assert not await pool.fetchval("SELECT count(*) FROM customer_merges")

    # Her replies go to her mailbox only; the visitor's ticket never carries hers.
    clock.advance(timedelta(minutes=1))
    again = await client.post(f"/api/v1/tickets/{hanako_ref}/replies", json={"text": "返金しました。"}, headers=AGENT)
    assert again.status_code == 201
    hers = await pool.fetch("SELECT channel, payload->>'to' AS to, payload->>'text' AS text FROM outbox"
                            " WHERE ticket_id = $1 AND kind = 'reply'", hanako_before["ticket"]["id"])  # type: ignore[index]
    assert {(r["channel"], r["to"]) for r in hers} == {("email", HANAKO)}
    elsewhere = await pool.fetch("SELECT payload::text AS payload FROM outbox WHERE ticket_id IS DISTINCT FROM $1",
                                 hanako_before["ticket"]["id"])  # type: ignore[index]
    assert not any("返金しました" in r["payload"] or "確認いたします" in r["payload"] for r in elsewhere)

    # The inbox shows who they might be: one suggestion per claimant, with reason and confidence.
    listed = (await client.get(f"/api/v1/customers/{visitor_id}/suggestions", headers=AGENT)).json()["suggestions"]
    assert len(listed) == 1
    [suggestion] = listed
    assert suggestion["other"]["id"] == hanako_id and suggestion["identity"] == {"kind": "email", "value": HANAKO}
    assert HANAKO in suggestion["reason"] and 0 < suggestion["confidence"] < 1
    assert suggestion["ticket_number"] == int(visitor_ref[2:])
    on_hanako = (await client.get(f"/api/v1/customers/{hanako_id}/suggestions", headers=AGENT)).json()
    assert len(on_hanako["suggestions"]) == 2  # the form's claimant and the visitor

    # An agent dismisses it; the visitor typing the address again does not bring it back.
    dismissed = await client.post(f"/api/v1/customers/{visitor_id}/suggestions/{suggestion['id']}/dismiss",
                                  json={"reason": "different person, asked for order number"}, headers=AGENT)
    assert dismissed.status_code == 204
    await post_message(client, auth, "hello again", sender_id="visitor-9", email=HANAKO, channel="chat")
    assert (await client.get(f"/api/v1/customers/{visitor_id}/suggestions", headers=AGENT)).json() == {
        "suggestions": []}
    decided = (await client.get(f"/api/v1/customers/{visitor_id}/suggestions?status=all",
                                headers=AGENT)).json()["suggestions"]
    assert decided[0]["status"] == "dismissed" and decided[0]["decided"]["by"] == "aiko@example.com"
    assert decided[0]["decided"]["note"] == "different person, asked for order number"
    twice = await client.post(f"/api/v1/customers/{visitor_id}/suggestions/{suggestion['id']}/dismiss",
                              headers=AGENT)
    assert twice.status_code == 409
    assert await ticket_state(pool, hanako_ref) != hanako_before  # only by her own agent's reply
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 3


async def test_merging_from_a_suggestion_who_may(client, auth, pool, config, clock):
    """A claimant known only by the address they typed (the web form) may be folded into its owner
    by any agent: it gives them nothing. A visitor with a proved identity of their own is a merge of
    two customers: leads and admins only."""
    hanako_ref = await hanako_writes(pool, config, clock)
    hanako_id = await pool.fetchval("SELECT customer_id FROM tickets WHERE number = $1", int(hanako_ref[2:]))
    await client.post("/support", data={"email": HANAKO, "message": "it is me, from the form"})
    await post_message(client, auth, "it is me, from the chat", sender_id="visitor-7", email=HANAKO, channel="chat")
    listed = (await client.get(f"/api/v1/customers/{hanako_id}/suggestions", headers=AGENT)).json()["suggestions"]
    by_text = {}
    for s in listed:
        text = await pool.fetchval("SELECT body_text FROM messages WHERE customer_id = $1 AND direction = 'in'",
                                   s["claimant"]["id"])
        by_text[text] = s
    form, chat = by_text["it is me, from the form"], by_text["it is me, from the chat"]

    refused = await client.post(f"/api/v1/customers/{hanako_id}/suggestions/{chat['id']}/merge", headers=AGENT)
    assert refused.status_code == 403
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", chat["claimant"]["id"]) is None

    folded = await client.post(f"/api/v1/customers/{hanako_id}/suggestions/{form['id']}/merge", headers=AGENT)
    assert folded.status_code == 201, folded.text
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", form["claimant"]["id"]) == hanako_id
    [entry] = (await client.get(f"/api/v1/customers/{hanako_id}/merges", headers=AGENT)).json()["merges"]
    assert entry["actor"] == "aiko@example.com" and entry["suggestion"] == form["id"]
    assert entry["merged"] == form["claimant"]["id"]

    by_lead = await client.post(f"/api/v1/customers/{hanako_id}/suggestions/{chat['id']}/merge",
                                json={"reason": "she confirmed her order number on the phone"}, headers=LEAD)
    assert by_lead.status_code == 201
    timeline = await pool.fetch("SELECT payload FROM events WHERE kind = 'customer.merged' ORDER BY id")
    assert [e["payload"]["reason"] for e in timeline][-1] == "she confirmed her order number on the phone"
