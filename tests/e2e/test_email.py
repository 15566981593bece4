"""Email end to end over real sockets: smtplib → our SMTP intake → PostgreSQL → API; acks and replies
out through the outbox to a local SMTP sink standing in for the relay."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import replace
from email.header import Header
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from channels.email.intake import start_server
from router.core.outbound import Dispatcher
from router.workers import senders_for, smtp_intake_handler
from tests.conftest import free_port


@pytest.fixture
async def mail_config(config, sink):
    return replace(config, settings=replace(config.settings, smtp_relay=f"smtp://127.0.0.1:{sink.port}"))


@pytest.fixture
async def intake(mail_config, app, pool):
    svc = app.state.services
    svc.config = mail_config
    port = free_port()
    server = await start_server(smtp_intake_handler(mail_config, pool, lambda: svc.pipeline, svc.metrics),
                                "127.0.0.1", port, hostname="example.com")
    yield port
    server.close()
    await server.wait_closed()


@pytest.fixture
def dispatcher(mail_config, pool, clock):
    return Dispatcher(pool, senders_for(mail_config), clock)


def mail(sender: str, subject: str, text: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


async def smtp_send(port: int, message: EmailMessage | bytes, *, to: str = "support@example.com",
                    sender: str = "customer@customer.example") -> dict:
    """Send with the standard library's client, as a mail server would (in a thread: it blocks)."""
    def send() -> dict:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            if isinstance(message, bytes):
                return client.sendmail(sender, [to], message)
            return client.send_message(message, from_addr=sender, to_addrs=[to])

    return await asyncio.to_thread(send)


async def tickets_of(client, auth):
    return (await client.get("/api/v1/tickets", headers=auth)).json()["tickets"]


async def test_mail_becomes_ticket_and_ack_threads_back(intake, dispatcher, sink, client, auth):
    first = mail("山田 太郎 <taro@customer.example>", "ログインできません", "昨日からログインするとエラーが出ます。")
    await smtp_send(intake, first)
    [ticket] = await tickets_of(client, auth)
    detail = (await client.get(f"/api/v1/tickets/{ticket['ref']}", headers=auth)).json()
    inbound = [m for m in detail["messages"] if m["direction"] == "in"]
    assert inbound[0]["text"].startswith("昨日からログインするとエラーが出ます。")
    assert inbound[0]["sender_name"] == "山田 太郎"
    assert (detail["language"], detail["topic"], detail["assignee"]) == ("ja", "technical", "chie@example.com")

    assert await dispatcher.run_once() == 1
    [ack] = sink.messages
    assert ack["To"] == "taro@customer.example"
    assert f"[{ticket['ref']}]" in ack["Subject"]
    assert ack["In-Reply-To"] == first["Message-ID"]
    assert ack["Auto-Submitted"] == "auto-replied"
    body = ack.get_content()
    assert ticket["ref"] in body
    assert "11月25日(水) 14:00 JST" in body  # Wed 10:00 JST + 4 business hours
    headers = sink.raw[0].split(b"\r\n\r\n", 1)[0]
    assert headers.isascii() and b"=?utf-8?" in headers  # Japanese in headers only as RFC 2047 words
    assert ack["From"].addresses[0].display_name == "サポート窓口"

    # A colleague answers the ack from another address: In-Reply-To threads it into the same ticket.
    reply = mail("Hanako <hanako@customer.example>", f"Re: {ack['Subject']}", "追加情報です。",
                 In_Reply_To=ack["Message-ID"], References=ack["Message-ID"])
    await smtp_send(intake, reply, sender="hanako@customer.example")
    detail = (await client.get(f"/api/v1/tickets/{ticket['ref']}", headers=auth)).json()
    assert [m["text"] for m in detail["messages"] if m["direction"] == "in"][1].startswith("追加情報です。")
    assert len(await tickets_of(client, auth)) == 1


