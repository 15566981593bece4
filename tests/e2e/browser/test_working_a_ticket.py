"""The agent's day in the real browser (issue 10, Acceptance): a mail arrives over SMTP and shows in
aiko's Mine view without reload; she opens it and replies (the reply reaches the relay threaded on the
customer's mail), sets it pending and transfers it to ben with a reason; it leaves her view live while
ben, in another browser context, sees it arrive; searching 返金 finds it. Screenshots of the inbox and
the ticket page, in English and Japanese, go to test-artifacts/."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

import pytest
from playwright.async_api import expect

from tests.e2e.browser.conftest import Agent, Browsing, connected, send_mail, wait_for_mail

REPLY = "返金の手続きを開始しました。3〜5 営業日でご返金いたします。"
REASON = "Card refunds are handled by Ben's billing desk"


def row_for(page, subject: str):
    """The inbox row that opens the ticket titled `subject`."""
    return page.get_by_role("link", name=re.compile(re.escape(subject)))


async def open_mine(agent: Agent) -> None:
    await agent.page.goto("/inbox")
    await agent.page.get_by_role("navigation", name="Views").get_by_role("link", name=re.compile(r"^Mine")).click()
    await expect(agent.page).to_have_url(re.compile(r"view=mine"))
    await connected(agent.page)


async def test_a_mail_is_worked_from_arrival_to_transfer(browsing: Browsing, served, relay, artifacts):
    tag = uuid.uuid4().hex[:6]
    subject = f"返金のお願い（注文 {tag}）"
    customer = f"hanako.{tag}@customer.example"

    aiko = await browsing.sign_in("aiko@example.com")
    await open_mine(aiko)
    ben = await browsing.sign_in("ben@example.com")
    await open_mine(ben)
    inbox = aiko.page
    loaded = list(aiko.log.navigations)

    # A billing mail in Japanese: routed to aiko (billing + ja), shown in her Mine view live.
    mail = await send_mail(served, sender=f"山田 花子 <{customer}>", subject=subject,
                           text="先週の請求について返金をお願いします。注文番号は 1182 です。")
    await expect(row_for(inbox, subject)).to_be_visible()
    assert aiko.log.navigations == loaded, "the inbox reloaded instead of updating live"
    await inbox.screenshot(path=artifacts / "inbox-en.png", full_page=True)

    # Keep her Mine view open in its own tab; work the ticket in another.
    watcher, watcher_log = await aiko.new_tab()
    await watcher.goto(inbox.url)
    await connected(watcher)
    await row_for(inbox, subject).click()
    await inbox.wait_for_url(re.compile(r"/inbox/T-\d+$"))
    ticket = inbox
    ref = ticket.url.rsplit("/", 1)[1]
    await expect(ticket.get_by_role("heading", level=1)).to_contain_text(subject)

    await ticket.get_by_label("Reply", exact=True).fill(REPLY)
    await ticket.get_by_role("button", name="Send reply").click()
    sent_entry = ticket.locator("#timeline li", has_text=REPLY)
    await expect(sent_entry).to_contain_text(f"sent on Email → {customer}")  # the channel it went out on
    sent = await wait_for_mail(relay, lambda m: m["In-Reply-To"] == mail["Message-ID"]
                               and "Auto-Submitted" not in m)
    assert sent["To"].addresses[0].addr_spec == customer
    assert mail["Message-ID"] in sent["References"].split()
    assert f"[{ref}]" in sent["Subject"] and subject in sent["Subject"]
    assert sent.get_content().strip().startswith(REPLY)
    await ticket.screenshot(path=artifacts / "ticket-en.png", full_page=True)

    actions = ticket.get_by_role("region", name="Ticket", exact=True)
    await actions.get_by_label("Status").select_option("pending")
    await actions.get_by_role("button", name="Update").click()
    await expect(ticket.locator("#ticket-summary")).to_contain_text("Pending")

    await expect(row_for(watcher, subject)).to_be_visible()
    await expect(row_for(ben.page, subject)).to_have_count(0)
    watcher_loaded, ben_loaded = list(watcher_log.navigations), list(ben.log.navigations)
    target = ticket.get_by_label("Transfer to")
    ben_value = await target.locator("option", has_text="Ben Carter").get_attribute("value")
    await target.select_option(ben_value)
    await ticket.get_by_label("Reason").fill(REASON)
    await ticket.get_by_role("button", name="Transfer", exact=True).click()
    await expect(ticket.locator("#ticket-summary")).to_contain_text("Ben Carter")
    await expect(ticket.get_by_role("region", name="Routing log")).to_contain_text(REASON)

    await expect(row_for(ben.page, subject)).to_be_visible()  # arrives in ben's Mine view, live
    await expect(row_for(watcher, subject)).to_have_count(0)  # and leaves aiko's
    assert ben.log.navigations == ben_loaded and watcher_log.navigations == watcher_loaded, "reloaded, not live"

    await ben.page.get_by_label("Search").fill("返金")
    await ben.page.keyboard.press("Enter")
    await ben.page.wait_for_url(re.compile(r"/inbox\?q="))
    await expect(ben.page.get_by_text("Results for “返金”")).to_be_visible()
    await expect(row_for(ben.page, subject)).to_be_visible()

    for problem in (aiko.log.page_errors, watcher_log.page_errors, ben.log.page_errors, aiko.log.dialogs):
        assert not problem, problem


def require_japanese_font() -> None:
    """Without one, Chromium draws every Japanese character as a box and the screenshots show nothing."""
    listed = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True, check=False).stdout \
        if shutil.which("fc-list") else ""
    if not listed.strip():
        pytest.fail("no Japanese font: install fonts-ipafont-gothic (`.ci/run` does)")


async def test_inbox_and_ticket_page_in_japanese(browsing: Browsing, served, artifacts):
    require_japanese_font()
    subject = f"返金について {uuid.uuid4().hex[:6]}"
    await send_mail(served, sender="佐藤 一郎 <ichiro@customer.example>", subject=subject,
                    text="二重に請求されています。返金をお願いします。")
    aiko = await browsing.sign_in("aiko@example.com", locale="ja-JP")
    page = aiko.page
    await expect(page.locator("html")).to_have_attribute("lang", "ja")
    await expect(row_for(page, subject)).to_be_visible()
    await page.screenshot(path=artifacts / "inbox-ja.png", full_page=True)
    await row_for(page, subject).click()
    await page.wait_for_url(re.compile(r"/inbox/T-\d+$"))
    await expect(page.get_by_label("返信", exact=True)).to_be_visible()
    await page.screenshot(path=artifacts / "ticket-ja.png", full_page=True)
    assert not aiko.log.page_errors
