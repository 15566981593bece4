"""Outbound mail never carries a header a customer wrote into a subject, name or Message-ID, and a
mail that cannot be built safely fails at once, visibly, instead of being retried."""

from __future__ import annotations

from dataclasses import replace

import pytest

from channels.email.send import build_message
from router.core.delivery import OutboxItem
from router.core.outbound import Dispatcher
from router.workers import senders_for
from tests.conftest import post_message

INJECTIONS = [
    "=?utf-8?q?Hi=0D=0AX-Injected=3A_yes?=",      # an encoded word that decodes to CR/LF (CVE-2024-6923)
    "Hi\r\nX-Injected: yes",                       # raw CR/LF
    "Hi\nX-Injected: yes",
    "=?utf-8?b?SGkNClgtSW5qZWN0ZWQ6IHllcw==?=",   # the same in base64
]


def item(**payload: object) -> OutboxItem:
    base = {"to": "customer@example.net", "subject": "Re: [T-1] hello", "text": "body", "message_id": "m1@example.com",
            "ticket_ref": "T-1"}
    return OutboxItem(1, "reply:1", "reply", "email", 1, {**base, **payload}, 1)


@pytest.mark.parametrize("subject", INJECTIONS)
def test_a_subject_cannot_add_a_header(config, subject):
    raw = build_message(config, item(subject=f"Re: [T-1] {subject}")).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"X-Injected" not in head.split(b"Subject:")[0]
    assert not any(line.startswith(b"X-Injected") for line in head.split(b"\r\n"))


@pytest.mark.parametrize("message_id", ["x=?utf-8?q?=0D=0AX-Bad=3A_1?=@y", "a\r\nX-Bad: 1@y"])
def test_a_message_id_from_a_customer_cannot_add_a_header(config, message_id):
    raw = build_message(config, item(in_reply_to=message_id, references=[message_id])).as_bytes()
    assert not any(line.lower().startswith(b"x-bad") for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))


async def test_reply_to_an_injected_subject_reaches_the_customer_without_the_header(client, auth, pool, config, clock,
                                                                                    sink):
    ref = await post_message(client, auth, "question", sender_id="c1", email="c1@example.net", verified=["email"],
                             subject=INJECTIONS[0])
    assert (await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "answer"}, headers=auth)).status_code \
        == 201
    relay = replace(config, settings=replace(config.settings, smtp_relay=f"smtp://127.0.0.1:{sink.port}"))
    assert await Dispatcher(pool, senders_for(relay), clock).run_once() == 2  # the ack and the reply
    for raw in sink.raw:
        assert not any(line.startswith(b"X-Injected") for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))


async def test_an_unbuildable_reply_is_dead_at_once_and_shown_on_the_ticket(client, auth, pool, config, clock, sink):
    ref = await post_message(client, auth, "q", sender_id="c2", email="c2@example.net", verified=["email"])
    await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "answer"}, headers=auth)
    # A payload the mail builder cannot turn into a mail (here: the text was lost).
    await pool.execute("UPDATE outbox SET payload = payload - 'text' WHERE kind = 'reply'")
    relay = replace(config, settings=replace(config.settings, smtp_relay=f"smtp://127.0.0.1:{sink.port}"))
    await Dispatcher(pool, senders_for(relay), clock).run_once()
    row = await pool.fetchrow("SELECT status, attempts, last_error FROM outbox WHERE kind = 'reply'")
    assert (row["status"], row["attempts"]) == ("dead", 1) and "cannot build" in row["last_error"]
    ticket = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    [reply] = [m for m in ticket["messages"] if m["direction"] == "out" and m["text"] == "answer"]
    assert reply["delivery"]["status"] == "dead" and "cannot build" in reply["delivery"]["error"]
    assert await pool.fetchval("SELECT count(*) FROM events WHERE kind = 'outbox.dead'") == 1
