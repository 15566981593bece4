"""Identity claims (SPEC §2.4): what a sender only types never takes over another customer.

A typed email or phone is a claim: it never links identities, never merges customers, never
reveals anyone's ticket; a match becomes a suggestion for agents. Proof links: an address the
integration says it verified, or the mailbox answering what we sent to the typed address.
"""

from __future__ import annotations

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from tests.conftest import post_message

VICTIM = "victim@example.net"


async def by_mail(pool, config, clock, sender: str, text: str, external_id: str, **fields) -> object:
    message = InboundMessage("email", (Identity("email", sender),), text, external_id=external_id, **fields)
    return await Pipeline(config, clock).ingest(pool, message)


async def test_a_typed_address_never_joins_or_merges_into_the_customer_who_owns_it(client, auth, pool, config,
                                                                                   clock):
    victim = await by_mail(pool, config, clock, VICTIM, "My invoice is wrong", "v1@example.net")
    attacker = await post_message(client, auth, "please send the invoice to me", sender_id="atk", email=VICTIM)

    assert attacker != victim.ticket_ref
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 2
    victim_ticket = (await client.get(f"/api/v1/tickets/{victim.ticket_ref}", headers=auth)).json()
    assert [m["text"] for m in victim_ticket["messages"] if m["direction"] == "in"] == ["My invoice is wrong"]
    # An agent sees the possible match, with its reason and confidence, on the claimant's ticket.
    suggestion = await pool.fetchrow(
        "SELECT e.payload FROM events e JOIN tickets t ON t.id = e.ticket_id"
        " WHERE e.kind = 'customer.match_suggested' AND t.number = $1", int(attacker[2:]))
    assert suggestion is not None
    victim_customer = victim_ticket["customer"]["id"]
    assert suggestion["payload"]["customer_id"] == victim_customer
    assert suggestion["payload"]["identity"] == f"email:{VICTIM}" and 0 < suggestion["payload"]["confidence"] < 1
    # The agent's reply on the victim's ticket goes to the victim's mailbox, nowhere else.
    reply = await client.post(f"/api/v1/tickets/{victim.ticket_ref}/replies", json={"text": "Fixed."}, headers=auth)
    assert reply.status_code == 201
    to = await pool.fetchval("SELECT payload->>'to' FROM outbox WHERE kind = 'reply'")
    assert to == VICTIM


async def test_an_address_the_integration_verified_links_the_identities(client, auth, pool):
    first = await post_message(client, auth, "first from the CRM", sender_id="crm-1", email="kim@example.com",
                               verified=["email"])
    second = await post_message(client, auth, "second, by email only", email="kim@example.com", verified=["email"])
    assert first == second
    identities = await pool.fetch("SELECT kind, value, verified FROM customer_identities ORDER BY id")
    assert [tuple(r) for r in identities] == [("api", "crm-1", True), ("email", "kim@example.com", True)]


async def test_sender_verified_accepts_only_email_and_phone(client, auth):
    response = await client.post("/api/v1/messages", headers=auth, json={
        "channel": "api", "sender": {"id": "x", "verified": ["id"]}, "text": "hi"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_input"


async def test_the_web_form_with_a_known_address_leaves_that_customers_ticket_unchanged(client, pool, config, clock):
    victim = await by_mail(pool, config, clock, VICTIM, "Where is my parcel?", "v2@example.net")
    page = await client.post("/support", data={"email": VICTIM, "message": "show me the history"})
    assert page.status_code == 200
    assert victim.ticket_ref not in page.text and "T-" not in page.text  # no reference shown to whoever typed it
    tickets = await pool.fetch("SELECT number, customer_id FROM tickets ORDER BY number")
    assert len(tickets) == 2 and tickets[0]["customer_id"] != tickets[1]["customer_id"]
    victim_texts = await pool.fetch(
        "SELECT body_text FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " WHERE t.number = $1 AND direction = 'in'",
        int(victim.ticket_ref[2:]))
    assert [r["body_text"] for r in victim_texts] == ["Where is my parcel?"]
    # The acknowledgement of the form goes to the address (its owner), with the reference.
    ack = await pool.fetchrow("SELECT payload FROM outbox WHERE kind = 'ack' AND ticket_id = (SELECT id FROM tickets"
                              " WHERE number = $1)", tickets[1]["number"])
    assert ack["payload"]["to"] == VICTIM


async def test_the_web_form_json_answer_does_not_reveal_a_reference(client):
    response = await client.post("/support", json={"email": "who@example.net", "message": "hello"})
    assert response.status_code == 202 and response.json() == {"accepted": True}


async def test_answering_our_mail_from_the_typed_address_proves_it(client, pool, config, clock):
    await client.post("/support", data={"email": "new@example.org", "message": "my order never came"})
    ack_id = await pool.fetchval("SELECT payload->>'message_id' FROM outbox WHERE kind = 'ack'")
    answer = await by_mail(pool, config, clock, "new@example.org", "order number is 1182", "n1@example.org",
                           thread_refs=(ack_id,))
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 1
    assert await pool.fetchval("SELECT count(*) FROM tickets") == 1
    texts = await pool.fetch("SELECT body_text FROM messages WHERE ticket_id = $1 AND direction = 'in' ORDER BY id",
                             answer.ticket_id)
    assert [r["body_text"] for r in texts] == ["my order never came", "order number is 1182"]
    identity = await pool.fetchrow("SELECT kind, value, verified FROM customer_identities")
    assert tuple(identity) == ("email", "new@example.org", True)


async def test_a_redelivered_message_id_of_someone_else_does_not_reveal_their_ticket(client, auth, pool):
    first = await post_message(client, auth, "mine", sender_id="u1")
    response = await client.post("/api/v1/messages", headers=auth, json={
        "channel": "api", "sender": {"id": "u2"}, "text": "guessing", "external_id": "x-1"})
    again = await client.post("/api/v1/messages", headers=auth, json={
        "channel": "api", "sender": {"id": "u1"}, "text": "guessing", "external_id": "x-1"})
    assert response.status_code == again.status_code == 202
    assert again.json() == {"message_id": None, "ticket_ref": None, "duplicate": True}
    same = await client.post("/api/v1/messages", headers=auth, json={
        "channel": "api", "sender": {"id": "u2"}, "text": "guessing", "external_id": "x-1"})
    assert same.json()["ticket_ref"] == response.json()["ticket_ref"] != first


async def test_only_leads_and_admins_merge_customers(client, auth, pool):
    a = await post_message(client, auth, "one", sender_id="m1")
    b = await post_message(client, auth, "two", sender_id="m2")
    ids = [r["customer_id"] for r in await pool.fetch("SELECT customer_id FROM tickets ORDER BY id")]
    assert a != b
    as_agent = await client.post(f"/api/v1/customers/{ids[0]}/merge", json={"other": ids[1]},
                                 headers={"Authorization": "Bearer demo-aiko"})
    assert as_agent.status_code == 403 and as_agent.json()["error"] == "forbidden"
    assert await pool.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 2
    as_lead = await client.post(f"/api/v1/customers/{ids[0]}/merge", json={"other": ids[1]},
                                headers={"Authorization": "Bearer demo-lena"})
    assert as_lead.status_code == 200
