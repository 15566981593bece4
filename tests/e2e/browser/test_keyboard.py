"""The inbox works with the keyboard alone: sign in, j/k through the list, Enter opens the ticket, r
goes to the reply box, ? shows the shortcuts; focus stays visible on the way."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect

from tests.e2e.browser.conftest import PASSWORD, Browsing, send_mail


async def focus_outline(page) -> str:
    """The focused element's outline: a keyboard user must see where they are."""
    return await page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                               " return `${s.outlineStyle} ${s.outlineWidth}`; }")


async def test_keyboard_only_from_sign_in_to_the_reply_box(browsing: Browsing, served):
    tag = uuid.uuid4().hex[:6]
    for number in (1, 2):
        await send_mail(served, sender=f"顧客 {number} <kb{number}.{tag}@customer.example>",
                        subject=f"返金の件 {tag}-{number}", text="返金をお願いします。")
    _context, page, log = await browsing.new_page()

    await page.goto("/login?next=%2Finbox")
    await expect(page.get_by_label("Email address")).to_be_focused()
    await page.keyboard.type("aiko@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/inbox")

    rows = page.locator("[data-rows] [data-row]")
    await expect(rows.first).to_be_visible()
    assert await rows.count() >= 2
    await page.keyboard.press("j")
    await expect(rows.nth(0)).to_have_attribute("aria-current", "true")
    await page.keyboard.press("j")
    await expect(rows.nth(1)).to_have_attribute("aria-current", "true")
    await expect(rows.nth(0)).not_to_have_attribute("aria-current", "true")
    await page.keyboard.press("k")
    await expect(rows.nth(0)).to_have_attribute("aria-current", "true")
    focused = page.locator(":focus")
    await expect(focused).to_have_attribute("data-open", "")
    assert not (await focus_outline(page)).startswith("none"), "the selected row shows no focus"
    ref = await rows.nth(0).get_attribute("data-ref")

    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(rf"/inbox/{ref}$"))
    await page.keyboard.press("r")
    await expect(page.get_by_label("Reply", exact=True)).to_be_focused()
    await page.keyboard.type("Typed without a mouse")
    await page.keyboard.press("Escape")  # leaves the field; shortcuts work again
    await expect(page.get_by_label("Reply", exact=True)).not_to_be_focused()
    await expect(page.get_by_label("Reply", exact=True)).to_have_value("Typed without a mouse")

    await page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(help_dialog).to_be_visible()
    await expect(help_dialog.get_by_text("Reply")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(help_dialog).to_be_hidden()
    assert not log.page_errors, log.page_errors
