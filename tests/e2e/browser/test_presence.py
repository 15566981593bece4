"""The collision warning in the real browser: a ticket page shows who else has it open and who is
typing a reply, live, and forgets them when they leave."""

from __future__ import annotations

import uuid

from playwright.async_api import expect

from tests.e2e.browser.conftest import Browsing, connected, send_mail, ticket_ref


async def test_a_ticket_page_shows_who_else_is_viewing_and_typing(browsing: Browsing, served):
    subject = f"返金の確認 {uuid.uuid4().hex[:6]}"
    await send_mail(served, sender="Ken <ken@customer.example>", subject=subject, text="返金はいつですか。")
    ref = await ticket_ref(served, subject)
    aiko = await browsing.sign_in("aiko@example.com", next_path=f"/inbox/{ref}")
    await connected(aiko.page)
    presence = aiko.page.locator("#presence")
    await expect(presence).not_to_contain_text("Ben Carter")

    ben = await browsing.sign_in("ben@example.com", next_path=f"/inbox/{ref}")
    await connected(ben.page)
    await expect(presence).to_contain_text("Ben Carter is viewing")
    await expect(ben.page.locator("#presence")).to_contain_text("Aiko Tanaka is viewing")
    await expect(presence).not_to_contain_text("Aiko Tanaka")  # never yourself

    await ben.page.get_by_label("Reply", exact=True).press_sequentially("Checking the refund now")
    await expect(presence).to_contain_text("Ben Carter is typing")

    await ben.page.goto("/inbox")  # leaves the ticket: its page says so as it goes
    await expect(presence).not_to_contain_text("Ben Carter")
    assert not aiko.log.page_errors and not ben.log.page_errors
