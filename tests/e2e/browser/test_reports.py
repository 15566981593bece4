"""A lead reads the team report in the real browser: changes the period, downloads a table as CSV."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from playwright.async_api import expect

from tests.e2e.browser.conftest import Browsing
from tests.e2e.helpers import API_TOKEN, Serve


async def test_a_lead_changes_the_period_and_downloads_a_csv(browsing: Browsing, served: Serve, artifacts) -> None:
    async with httpx.AsyncClient(base_url=served.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        posted = await api.post("/api/v1/messages", json={
            "channel": "api", "sender": {"id": "report-reader", "email": "report-reader@example.net"},
            "text": "返金はいつになりますか", "external_id": "reports-browser-1"})
        assert posted.status_code == 202, posted.text
    lena = await browsing.sign_in("lena@example.com", next_path="/reports")
    page = lena.page
    await expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()

    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()  # the lead's timezone: the demo service's
    first, last = (today - timedelta(days=6)).isoformat(), today.isoformat()
    await page.get_by_label("From").fill(first)
    await page.get_by_label("To", exact=True).fill(last)
    await page.get_by_role("button", name="Show").click()
    await page.wait_for_url(re.compile(rf"/reports\?from={first}&to={last}"))
    await expect(page.get_by_label("From")).to_have_value(first)
    await expect(page.get_by_text(f"Tickets created from {first} to {last}")).to_be_visible()
    await expect(page.locator("#table-channels")).to_contain_text("api")
    await page.screenshot(path=artifacts / "reports.png", full_page=True)

    async with page.expect_download() as waiting:
        await page.locator("section", has=page.get_by_role("heading", name="Tickets by channel")) \
            .get_by_role("link", name="Download CSV").click()
    download = await waiting.value
    assert download.suggested_filename == f"channels-{first}-{last}.csv"
    content = (await download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbfChannel,Tickets\r\n")
    assert b"\r\napi," in content
    assert not lena.log.page_errors and not lena.log.console_errors, (lena.log.page_errors, lena.log.console_errors)
