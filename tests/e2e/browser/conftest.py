"""Acceptance tests in a real browser: Playwright for Python driving Debian's Chromium against a real
`router serve` (built-in demo config, its own database on the test session's PostgreSQL, its outbound
relay pointed at a local SMTP sink). One served instance, one sink and one browser for the whole
browser suite; each test opens its own browser contexts (cookie jars), so tests share the database
(each starts with no open tickets) but never a session.

Playwright never downloads a browser here: it launches `/usr/bin/chromium` (`.ci/run` installs it
with apt). The tests skip only where no Chromium can exist: no `/usr/bin/chromium` and no apt-get."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import aiosmtplib
import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Dialog, Frame, Page, async_playwright, expect

from tests.conftest import Sink, dsn_for, free_port
from tests.e2e.helpers import API_TOKEN, ROOT, Serve
from tests.e2e.test_email import mail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""The flags this machine needs: without the background-networking ones Chromium keeps dialling
Google's hosts, which the closed network refuses."""
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "demo"
BROWSER_DB = "browser_e2e"
LIVE_TIMEOUT_MS = 10_000
"""How long a page may take to show a change without reload (SSE): far above the 1 s p99 target, so
only a change that never arrives fails."""


def chromium_executable() -> Path:
    """Debian's Chromium; a skip only where it cannot be installed, else a failure that says how."""
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"no Chromium at {CHROMIUM} and no apt-get to install it: browser tests cannot run here")
    pytest.fail(f"Chromium is missing at {CHROMIUM}: install it with `apt-get install -y chromium` "
                "(`.ci/run` does); never `playwright install`")


@pytest.fixture(scope="session")
def relay() -> Iterator[Sink]:
    """The outbound relay: an SMTP sink on its own thread, so it answers whenever the router sends,
    not only while a test awaits."""
    sink = Sink()
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture(scope="session")
async def browser_database(pg_server: str) -> AsyncIterator[str]:
    """An empty database on the test session's PostgreSQL, which `router serve` migrates and loads
    itself: sharing the server spares the browser suite an initdb of its own."""
    chromium_executable()  # nothing to prepare when there is no browser to drive it
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {BROWSER_DB} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {BROWSER_DB}")
    finally:
        await admin.close()
    yield dsn_for(pg_server, BROWSER_DB)
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {BROWSER_DB} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def served(relay: Sink, browser_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("browser-serve"), relay_port=relay.port)
    serve.env["DATABASE_URL"] = browser_database
    try:
        serve.start()
        serve.wait_ready()
        yield serve
    finally:
        serve.close()