async def test_agent_reply_goes_out_with_threading_headers(intake, dispatcher, sink, client, auth):
    original = mail("Tom <tom@customer.example>", "Refund for order 1182", "Please refund my order.")
    await smtp_send(intake, original)
    [ticket] = await tickets_of(client, auth)
    sent = await client.post(f"/api/v1/tickets/{ticket['ref']}/replies", headers=auth,
                             json={"text": "Refund issued — you will see it in 3 days."})
    assert sent.status_code == 201
    assert await dispatcher.run_once() == 2  # the ack and the reply
    reply = next(m for m in sink.messages if "Auto-Submitted" not in m)
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert original["Message-ID"] in reply["References"]
    assert reply["Subject"].startswith(f"Re: [{ticket['ref']}]")
    assert reply.get_content().strip() == "Refund issued — you will see it in 3 days."
    assert await dispatcher.run_once() == 0  # never sent twice


async def test_out_of_office_and_bounces_get_no_ack(intake, dispatcher, sink, client, auth, pool):
    await smtp_send(intake, mail("Bob <bob@customer.example>", "Automatic reply: away", "I am out of office.",
                                 Auto_Submitted="auto-replied"))
    await smtp_send(intake, mail("MAILER-DAEMON <mailer-daemon@customer.example>", "Undelivered Mail",
                                 "Delivery failed."), sender="")
    assert await dispatcher.run_once() == 0
    assert sink.messages == []
    async with pool.acquire() as conn:
        kinds = await conn.fetch("SELECT auto_kind FROM messages WHERE direction = 'in' ORDER BY id")
        routed = await conn.fetchval("SELECT count(*) FROM routing_log")
    assert [r["auto_kind"] for r in kinds] == ["auto-reply", "bounce"]
    assert routed == 0


async def test_five_quick_messages_get_one_ack(intake, dispatcher, sink, client, auth, clock):
    for i in range(5):
        await smtp_send(intake, mail("Kei <kei@customer.example>", f"question {i}", f"message number {i}"))
    assert await dispatcher.run_once() == 1
    assert len(sink.messages) == 1
    [ticket] = await tickets_of(client, auth)
    # Solved and a new ticket a minute later: still within the ack rate limit.
    await client.patch(f"/api/v1/tickets/{ticket['ref']}", json={"status": "closed"}, headers=auth)
    await smtp_send(intake, mail("Kei <kei@customer.example>", "new problem", "something else entirely"))
    assert len(await tickets_of(client, auth)) == 2
    assert await dispatcher.run_once() == 0


async def test_relay_refused_for_foreign_domains_and_size_limit(intake, pool):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await smtp_send(intake, mail("x <x@customer.example>", "hi", "hi"), to="victim@elsewhere.example")
    assert refused.value.recipients["victim@elsewhere.example"][0] == 550
    huge = mail("x <x@customer.example>", "big", "x" * (11 * 1024 * 1024))
    with pytest.raises(smtplib.SMTPException) as too_big:
        await smtp_send(intake, huge)
    assert "552" in str(too_big.value) or getattr(too_big.value, "smtp_code", None) == 552
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0


async def test_redelivered_mail_is_stored_once(intake, client, auth, pool):
    message = mail("Ann <ann@customer.example>", "配送", "届きません")
    await smtp_send(intake, message)
    await smtp_send(intake, message)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'in'") == 1


