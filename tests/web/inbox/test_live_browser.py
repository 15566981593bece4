"""The collision warning in a real browser (Playwright driving Debian's Chromium): `live.js` subscribes
the ticket page to its ticket, sends the presence heartbeats, says when its agent types and when the
page closes, and the other agent's page shows it without reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from router.live import LiveHub
from tests.conftest import post_message
from tests.web.inbox.test_live import Pages, followed, hub, pages, server  # noqa: F401 (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()  # read once at import, not on the event loop
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM} (`apt-get install chromium`; `.ci/run` installs it)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def ticket_page(browser: Browser, pages: Pages, email: str, ref: str) -> Page:  # noqa: F811
    """`email`'s browser on the ticket page, its event stream connected."""
    context = await browser.new_context(base_url=pages.base_url, locale="en-US")
    await context.add_cookies([{"name": "router_session", "value": await pages.cookie(email),
                                "url": pages.base_url}])
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"/inbox/{ref}")
    await expect(page.locator("body")).to_have_attribute("data-live", "on", timeout=10_000)
    assert not errors, errors
    return page


async def test_an_agent_sees_who_else_has_the_ticket_open_and_who_types(browser: Browser, pages: Pages,  # noqa: F811
                                                                        hub: LiveHub, client, auth,  # noqa: F811
                                                                        pool) -> None:
    ref = await post_message(client, auth, "My parcel never arrived", email="kim@customer.test")
    await followed(hub, pool)
    aiko = await ticket_page(browser, pages, "aiko@example.com", ref)
    ben = await ticket_page(browser, pages, "ben@example.com", ref)
    presence = aiko.locator("#presence")
    await expect(presence).to_have_text("Ben Carter is viewing", timeout=10_000)
    await expect(ben.locator("#presence")).to_have_text("Aiko Tanaka is viewing", timeout=10_000)

    await ben.locator("#reply-text").press_sequentially("Hello Kim, ")
    await expect(presence).to_have_text("Ben Carter is typing…", timeout=10_000)
    await ben.locator("#reply-text").fill("")  # gave up on the draft
    await expect(presence).to_have_text("Ben Carter is viewing", timeout=10_000)

    await ben.close(run_before_unload=True)  # the tab closes: its last word takes Ben off at once
    await expect(presence).to_have_text("", timeout=10_000)

    # the stream names the ticket page's own events: a note through the API refreshes its timeline
    note = await client.post(f"/api/v1/tickets/{ref}/notes", json={"text": "courier called back"}, headers=auth)
    assert note.status_code in (200, 201), note.text
    await expect(aiko.locator("#timeline")).to_contain_text("courier called back", timeout=10_000)
