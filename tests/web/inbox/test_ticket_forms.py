"""Working a ticket from its page: every form goes through the same action as the JSON API, needs the
CSRF token, answers 303 back to the ticket (or its box with the live part when htmx sent it), and shows
a refusal as a message in the form with what the agent typed kept."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from html import unescape

import asyncpg
import pytest

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from router.core.store import canned as canned_store
from tests.conftest import ORIGIN, sign_in

HTMX = {"HX-Request": "true"}


async def ticket(pool, config, clock, text: str = "My refund has not arrived", *, who: str = "taro@customer.example",
                 name: str = "Taro Yamada") -> str:
    result = await Pipeline(config, clock).ingest(pool, InboundMessage(
        "email", (Identity("email", who),), text, external_id=f"{who}-{clock().timestamp()}", sender_name=name,
        subject="Refund"))
    assert result.ticket_ref
    return result.ticket_ref


async def post(client, csrf: str | None, path: str, data: dict[str, str], **headers: str):
    form = {**data, **({"csrf_token": csrf} if csrf else {})}
    return await client.post(path, data=form, headers={"Origin": ORIGIN, **headers})


async def digest(pool: asyncpg.Pool) -> dict[str, int]:
    """Row counts and the ticket rows: what a refused form must leave as it was."""
    async with pool.acquire() as conn:
        counts = {table: await conn.fetchval(f"SELECT count(*) FROM {table}")
                  for table in ("messages", "outbox", "events", "routing_log", "customer_notes")}
        counts["tickets"] = hash(tuple(tuple(r) for r in await conn.fetch(
            "SELECT id, status, priority, assignee_id FROM tickets ORDER BY id")))
    return counts


FORMS = {
    "reply": {"text": "We have refunded you.", "channel": ""},
    "note": {"text": "Checked with finance."},
    "status": {"status": "solved"},
    "assign": {"agent": "queue", "reason": "wrong team"},
    "take": {},
    "customer-notes": {"text": "Prefers email."},
}


@pytest.mark.parametrize("action", FORMS)
async def test_each_form_needs_the_csrf_token(client, pool, config, clock, action):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    before = await digest(pool)
    for token in (None, csrf[::-1]):
        refused = await post(client, token, f"/inbox/{ref}/{action}", FORMS[action])
        assert refused.status_code == 403, refused.text
        assert await digest(pool) == before, f"{action} without a valid token changed something"
    accepted = await post(client, csrf, f"/inbox/{ref}/{action}", FORMS[action])
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"].startswith(f"/inbox/{ref}?done=")
    if action != "take":  # aiko was routed the ticket: taking it changes nothing
        assert await digest(pool) != before, f"{action} with the token changed nothing"
    follow = await client.get(accepted.headers["location"])
    assert follow.status_code == 200 and '<p class="flash">' in follow.text


async def test_reply_goes_out_on_the_latest_channel_like_the_api(client, pool, config, clock):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    sent = await post(client, csrf, f"/inbox/{ref}/reply", {"text": "Your refund is on its way.\r\nAiko",
                                                            "channel": "", "idempotency_key": "k1"})
    assert sent.status_code == 303
    again = await post(client, csrf, f"/inbox/{ref}/reply", {"text": "Your refund is on its way.\r\nAiko",
                                                             "channel": "", "idempotency_key": "k1"})
    assert again.headers["location"].startswith(f"/inbox/{ref}?done=reply_again"), "a double submit sent twice"
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT channel, payload FROM outbox WHERE kind = 'reply'")
        agent = await conn.fetchval("SELECT a.email FROM messages m JOIN agents a ON a.id = m.author_agent_id"
                                    " WHERE m.direction = 'out' AND m.metadata->>'kind' = 'reply'")
    assert len(rows) == 1 and rows[0]["channel"] == "email"
    assert rows[0]["payload"]["to"] == "taro@customer.example"
    assert rows[0]["payload"]["text"] == "Your refund is on its way.\nAiko"
    assert rows[0]["payload"]["in_reply_to"], "the reply is not threaded like the API's"
    assert agent == "aiko@example.com"
    page = await client.get(sent.headers["location"])
    assert "Reply queued." in page.text and "sent on Email → taro@customer.example" in page.text


async def test_reply_with_htmx_swaps_its_box_and_refreshes_the_live_part(client, pool, config, clock):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    response = await post(client, csrf, f"/inbox/{ref}/reply", {"text": "Done!", "then": "pending"}, **HTMX)
    assert response.status_code == 200
    html = response.text
    assert html.lstrip().startswith('<section id="reply-box"'), "the reply box is not the answer's first element"
    assert re.search(r'<textarea id="reply-text"[^>]*></textarea>', html), "the sent text is still in the box"
    assert re.search(r'<div id="timeline"[^>]*hx-swap-oob="true"', html) and "Done!" in html
    assert re.search(r'<section id="ticket-actions"[^>]*hx-swap-oob="true"', html), "status changed: actions stale"
    assert 'id="note-box"' not in html and 'id="customer-note-box"' not in html, "other boxes' text would be lost"
    assert "Reply queued; the ticket is pending." in html
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM tickets") == "pending"


async def test_a_refused_reply_is_shown_in_the_form_with_the_text_kept(client, pool, config, clock):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    before = await digest(pool)
    typed = "Dear Taro,\n<b>your refund</b> is on its way"
    page = await post(client, csrf, f"/inbox/{ref}/reply", {"text": typed, "channel": "telegram"})
    assert page.status_code == 422
    error = re.search(r'<p class="form-error" role="alert" id="reply-error">([^<]*)</p>', page.text)
    assert error and "The reply was not sent." in error.group(1) and "telegram" in error.group(1)
    box = re.search(r'<textarea id="reply-text"[^>]*aria-invalid="true"[^>]*>([^<]*)</textarea>', page.text)
    assert box and unescape(box.group(1)) == typed
    assert await digest(pool) == before

    blank = await post(client, csrf, f"/inbox/{ref}/reply", {"text": "   "}, **HTMX)
    assert blank.status_code == 200 and "The reply was not sent." in blank.text and "`text` is required" in blank.text
    assert blank.text.lstrip().startswith('<section id="reply-box"') and 'hx-swap-oob' not in blank.text

    japanese = await post(client, csrf, f"/inbox/{ref}/note", {"text": ""}, **{"Accept-Language": "ja"})
    assert japanese.status_code == 422 and "メモは追加されませんでした。" in japanese.text


async def channels_customer(pool, config, clock) -> str:
    """A customer on email, LINE and WhatsApp, whose WhatsApp message is 30 hours old."""
    pipeline = Pipeline(config, clock)
    email, line, wa = (Identity("email", "mika@customer.example"), Identity("line", "U77"),
                       Identity("whatsapp", "819012345678"))
    await pipeline.ingest(pool, InboundMessage("whatsapp", (wa, email), "hello from WhatsApp", external_id="w1"))
    clock.advance(timedelta(hours=29))
    await pipeline.ingest(pool, InboundMessage("email", (email,), "by mail now", external_id="e1@x"))
    clock.advance(timedelta(hours=1))
    result = await pipeline.ingest(pool, InboundMessage("line", (line, email), "and on LINE", external_id="l1"))
    assert result.ticket_ref
    return result.ticket_ref


def options(html: str) -> dict[str, str]:
    select = re.search(r'<select id="reply-channel" name="channel">(.*?)</select>', html, re.S)
    assert select
    return {value: re.sub(r"\s+", " ", unescape(label)).strip()
            for value, label in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', select.group(1), re.S)}


async def test_reply_channels_offered_with_the_reason_when_one_cannot_be_used(client, pool, config, clock):
    ref = await channels_customer(pool, config, clock)
    await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{ref}")).text
    offered = options(html)
    assert set(offered) == {"", "email", "line", "whatsapp"}
    assert offered[""].startswith("Customer's latest channel: LINE (U77) — unavailable: the channel is not configured"
                                  " (LINE_CHANNEL_TOKEN)")
    assert re.search(r'<option value="" disabled>', html) and re.search(r'<option value="line" disabled>', html)
    assert "unavailable: the channel is not configured (META_ACCESS_TOKEN)" in offered["whatsapp"]
    assert re.search(r'<option value="email" selected>', html), "the first usable channel is not chosen"

    configured = replace(config, settings=replace(config.settings, line_channel_token="t", meta_access_token="s"))
    import httpx

    from router.app import create_app

    app = create_app(configured, pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test",
                                 cookies=client.cookies) as other:
        html = (await other.get(f"/inbox/{ref}")).text
    offered = options(html)
    assert offered[""] == "Customer's latest channel: LINE (U77)" and re.search(r'<option value="" selected>', html)
    assert "unavailable" not in offered["line"]
    assert "24-hour reply window closed (30 h since the customer's last message)" in offered["whatsapp"]
    assert re.search(r'<option value="whatsapp" disabled>', html)


async def test_reply_on_another_channel_of_the_customer(client, pool, config, clock):
    ref = await channels_customer(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    sent = await post(client, csrf, f"/inbox/{ref}/reply", {"text": "Answering by mail", "channel": "email"})
    assert sent.status_code == 303
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT channel, payload->>'to' AS to FROM outbox WHERE kind = 'reply'")
    assert (row["channel"], row["to"]) == ("email", "mika@customer.example")


async def test_canned_responses_for_the_tickets_language_with_placeholders_filled(client, pool, config, clock):
    english = await ticket(pool, config, clock, "Where is my refund?", who="ann@customer.example", name="Ann Lee")
    async with pool.acquire() as conn:
        await canned_store.create(conn, name="Subject echo", text="About {subject} ({ref}) — {{braces}}",
                                  language=None, actor_id=None, now=clock())
    await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{english}")).text
    canned = dict(re.findall(r'<option value="([^"]+)" data-text="([^"]*)">', html))
    assert set(canned) == {"config:en:Need more details", "config:en:Refund started", "admin:1"}, canned
    assert unescape(canned["config:en:Refund started"]) == (
        f"Hello Ann Lee,\n\nwe have started your refund for {english}. It reaches your account within 5 business"
        " days.\n\nAiko Tanaka")
    assert unescape(canned["admin:1"]) == f"About Refund ({english}) — {{braces}}"

    filled = await client.get(f"/inbox/{english}", params={"canned": "config:en:Refund started"})
    box = re.search(r'<textarea id="reply-text"[^>]*>([^<]*)</textarea>', filled.text)
    assert box and unescape(box.group(1)).startswith("Hello Ann Lee,"), "inserting without JavaScript"

    japanese = await ticket(pool, config, clock, "返金がまだ届きません", who="hana@customer.example", name="山田 花子")
    html = (await client.get(f"/inbox/{japanese}")).text
    keys = set(re.findall(r'<option value="((?:config|admin):[^"]+)" data-text=', html))
    assert keys == {"config:ja:Need more details", "config:ja:Refund started", "admin:1"}
    assert "山田 花子 様" in unescape(html)


async def test_transfer_with_a_reason_and_refusal_shown_in_the_form(client, pool, config, clock):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    async with pool.acquire() as conn:
        ben = await conn.fetchval("SELECT id FROM agents WHERE email = 'ben@example.com'")
        assert await conn.fetchval("SELECT a.email FROM tickets t JOIN agents a ON a.id = t.assignee_id") \
            == "aiko@example.com"
    moved = await post(client, csrf, f"/inbox/{ref}/assign", {"agent": str(ben), "reason": "needs a specialist"})
    assert moved.status_code == 303
    async with pool.acquire() as conn:
        log = await conn.fetchrow("SELECT action, reason, agent_id FROM routing_log ORDER BY id DESC LIMIT 1")
    assert (log["action"], log["reason"], log["agent_id"]) == ("transferred", "needs a specialist", ben)
    html = (await client.get(f"/inbox/{ref}")).text
    assert "Transferred to Ben Carter by Aiko Tanaka" in html and "needs a specialist" in html
    assert re.search(r"<fieldset disabled", html), "aiko may no longer transfer ben's ticket: the form says so"

    before = await digest(pool)
    refused = await post(client, csrf, f"/inbox/{ref}/assign", {"agent": "queue", "reason": "my reason"})
    assert refused.status_code == 403
    assert "The change was not made." in refused.text and "ask a lead" in refused.text
    assert 'value="my reason"' in refused.text
    assert await digest(pool) == before


async def test_take_it_from_the_queue(client, pool, config, clock):
    async with pool.acquire() as conn:
        await conn.execute("UPDATE agents SET status = 'offline'")
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "chie@example.com")
    html = (await client.get(f"/inbox/{ref}")).text
    assert ">Take it</button>" in html
    taken = await post(client, csrf, f"/inbox/{ref}/take", {}, **HTMX)
    assert taken.status_code == 200 and "The ticket is yours now." in taken.text
    assert ">Take it</button>" not in taken.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT a.email FROM tickets t JOIN agents a ON a.id = t.assignee_id") \
            == "chie@example.com"
        assert await conn.fetchval("SELECT reason FROM routing_log ORDER BY id DESC LIMIT 1") \
            == "taken from the queue by chie@example.com"
    client.cookies.clear()
    csrf = await sign_in(client, "lena@example.com")  # a lead: allowed to transfer, yet "take" never steals
    late = await post(client, csrf, f"/inbox/{ref}/take", {})
    assert late.status_code == 409 and "Chie Sato has this ticket already" in late.text


async def test_solve_and_only_the_changed_fields_of_the_status_form(client, pool, config, clock):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{ref}")).text
    assert re.search(r'<button type="submit" data-key="e">Solve</button>', html)
    # a colleague sets it pending meanwhile; this page still shows "open" and the agent raises the priority
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tickets SET status = 'pending'")
    changed = await post(client, csrf, f"/inbox/{ref}/status", {"status": "open", "was_status": "open",
                                                                "priority": "high", "was_priority": "normal"})
    assert changed.status_code == 303
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, priority FROM tickets")
        event = await conn.fetchval("SELECT payload FROM events WHERE kind = 'ticket.updated'")
    assert (row["status"], row["priority"]) == ("pending", "high")
    assert event["changes"] == {"priority": ["normal", "high"]}
    solved = await post(client, csrf, f"/inbox/{ref}/status", {"status": "solved"}, **HTMX)
    assert solved.status_code == 200 and "Ticket updated." in solved.text
    assert re.search(r'<button type="submit" data-key="e" disabled>', solved.text)
    bad = await post(client, csrf, f"/inbox/{ref}/status", {"status": "archived"})
    assert bad.status_code == 422 and "`status` must be one of" in bad.text


async def test_notes_about_the_customer(client, pool, config, clock):
    ref = await ticket(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    saved = await post(client, csrf, f"/inbox/{ref}/customer-notes", {"text": "Prefers <email>, not phone."},
                       **HTMX)
    assert saved.status_code == 200
    assert re.search(r'<section id="customer-panel"[^>]*hx-swap-oob="true"', saved.text)
    assert "Prefers &lt;email&gt;, not phone." in saved.text and "Aiko Tanaka" in saved.text
    clock.advance(timedelta(minutes=1))
    async with pool.acquire() as conn:
        await conn.execute("UPDATE tickets SET status = 'closed'")
    later = await ticket(pool, config, clock, "Another question")
    assert later != ref
    html = (await client.get(f"/inbox/{later}")).text
    assert "Prefers &lt;email&gt;, not phone." in html, "the note belongs to the customer, not to one ticket"
    empty = await post(client, csrf, f"/inbox/{later}/customer-notes", {"text": " "})
    assert empty.status_code == 422 and "The note was not saved." in empty.text