async def test_iso_2022_jp_mail_over_smtp(intake, client, auth):
    name, subject = Header("山田", "iso-2022-jp").encode(), Header("請求について", "iso-2022-jp").encode()
    raw = (
        f"From: {name} <yamada@customer.example>\r\n"
        "To: support@example.com\r\n"
        f"Subject: {subject}\r\n"
        "Message-ID: <jis-1@customer.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode() + "請求書の金額が違います。\r\n".encode("iso2022_jp")
    assert raw.isascii()
    await smtp_send(intake, raw, sender="yamada@customer.example")
    [ticket] = await tickets_of(client, auth)
    detail = (await client.get(f"/api/v1/tickets/{ticket['ref']}", headers=auth)).json()
    assert detail["subject"] == "請求について"
    assert detail["messages"][0]["text"].startswith("請求書の金額が違います。")
    assert detail["messages"][0]["sender_name"] == "山田"
    assert (detail["language"], detail["topic"]) == ("ja", "billing")


async def test_html_only_mail_is_sanitized_and_attachments_kept(intake, client, auth, data_dir):
    message = EmailMessage()
    message["From"] = "Web Shop <shop@customer.example>"
    message["To"] = "support+T-9999@example.com"
    message["Subject"] = "Invoice attached"
    message["Message-ID"] = "<html-1@customer.example>"
    message.set_content('<p>Our <b>invoice</b> is wrong</p><script>alert(1)</script>'
                        '<img src="x" onerror="alert(2)"><a href="javascript:alert(3)">link</a>', subtype="html")
    message.add_attachment("請求書の内容".encode(), maintype="text", subtype="plain", filename="請求書.txt")
    await smtp_send(intake, message, to="support+T-9999@example.com", sender="shop@customer.example")
    [ticket] = await tickets_of(client, auth)
    detail = (await client.get(f"/api/v1/tickets/{ticket['ref']}", headers=auth)).json()
    stored = detail["messages"][0]
    assert "invoice is wrong" in stored["text"].lower()
    assert detail["topic"] == "billing"
    for dangerous in ("<script", "onerror", "javascript:"):
        assert dangerous not in (stored["html"] or "")
    assert "<b>invoice</b>" in stored["html"]
    [attachment] = stored["attachments"]
    assert attachment["filename"] == "請求書.txt"
    blob = data_dir / "attachments" / attachment["sha256"][:2] / attachment["sha256"]
    assert blob.read_bytes() == "請求書の内容".encode()


async def test_subject_reference_names_the_ticket_a_reply_belongs_to(intake, client, auth, pool, clock):
    """`[T-n]` / `support+T-n@` pick the ticket: too old to reopen gives a new ticket linked to it,
    not a reopening of the customer's latest one."""
    from datetime import timedelta

    await smtp_send(intake, mail("Rin <rin@customer.example>", "Invoice question", "請求書について"))
    [first] = await tickets_of(client, auth)
    await client.patch(f"/api/v1/tickets/{first['ref']}", json={"status": "solved"}, headers=auth)
    clock.advance(timedelta(days=8))  # beyond the demo's 7-day reopen window
    await smtp_send(intake, mail("Rin <rin@customer.example>", "Delivery question", "配送について"))
    second = next(t for t in await tickets_of(client, auth) if t["ref"] != first["ref"])
    await client.patch(f"/api/v1/tickets/{second['ref']}", json={"status": "solved"}, headers=auth)

    await smtp_send(intake, mail("Rin <rin@customer.example>", f"Re: [{first['ref']}] Invoice question",
                                 "まだ解決していません"), to=f"support+{first['ref']}@example.com")
    newest = (await tickets_of(client, auth))[0]
    detail = (await client.get(f"/api/v1/tickets/{newest['ref']}", headers=auth)).json()
    assert detail["previous_ticket"] == first["ref"]
    assert detail["messages"][0]["text"].startswith("まだ解決していません")
    assert (await client.get(f"/api/v1/tickets/{second['ref']}", headers=auth)).json()["status"] == "solved"

    await smtp_send(intake, mail("Rin <rin@customer.example>", f"Re: [{second['ref']}]", "配送の件、追加です"))
    assert [m["text"] for m in (await client.get(f"/api/v1/tickets/{newest['ref']}", headers=auth)).json()[
        "messages"] if m["direction"] == "in"][-1].startswith("配送の件")  # the open ticket wins


async def test_mail_is_counted_in_metrics_and_refusals_too(intake, client, app):
    await smtp_send(intake, mail("Taro <taro@customer.example>", "Invoice", "請求書について"))
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await smtp_send(intake, mail("Taro <taro@customer.example>", "x", "y"), to="someone@elsewhere.example")
    metrics = app.state.services.metrics
    assert metrics.ingested.labels("email", "false")._value.get() == 1
    assert metrics.rejected.labels("email", "550")._value.get() == 1
