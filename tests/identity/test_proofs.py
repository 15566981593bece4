"""Proof of an address by a one-time code (SPEC §2.4): the right code links (merging the claimant
into the address's owner, undoably, or verifying the address), wrong guesses lock the code, an
expired code is refused, requests are rate limited, and the code never appears in a log, an event
or a message. An agent confirming an identity links it too; WhatsApp's number is proved by WhatsApp."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from router.core.actions import Context
from router.core.actions import identity as proofs
from router.core.errors import InvalidInput, RateLimited
from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from tests.conftest import post_message

HANAKO = Identity("email", "hanako@example.net")
AGENT = {"Authorization": "Bearer demo-aiko"}
LEAD = {"Authorization": "Bearer demo-lena"}


async def hanako_and_visitor(client, auth, pool, config, clock) -> tuple[int, int]:
    mail = InboundMessage("email", (HANAKO,), "My invoice is wrong", external_id="h-1@example.net")
    await Pipeline(config, clock).ingest(pool, mail)
    visitor_ref = await post_message(client, auth, "is my refund done?", sender_id="visitor-1", email=HANAKO.value,
                                     channel="chat")
    ids = [r["customer_id"] for r in await pool.fetch("SELECT customer_id FROM tickets ORDER BY id")]
    assert len(set(ids)) == 2 and visitor_ref
    return ids[0], ids[1]


async def sent_code(pool) -> tuple[str, dict]:
    payload = await pool.fetchval("SELECT payload FROM outbox WHERE kind = 'identity_proof' ORDER BY id DESC LIMIT 1")
    match = re.search(r"\b(\d{6})\b", payload["text"])
    assert match, payload
    return match.group(1), payload


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_the_right_code_merges_the_visitor_into_the_owner_undoably(client, auth, pool, config, clock, caplog):
    caplog.set_level(logging.DEBUG)
    ctx = Context(pool, config, clock)
    hanako, visitor = await hanako_and_visitor(client, auth, pool, config, clock)
    masked = await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    assert masked == "h…@example.net"
    code, payload = await sent_code(pool)
    assert payload["to"] == HANAKO.value and payload["auto_submitted"] is True

    assert await proofs.verify_proof(ctx, visitor, HANAKO, wrong(code)) is False
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", visitor) is None
    assert await proofs.verify_proof(ctx, visitor, HANAKO, code) is True
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", visitor) == hanako
    # One thread now; the merge is on record, by nobody, for the reason the issue names.
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE status = 'open'") == 1
    merge = await pool.fetchrow("SELECT id, survivor_id, merged_id, actor_id, reason FROM customer_merges")
    assert (merge["survivor_id"], merge["merged_id"], merge["actor_id"], merge["reason"]) == (
        hanako, visitor, None, "proved email by code")
    assert await pool.fetchval("SELECT status FROM identity_suggestions") == "merged"
    # A code works once.
    assert await proofs.verify_proof(ctx, hanako, HANAKO, code) is False

    # ... and the merge can be undone by a lead.
    undone = await client.post(f"/api/v1/merges/{merge['id']}/undo", json={"reason": "shared family mailbox"},
                               headers=LEAD)
    assert undone.status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE status = 'open'") == 2
    assert await pool.fetchval("SELECT status FROM identity_suggestions") == "dismissed"

    # The code was never logged, nor kept anywhere but the outbox mail that carries it.
    assert code not in caplog.text
    for table, column in (("events", "payload::text"), ("messages", "body_text"), ("identity_proofs", "kind")):
        assert not await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} LIKE '%' || $1 || '%'", code)
    assert await pool.fetchval("SELECT octet_length(code_hash) FROM identity_proofs") == 32


async def test_wrong_codes_lock_it_and_an_expired_code_is_refused(client, auth, pool, config, clock):
    ctx = Context(pool, config, clock)
    _, visitor = await hanako_and_visitor(client, auth, pool, config, clock)
    await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    code, _ = await sent_code(pool)
    for _ in range(proofs.MAX_ATTEMPTS):
        assert await proofs.verify_proof(ctx, visitor, HANAKO, wrong(code)) is False
    assert await proofs.verify_proof(ctx, visitor, HANAKO, code) is False  # locked: even the right one
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", visitor) is None

    await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    fresh, _ = await sent_code(pool)
    clock.advance(proofs.CODE_TTL + timedelta(seconds=1))
    assert await proofs.verify_proof(ctx, visitor, HANAKO, fresh) is False
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", visitor) is None


async def test_an_unknown_address_becomes_verified_and_the_answer_never_says_whose(client, auth, pool, config,
                                                                                   clock):
    ctx = Context(pool, config, clock)
    _, visitor = await hanako_and_visitor(client, auth, pool, config, clock)
    known = await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    nobody = await proofs.request_proof(ctx, visitor, Identity("email", "haruto@example.net"), channel="chat")
    assert (known, nobody) == ("h…@example.net", "h…@example.net")
    code, payload = await sent_code(pool)
    assert payload["to"] == "haruto@example.net"
    assert await proofs.verify_proof(ctx, visitor, Identity("email", "haruto@example.net"), code) is True
    identities = await pool.fetch("SELECT kind, value, verified FROM customer_identities WHERE customer_id = $1"
                                  " ORDER BY id", visitor)
    assert [tuple(r) for r in identities] == [("chat", "visitor-1", True), ("email", "haruto@example.net", True)]
    assert await pool.fetchval("SELECT count(*) FROM customer_merges") == 0


async def test_codes_are_rate_limited_per_customer_and_per_address(client, auth, pool, config, clock):
    ctx = Context(pool, config, clock)
    _, visitor = await hanako_and_visitor(client, auth, pool, config, clock)
    for _ in range(proofs.CODES_PER_CUSTOMER[0]):
        await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    with pytest.raises(RateLimited):
        await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    clock.advance(proofs.CODES_PER_CUSTOMER[1])
    others = [(await pool.fetchval("SELECT customer_id FROM tickets WHERE number = $1", int(ref[2:])))
              for ref in [await post_message(client, auth, "hi", sender_id=f"v-{n}", channel="chat") for n in range(3)]]
    # Past the address's hourly cap, others get the same answer as if it was sent; nothing is sent.
    for other in others:
        assert await proofs.request_proof(ctx, other, HANAKO, channel="chat") == "h…@example.net"
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'identity_proof'") == \
        proofs.CODES_PER_ADDRESS[0][0]
    with pytest.raises(InvalidInput):
        await proofs.request_proof(ctx, visitor, Identity("phone", "+819012345678"), channel="chat")


async def test_the_code_mail_is_in_the_customers_language(client, auth, pool, config, clock):
    ctx = Context(pool, config, clock)
    ref = await post_message(client, auth, "ログインできません、エラーが出ます", sender_id="visitor-ja", channel="chat")
    customer = await pool.fetchval("SELECT customer_id FROM tickets WHERE number = $1", int(ref[2:]))
    await proofs.request_proof(ctx, customer, HANAKO, channel="chat")
    _, payload = await sent_code(pool)
    assert payload["language"] == "ja" and "確認コード" in payload["text"]


async def test_an_agent_confirms_a_phone_and_whatsapp_from_it_joins_her_thread(client, auth, pool, config, clock):
    hanako, _ = await hanako_and_visitor(client, auth, pool, config, clock)
    added = await client.post(f"/api/v1/customers/{hanako}/identities",
                              json={"kind": "phone", "value": "+81 90-1234-5678"}, headers=AGENT)
    assert added.status_code == 201, added.text
    assert {"kind": "phone", "value": "+819012345678", "verified": True} in added.json()["identities"]
    whatsapp = InboundMessage("whatsapp", (Identity("whatsapp", "819012345678"), Identity("phone", "+819012345678")),
                              "on the train, any news?", external_id="wamid.1")
    result = await Pipeline(config, clock).ingest(pool, whatsapp)
    assert await pool.fetchval("SELECT customer_id FROM tickets WHERE id = $1", result.ticket_id) == hanako
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE customer_id = $1", hanako) == 1

    # The same number on another customer: a conflict that suggests the merge instead.
    other = await post_message(client, auth, "hello", sender_id="someone")
    other_id = await pool.fetchval("SELECT customer_id FROM tickets WHERE number = $1", int(other[2:]))
    clash = await client.post(f"/api/v1/customers/{other_id}/identities",
                              json={"kind": "phone", "value": "+819012345678"}, headers=AGENT)
    assert clash.status_code == 409 and "merge" in clash.json()["detail"]
    listed = (await client.get(f"/api/v1/customers/{other_id}/suggestions", headers=AGENT)).json()["suggestions"]
    assert [(s["other"]["id"], s["identity"]["value"]) for s in listed] == [(hanako, "+819012345678")]
    bad = await client.post(f"/api/v1/customers/{other_id}/identities", json={"kind": "fax", "value": "1"},
                            headers=AGENT)
    assert bad.status_code == 422


async def test_the_one_click_link_proves_only_when_its_owner_confirms(client, auth, pool, config, clock):
    ctx = Context(pool, config, clock)
    hanako, visitor = await hanako_and_visitor(client, auth, pool, config, clock)
    await proofs.request_proof(ctx, visitor, HANAKO, channel="chat")
    _, payload = await sent_code(pool)
    path = re.search(r"http://[^/\s]+(/verify/\S+)", payload["text"]).group(1)

    opened = await client.get(path)  # a mail scanner or link preview: nothing happens
    assert opened.status_code == 200 and "h…@example.net" in opened.text and "hanako@" not in opened.text
    assert opened.headers["cache-control"] == "no-store"
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", visitor) is None

    tampered = await client.post(path[:-2] + ("AA" if not path.endswith("AA") else "BB"))
    assert tampered.status_code == 404
    assert await pool.fetchval("SELECT merged_into FROM customers WHERE id = $1", visitor) is None

    confirmed = await client.post(path, headers={"Accept-Language": "ja"})
    assert confirmed.status_code == 200 and "確認しました" in confirmed.text
    merge = await pool.fetchrow("SELECT survivor_id, merged_id, reason FROM customer_merges")
    assert tuple(merge) == (hanako, visitor, "proved email by link")
    again = await client.post(path)
    assert again.status_code == 200 and "used already" in again.text

    await proofs.request_proof(ctx, hanako, Identity("email", "hanako.work@example.net"), channel="chat")
    _, payload = await sent_code(pool)
    late = re.search(r"http://[^/\s]+(/verify/\S+)", payload["text"]).group(1)
    clock.advance(proofs.CODE_TTL)
    assert (await client.post(late)).status_code == 410
    assert not await pool.fetchval("SELECT count(*) FROM customer_identities WHERE value = 'hanako.work@example.net'")
