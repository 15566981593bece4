"""The widget as a site embeds it: one script under 30 KB with its stylesheet, cacheable and
revalidated cheaply, nothing a strict Content-Security-Policy forbids; the demo page; `router demo`'s
chat visitors."""

from __future__ import annotations

import re

import asyncpg
import httpx

from channels.chat.demo import VISITORS, send_chat_traffic
from tests.chat.conftest import Serving


async def test_the_widget_script_is_small_cacheable_and_csp_friendly(client: httpx.AsyncClient) -> None:
    script = await client.get("/chat/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert len(script.content) < 30 * 1024
    assert script.headers["cache-control"] == "public, max-age=300"
    again = await client.get("/chat/widget.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    source = script.text
    for forbidden in ("eval(", "new Function", "innerHTML", ".style.", "setAttribute(\"style\"", "javascript:"):
        assert forbidden not in source, forbidden
    css = await client.get("/chat/widget.css")
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"


async def test_the_demo_page_embeds_the_widget_without_inline_code(client: httpx.AsyncClient) -> None:
    page = await client.get("/chat")
    assert page.status_code == 200
    assert '<script src="/chat/widget.js" defer' in page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "no inline script"
    assert "style=" not in page.text and "<style" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_router_demo_sends_chat_visitors(start: Serving, pool: asyncpg.Pool) -> None:
    served = await start()
    await send_chat_traffic(served.http_url)
    async with pool.acquire() as conn:
        texts = await conn.fetch("SELECT body_text FROM messages WHERE channel = 'chat' AND direction = 'in'")
    assert sorted(r["body_text"] for r in texts) == sorted(text for _, _, text in VISITORS)
