"""Signing in and out in the real browser: the form, the refusal, the session cookie, and the UI
language negotiated from the browser's own language (Accept-Language)."""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.e2e.browser.conftest import PASSWORD, Browsing


async def test_sign_in_reaches_the_page_asked_for_and_sign_out_ends_the_session(browsing: Browsing):
    aiko = await browsing.sign_in("aiko@example.com", next_path="/preferences")
    page = aiko.page
    await expect(page.get_by_role("link", name="Signed in as Aiko Tanaka")).to_be_visible()
    [cookie] = [c for c in await aiko.context.cookies() if c["name"] == "router_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/login")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.goto("/preferences")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fpreferences$"))
    # The session ended on the server, not only in this browser: its old cookie opens nothing.
    await aiko.context.add_cookies([cookie])
    await page.goto("/preferences")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fpreferences$"))
    assert not aiko.log.page_errors and not aiko.log.dialogs


async def test_wrong_password_is_refused_with_a_readable_message(browsing: Browsing):
    context, page, log = await browsing.new_page()
    await page.goto("/login")
    await page.get_by_label("Email address").fill("ben@example.com")
    await page.get_by_label("Password").fill(PASSWORD + "-wrong")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("The email address or the password is not right.")
    await expect(page.get_by_label("Email address")).to_have_value("ben@example.com")
    await expect(page.get_by_label("Password")).to_have_value("")
    assert not [c for c in await context.cookies() if c["name"] == "router_session"]
    assert not log.page_errors


async def test_the_browser_language_picks_japanese(browsing: Browsing, artifacts):
    _context, page, log = await browsing.new_page(locale="ja-JP")
    await page.goto("/login")
    await expect(page.locator("html")).to_have_attribute("lang", "ja")
    await expect(page.get_by_role("heading", name="サインイン")).to_be_visible()
    await page.screenshot(path=artifacts / "login-ja.png")

    chie = await browsing.sign_in("chie@example.com", locale="ja-JP", next_path="/preferences")
    await expect(chie.page.get_by_role("heading", name="表示言語とタイムゾーン")).to_be_visible()
    await expect(chie.page.get_by_role("button", name="サインアウト")).to_be_visible()
    assert not log.page_errors and not chie.log.page_errors
