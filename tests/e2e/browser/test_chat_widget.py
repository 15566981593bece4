"""The chat widget in Chromium, on the demo page that embeds it as a customer's site would: a visitor
writes, sees the ticket reference and when to expect a reply, an agent's reply arrives live, and after
a reload the conversation is there once. No CSP violation, no script error on the way."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import expect

from tests.e2e.browser.conftest import Browsing
from tests.e2e.helpers import API_TOKEN, Serve


async def test_a_visitor_chats_with_an_agent_and_finds_the_conversation_after_a_reload(
        browsing: Browsing, served: Serve) -> None:
    _, page, log = await browsing.new_page()
    await page.goto("/chat")
    question = f"My parcel {uuid.uuid4().hex[:6]} has not arrived"
    await page.get_by_label("Your message").fill(question)
    await page.get_by_role("button", name="Send", exact=True).click()

    conversation = page.locator("[data-log]")
    await expect(conversation.locator(".entry.customer")).to_contain_text([question])
    await expect(conversation.locator(".entry.customer .state")).to_have_text(["Sent"])
    ticket = page.locator("[data-ticket]")
    await expect(ticket).to_contain_text("Request T-")
    await expect(ticket).to_contain_text("Reply expected by")
    ref = await ticket.get_attribute("data-ref")
    assert ref is not None
    await expect(conversation.locator(".entry.system")).to_contain_text([ref])  # the acknowledgement

    async with httpx.AsyncClient(base_url=served.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        replied = await api.post(f"/api/v1/tickets/{ref}/replies", json={"text": "It is on its way today."})
        assert replied.status_code == 201, replied.text
    await expect(conversation.locator(".entry.agent")).to_contain_text(["It is on its way today."])

    await page.reload()
    await expect(conversation.locator(".entry.agent")).to_contain_text(["It is on its way today."])
    await expect(conversation.locator(".entry")).to_have_count(3)  # question, acknowledgement, reply: once each
    await expect(conversation.locator(".entry.customer")).to_contain_text([question])
    assert not log.page_errors and not log.console_errors, (log.page_errors, log.console_errors)