@pytest.fixture(scope="session")
async def browser(served: Serve) -> AsyncIterator[Browser]:
    expect.set_options(timeout=LIVE_TIMEOUT_MS)

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(chromium_executable()), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class PageLog:
    """What a page did that a test may have to rule out: dialogs (alert/confirm/prompt), console
    errors (a CSP violation is one), uncaught exceptions, navigations of the top frame, and answers
    of 400 and above (which say what a console error was about)."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)

    def clear(self) -> None:
        for seen in (self.dialogs, self.console_errors, self.page_errors, self.navigations, self.failed_responses):
            seen.clear()

    def watch(self, page: Page) -> None:
        async def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

        def on_navigated(frame: Frame) -> None:
            if frame == page.main_frame:
                self.navigations.append(frame.url)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("framenavigated", on_navigated)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("response", lambda r: self.failed_responses.append(f"{r.status} {r.request.method} {r.url}")
                if r.status >= 400 else None)


@dataclass
class Agent:
    """One signed-in browser context (its own cookie jar) and its page."""

    email: str
    context: BrowserContext
    page: Page
    log: PageLog

    async def new_tab(self) -> tuple[Page, PageLog]:
        """Another page in the same browser context (same session), watched like the first."""
        page = await self.context.new_page()
        log = PageLog()
        log.watch(page)
        return page, log


async def connected(page: Page) -> None:
    """Until the page's event stream is open (`live.js` sets `<body data-live="on">`): a change made
    before that would be in the page already or arrive through the stream, never neither, but a test
    that waits here checks the live path, not the first render."""
    await expect(page.locator("body")).to_have_attribute("data-live", "on")


class Browsing:
    """Opens browser contexts against the served router and closes them after the test."""

    def __init__(self, browser: Browser, served: Serve) -> None:
        self.browser = browser
        self.served = served
        self.contexts: list[BrowserContext] = []

    async def new_page(self, *, locale: str = "en-US") -> tuple[BrowserContext, Page, PageLog]:
        """A fresh context (no cookies) in `locale`, which also sets Accept-Language."""
        context = await self.browser.new_context(base_url=self.served.base_url, locale=locale,
                                                 timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(LIVE_TIMEOUT_MS)
        self.contexts.append(context)
        page = await context.new_page()
        log = PageLog()
        log.watch(page)
        return context, page, log

    async def sign_in(self, email: str, *, locale: str = "en-US", next_path: str = "/inbox") -> Agent:
        """Sign in through the login form, as a person would."""
        context, page, log = await self.new_page(locale=locale)
        await page.goto(f"/login?next={quote(next_path)}")
        labels = ("メールアドレス", "パスワード", "サインイン") if locale.startswith("ja") else \
                 ("Email address", "Password", "Sign in")
        await page.get_by_label(labels[0]).fill(email)
        await page.get_by_label(labels[1]).fill(PASSWORD)
        await page.get_by_role("button", name=labels[2]).click()
        await page.wait_for_url(f"**{next_path}")
        return Agent(email, context, page, log)

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture(autouse=True)
async def nothing_open(served: Serve) -> None:
    """Every test starts with no open work: the tests share one served instance, and the tickets an
    earlier test left with aiko would fill her capacity (5) and route the next test's mail elsewhere."""
    async with httpx.AsyncClient(base_url=served.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        listed = (await api.get("/api/v1/tickets", params={"status": "open,pending", "limit": 200})).json()
        for ticket in listed["tickets"]:
            solved = await api.patch(f"/api/v1/tickets/{ticket['ref']}", json={"status": "solved"})
            assert solved.status_code == 200, solved.text


@pytest.fixture
async def browsing(browser: Browser, served: Serve) -> AsyncIterator[Browsing]:
    opened = Browsing(browser, served)
    yield opened
    await opened.close()


async def send_mail(served: Serve, *, sender: str, subject: str, text: str, html: str | None = None,
                    **headers: str) -> EmailMessage:
    """An inbound mail over SMTP to the served intake, as a mail server delivers it; returns it (its
    Message-ID is what a reply must thread on)."""
    message = mail(sender, subject, text, **headers)
    if html is not None:
        message.add_alternative(html, subtype="html")
    await aiosmtplib.send(message, hostname="127.0.0.1", port=served.smtp_port, timeout=10)
    return message


async def ticket_ref(served: Serve, subject: str) -> str:
    """The reference of the ticket with `subject`, read through the agents' API (integration token)."""
    async with httpx.AsyncClient(base_url=served.base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        listed = (await api.get("/api/v1/tickets", params={"limit": 200})).json()["tickets"]
    found = [str(t["ref"]) for t in listed if t["subject"] == subject]
    assert len(found) == 1, f"expected one ticket titled {subject!r}, found {found}"
    return found[0]


MAIL_WAIT_SECONDS = 20
"""The outbox dispatcher rests a second when idle and backs off on a failed send."""


async def wait_for_mail(relay: Sink, matches: Callable[[EmailMessage], bool]) -> EmailMessage:
    """The first mail the relay received that `matches`, waiting for the outbox dispatcher (the relay
    runs on its own thread, so this polls)."""
    for _ in range(MAIL_WAIT_SECONDS * 5):
        found = [m for m in list(relay.messages) if matches(m)]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    subjects = [str(m["Subject"]) for m in relay.messages]
    raise AssertionError(f"no matching mail reached the relay in {MAIL_WAIT_SECONDS}s; it has {subjects}")
