"""The knowledge base in a real browser (Chromium, against `router serve`): a lead writes an article in
`/admin/kb` with its live preview, and a customer typing on the web form is offered it and says it
solved the problem, which is counted. No CSP violation or script error on any page."""

from __future__ import annotations

import re

import asyncpg
import httpx
from playwright.async_api import expect

from tests.e2e.browser.conftest import (  # noqa: F401 — the browser suite's fixtures, used here by name
    Browsing,
    artifacts,
    browser,
    browser_database,
    browsing,
    nothing_open,
    relay,
    served,
)
from tests.e2e.helpers import API_TOKEN

BODY = "返金は**マイページ**の「注文履歴」から申請できます。\n\n<script>window.hacked = 1</script>"


async def test_lead_writes_an_article_and_the_web_form_suggests_it(
        browsing: Browsing, browser_database: str) -> None:  # noqa: F811 — the imported fixtures
    lena = await browsing.sign_in("lena@example.com", next_path="/admin/kb/new")
    page = lena.page
    await page.get_by_label("Address").fill("browser-refund")
    await page.get_by_label("Title").fill("返金の申請方法")
    await page.get_by_label("Language").select_option("ja")
    await page.get_by_label("Tags").fill("返金, 払い戻し")
    await page.get_by_label("Body (Markdown)").fill(BODY)
    await page.get_by_label("Published at /help").check()
    await page.get_by_role("button", name="Preview").click()
    preview = page.locator("#kb-preview")
    await expect(preview.locator("strong")).to_have_text("マイページ")
    assert await page.evaluate("window.hacked") is None
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("The article was created.")

    _, customer, log = await browsing.new_page(locale="ja-JP")
    await customer.goto("/support?lang=ja")
    await customer.locator("#subject").fill("返金の方法")
    await customer.locator("#message").press_sequentially("注文をキャンセルしたので返金してほしいです")
    suggestion = customer.get_by_role("link", name="返金の申請方法")
    await expect(suggestion).to_be_visible()
    assert (await suggestion.get_attribute("href") or "").endswith("/help/browser-refund")
    await customer.get_by_role("button", name="これで解決しました: 返金の申請方法").click()
    await expect(customer.get_by_text("お役に立ててよかったです")).to_be_visible()

    conn = await asyncpg.connect(browser_database)
    try:
        solved = await conn.fetchval("SELECT count(*) FROM kb_feedback f JOIN kb_articles a ON a.id = f.article_id"
                                     " WHERE a.slug = 'browser-refund' AND f.source = 'webform' AND f.solved")
        shown = await conn.fetchval("SELECT sum(shown) FROM kb_shown WHERE source = 'webform'")
    finally:
        await conn.close()
    assert (solved, shown) == (1, 1)

    await customer.goto("/help/browser-refund")
    await expect(customer.get_by_role("heading", name="返金の申請方法")).to_be_visible()
    assert await customer.evaluate("window.hacked") is None

    # On a ticket page, the picker puts the article's link into the reply at the cursor.
    async with httpx.AsyncClient(base_url=browsing.served.base_url,
                                 headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        sent = await api.post("/api/v1/messages", json={"channel": "api", "sender": {"email": "kb@customer.example"},
                                                        "text": "返金の方法を教えてください"})
    await page.goto(f"/inbox/{sent.json()['ticket_ref']}")
    await page.locator("#reply-text").fill("こちらをご覧ください:")
    await page.get_by_label("Search articles").fill("返金")
    await page.get_by_role("button", name="Find").click()
    await page.locator("[data-kb-insert]").first.click()
    await expect(page.locator("#reply-text")).to_have_value(
        re.compile(r"^こちらをご覧ください:\n返金の申請方法: http://\S+/help/browser-refund"))
    for seen in (log, lena.log):
        errors = [e for e in seen.console_errors if "/favicon.ico" not in e]  # the web form names no icon
        assert not errors and not seen.page_errors and not seen.dialogs, seen
