"""`/inbox/{ref}`: one timeline across every channel the customer used, with routing decisions, SLA
warnings, transfers and notes in order; quoted history folded; the customer panel, the SLA clocks in
the agent's timezone and the routing log; the live part; opening the page marks the ticket read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx

from router.core.inbound import Identity, InboundAttachment, InboundMessage
from router.core.pipeline import Pipeline
from sla.monitor import scan_once
from tests.conftest import ORIGIN, post_message, sign_in

AIKO = {"Authorization": "Bearer demo-aiko"}
EMAIL_HTML = ('<p>My invoice is wrong.</p><script>alert(1)</script><img src="x" onerror="alert(2)">'
              '<a href="javascript:alert(3)">click</a>')


@dataclass(frozen=True)
class Conversation:
    ref: str
    ticket_id: int
    customer_id: int
    email_message_id: int


async def conversation(pool, config, clock) -> Conversation:
    """Taro writes by email (with quoted history, HTML and two attachments), then on LINE; the
    first-response SLA warns; Aiko, who was routed the ticket, replies by email, transfers it to Ben
    with a reason and leaves a note."""
    pipeline = Pipeline(config, clock)
    taro = Identity("email", "taro@customer.example")
    first = await pipeline.ingest(pool, InboundMessage(
        "email", (taro,), "My invoice for November is wrong, please refund the difference.",
        external_id="m1@customer.example", sender_name="Taro Yamada", subject="Invoice problem",
        quoted_text="> On Monday you wrote:\n> Your invoice is attached.", html=EMAIL_HTML,
        attachments=(InboundAttachment("請求書 11月.pdf", "application/pdf", b"%PDF-1.4 invoice"),
                     InboundAttachment("evil.html", "text/html", b"<script>alert(1)</script>"))))
    clock.advance(timedelta(minutes=5))
    await pipeline.ingest(pool, InboundMessage(
        "line", (Identity("line", "U4af4980629"), taro), "I also sent you a photo on LINE",
        external_id="line-1", sender_name="たろう"))
    clock.advance(timedelta(hours=2, minutes=56))  # 13:01 JST: 75 % of the 4 h first-response target
    assert await scan_once(pool, clock(), alerts=False, ref_prefix="T-")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(config, pool, clock)),
                                 base_url="http://router.test") as api:
        clock.advance(timedelta(minutes=1))
        reply = await api.post(f"/api/v1/tickets/{first.ticket_ref}/replies", headers=AIKO,
                               json={"text": "We are checking your invoice.", "channel": "email"})
        assert reply.status_code == 201, reply.text
        clock.advance(timedelta(minutes=1))
        moved = await api.post(f"/api/v1/tickets/{first.ticket_ref}/assign", headers=AIKO,
                               json={"agent": "ben@example.com", "reason": "needs a billing specialist"})
        assert moved.status_code == 200, moved.text
        clock.advance(timedelta(minutes=1))
        noted = await api.post(f"/api/v1/tickets/{first.ticket_ref}/notes", headers=AIKO,
                               json={"text": "Customer is upset, be gentle"})
        assert noted.status_code == 201, noted.text
    async with pool.acquire() as conn:
        customer_id = await conn.fetchval("SELECT customer_id FROM tickets WHERE id = $1", first.ticket_id)
    assert first.ticket_ref and first.ticket_id and first.message_id
    return Conversation(first.ticket_ref, first.ticket_id, customer_id, first.message_id)


def _app(config, pool, clock):
    from router.app import create_app

    return create_app(config, pool=pool, clock=clock)


def positions(page: str, *markers: str) -> list[int]:
    found = [page.find(marker) for marker in markers]
    missing = [marker for marker, at in zip(markers, found, strict=True) if at < 0]
    assert not missing, f"not on the page: {missing}"
    return found


async def test_one_timeline_across_channels_with_system_events_in_order(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    await sign_in(client, "ben@example.com")
    page = await client.get(f"/inbox/{talk.ref}")
    assert page.status_code == 200, page.text
    html = page.text
    order = positions(html, "My invoice for November is wrong", "Assigned to Aiko Tanaka",
                      "I also sent you a photo on LINE", "SLA warning", "We are checking your invoice.",
                      "Transferred to Ben Carter by Aiko Tanaka", "needs a billing specialist",
                      "Customer is upset, be gentle")
    assert order == sorted(order), "the timeline is not in time order"
    # a channel badge on every message, the channel used on the reply, with its delivery state
    timeline = html[html.index('id="timeline"'):html.index('id="timeline-end"')]
    assert 'class="badge ch ch-email">Email' in timeline and 'class="badge ch ch-line">LINE' in timeline
    assert re.search(r"sent on Email → taro@customer\.example</span>\s*<span class=\"delivery pending\">Queued",
                     timeline), "the reply does not show its channel, address and delivery status"
    assert 'class="badge note">Internal note' in timeline
    assert "First response is due" in timeline


async def test_delivery_status_sent_and_dead_with_the_reason(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE outbox SET status = 'sent', sent_at = $1 WHERE kind = 'ack'", clock())
        await conn.execute("UPDATE outbox SET status = 'dead', last_error = '550 mailbox unavailable'"
                           " WHERE kind = 'reply'")
    await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{talk.ref}")).text
    assert '<span class="delivery sent">Sent' in html
    assert '<span class="delivery dead">Not delivered: 550 mailbox unavailable</span>' in html


async def test_quoted_history_is_folded_and_email_html_only_in_a_sandboxed_frame(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{talk.ref}")).text
    folded = re.search(r'<details class="quoted"[^>]*>\s*<summary>Show quoted history</summary>\s*'
                       r'<div class="quoted-text">&gt; On Monday you wrote:', html)
    assert folded, "the quoted history is not behind a toggle"
    assert html.count("On Monday you wrote") == 1
    frame = re.search(r"<iframe [^>]*>", html)
    assert frame, "no frame for the email's HTML"
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame.group(0)
    assert "allow-scripts" not in frame.group(0) and "allow-same-origin" not in frame.group(0)
    assert f'src="/inbox/{talk.ref}/messages/{talk.email_message_id}/html"' in frame.group(0)
    assert "My invoice is wrong.</p>" not in html and "<script>alert" not in html, "email HTML inlined in the page"


async def test_attachments_are_listed_with_download_links(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{talk.ref}")).text
    links = re.findall(rf'<a href="/inbox/{talk.ref}/attachments/(\d+)" download>([^<]+)</a>', html)
    assert [name for _, name in links] == ["請求書 11月.pdf", "evil.html"]


async def test_customer_panel_sla_clocks_and_routing_log(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE customers SET tier = 'gold', timezone = 'Europe/Berlin', language = 'en'"
                           " WHERE id = $1", talk.customer_id)
    earlier = await post_message(client, {"Authorization": "Bearer test-integration-token"}, "old question",
                                 sender_id="U4af4980629", channel="line")
    assert earlier == talk.ref  # joins the open thread: the past tickets list has it once
    await sign_in(client, "aiko@example.com")
    html = (await client.get(f"/inbox/{talk.ref}")).text
    panel = html[html.index('id="customer-panel"'):html.index('id="customer-note-box"')]
    assert "Taro Yamada" in panel and "<dd>gold</dd>" in panel
    berlin = clock().astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")
    assert f"Europe/Berlin (now {berlin})" in panel, "the customer's own time of day is not shown"
    assert re.search(r"Email</span> <span class=\"value\">taro@customer\.example</span>\s*"
                     r"<span class=\"badge verified\">verified", panel)
    assert re.search(r"LINE</span> <span class=\"value\">U4af4980629</span>", panel)
    assert f'aria-current="page"><a href="/inbox/{talk.ref}">' in panel
    sla = html[html.index('id="sla-panel"'):html.index('id="customer-panel"')]
    assert "First response" in sla and "Resolution" in sla
    assert "Times in Asia/Tokyo" in sla and re.search(r"<span class=\"countdown\">in \d", sla)
    routing = html[html.index('id="routing-panel"'):]
    assert "Transferred to Ben Carter by Aiko Tanaka" in routing and "needs a billing specialist" in routing


async def test_due_times_follow_the_agents_timezone(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    csrf = await sign_in(client, "aiko@example.com")
    async with pool.acquire() as conn:
        due = await conn.fetchval("SELECT due_at FROM sla_targets WHERE ticket_id = $1 AND target = 'resolution'",
                                  talk.ticket_id)
    saved = await client.post("/preferences", data={"csrf_token": csrf, "timezone": "America/New_York",
                                                    "ui_language": "en"}, headers={"Origin": ORIGIN})
    assert saved.status_code == 303
    html = (await client.get(f"/inbox/{talk.ref}")).text
    assert due.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M") in html
    assert "Times in America/New_York" in html


async def test_japanese_and_english(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    await sign_in(client, "aiko@example.com")
    english = (await client.get(f"/inbox/{talk.ref}", headers={"Accept-Language": "en"})).text
    japanese = (await client.get(f"/inbox/{talk.ref}", headers={"Accept-Language": "ja"})).text
    assert '<html lang="en">' in english and '<html lang="ja">' in japanese
    for text in ("Reply to the customer", "Show quoted history", "Send reply", "Status", "Transfer to",
                 "Notes about the customer", "Routing log"):
        assert text in english and text not in japanese, text
    for text in ("お客様への返信", "引用された履歴を表示", "返信を送信", "ステータス", "転送先", "顧客についてのメモ",
                 "振り分け履歴", "対応中", "メール"):
        assert text in japanese, text


async def test_opening_the_page_marks_the_ticket_read(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    await sign_in(client, "chie@example.com")

    async def read_at():
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT read_at FROM ticket_reads r JOIN agents a ON a.id = r.agent_id"
                                       " WHERE a.email = 'chie@example.com' AND r.ticket_id = $1", talk.ticket_id)

    assert await read_at() is None
    assert (await client.get(f"/inbox/{talk.ref}")).status_code == 200
    opened = clock()
    assert await read_at() == opened
    clock.advance(timedelta(minutes=5))
    await client.get(f"/inbox/{talk.ref}/timeline")
    assert await read_at() == opened, "nothing new: no write on every view and refresh"
    await post_message(client, {"Authorization": "Bearer test-integration-token"}, "one more thing",
                       sender_id="U4af4980629", channel="line")
    await client.get(f"/inbox/{talk.ref}/timeline")  # the live refresh shows it: read as well
    assert await read_at() == clock()


async def test_the_live_part_refreshes_timeline_and_panels_but_no_form(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    await sign_in(client, "aiko@example.com")
    page = (await client.get(f"/inbox/{talk.ref}")).text
    assert f'hx-trigger="sse:ticket-{talk.ref} delay:300ms"' in page
    assert f'hx-get="/inbox/{talk.ref}/timeline"' in page
    assert f'<div id="presence" sse-swap="presence-{talk.ref}" data-presence-ref="{talk.ref}" aria-live="polite">' \
        in page
    assert f'data-typing-ref="{talk.ref}"' in page
    await post_message(client, {"Authorization": "Bearer test-integration-token"}, "A new line message",
                       sender_id="U4af4980629", channel="line")
    part = await client.get(f"/inbox/{talk.ref}/timeline", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<div id="timeline"') and "A new line message" in part.text
    for panel in ("ticket-summary", "sla-panel", "customer-panel", "routing-panel"):
        assert re.search(rf'id="{panel}"[^>]*hx-swap-oob="true"', part.text), panel
    assert "<textarea" not in part.text and "<form" not in part.text, "a refresh must not replace what is typed"


async def test_other_inbox_paths_are_not_taken_for_tickets(client):
    """`/inbox/{ref}` matches ticket references only: `/inbox/live` and other inbox paths stay theirs."""
    await sign_in(client, "aiko@example.com")
    for path in ("/inbox/T-999999", "/inbox/t-999999"):
        missing = await client.get(path)
        assert missing.status_code == 404 and "no ticket" in missing.text
    from router.web.inbox.ticket import routes

    scope = {"type": "http", "path": "/inbox/live", "method": "GET", "root_path": ""}
    from starlette.routing import Match

    assert all(route.matches(scope)[0] is Match.NONE for route in routes)


async def test_signed_out_the_page_and_its_parts_redirect_to_sign_in(client, pool, config, clock):
    talk = await conversation(pool, config, clock)
    for path in (f"/inbox/{talk.ref}", f"/inbox/{talk.ref}/timeline"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


async def test_what_customers_and_agents_typed_is_escaped_everywhere(client, pool, config, clock):
    hostile = '<img src=x onerror="alert(1)">'
    result = await Pipeline(config, clock).ingest(pool, InboundMessage(
        "email", (Identity("email", "mallory@customer.example"),), f"text {hostile}", external_id="x@x",
        sender_name=f"Mallory {hostile}", subject=f"Subject {hostile}", quoted_text=f"> quoted {hostile}",
        attachments=(InboundAttachment(f"file{hostile}.pdf", f"application/pdf{hostile}", b"%PDF"),)))
    ref = result.ticket_ref
    csrf = await sign_in(client, "aiko@example.com")
    headers = {"Origin": ORIGIN}
    for path, data in ((f"/inbox/{ref}/note", {"text": f"note {hostile}"}),
                       (f"/inbox/{ref}/customer-notes", {"text": f"customer {hostile}"}),
                       (f"/inbox/{ref}/assign", {"agent": "queue", "reason": f"reason {hostile}"})):
        sent = await client.post(path, data={**data, "csrf_token": csrf}, headers=headers)
        assert sent.status_code == 303, sent.text
    html = (await client.get(f"/inbox/{ref}")).text
    assert "<img src=x" not in html, "markup someone typed reached the page unescaped"
    for where in ("text ", "Mallory ", "Subject ", "&gt; quoted ", "file", "note ", "customer ", "reason "):
        assert f"{where}&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html, where
