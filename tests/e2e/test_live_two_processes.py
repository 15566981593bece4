"""Live updates across processes: two `router serve` on one database, each with its own follower. What
is written through one reaches a page connected to the other (events and presence alike), and a
process stopping with pages connected ends their streams instead of waiting for them."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.e2e.helpers import API_TOKEN, Serve, serve_process
from tests.web.inbox.test_live import Stream


async def signed_in(serve: Serve, email: str) -> tuple[httpx.AsyncClient, str]:
    """A browser signed in to `serve` as `email`, and its CSRF token."""
    browser = httpx.AsyncClient(base_url=serve.base_url, timeout=30, headers={"Origin": serve.base_url})
    response = await browser.post("/login", data={"email": email, "password": "demo", "next": "/inbox"})
    assert response.status_code == 303, response.text
    page = await browser.get("/preferences")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text[:300]
    return browser, token.group(1)


@contextlib.asynccontextmanager
async def live_page(browser: httpx.AsyncClient, *watch: str) -> AsyncIterator[Stream]:
    async with browser.stream("GET", "/inbox/live", params=[("watch", ref) for ref in watch],
                              headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        stream = Stream(response)
        try:
            await stream.until("live", seconds=30)
            yield stream
        finally:
            await stream.close()


async def test_what_one_process_writes_reaches_a_page_on_the_other(tmp_path: Path) -> None:
    with serve_process(tmp_path, name="serve-a") as a, \
            serve_process(tmp_path, database_url=a.dsn(), name="serve-b") as b:
        async with contextlib.AsyncExitStack() as clients:
            api = httpx.AsyncClient(base_url=a.base_url, timeout=30, headers={"Authorization": f"Bearer {API_TOKEN}"})
            aiko_on_b, _ = await signed_in(b, "aiko@example.com")
            ben_on_a, ben_token = await signed_in(a, "ben@example.com")
            for client in (api, aiko_on_b, ben_on_a):
                clients.push_async_callback(client.aclose)
            inbox_page = await clients.enter_async_context(live_page(aiko_on_b))
            posted = await api.post("/api/v1/messages", json={
                "channel": "api", "sender": {"email": "kim@customer.test", "name": "Kim"},
                "text": "My parcel never arrived"})
            assert posted.status_code == 202, posted.text
            ref = posted.json()["ticket_ref"]
            assert ref in (await inbox_page.until("inbox", seconds=10)).json()["refs"]

            async with live_page(aiko_on_b, ref) as ticket_page:
                viewing = await ben_on_a.post(f"/inbox/{ref}/presence", data={"page": "ben-page-0001",
                                                                              "state": "viewing"},
                                              headers={"X-CSRF-Token": ben_token})
                assert viewing.status_code == 200, viewing.text
                assert "Ben Carter is viewing" in (await ticket_page.until(f"presence-{ref}", seconds=10)).data

                note = await api.post(f"/api/v1/tickets/{ref}/notes", json={"text": "called the courier"})
                assert note.status_code in (200, 201), note.text
                changed = await ticket_page.until(f"ticket-{ref}", seconds=10)
                assert changed.json()["kind"] == "note.added"

                started = time.monotonic()
                b.stop()  # SIGTERM with two pages connected
                assert b.process is not None and b.process.returncode == 0, b.log_tail()
                assert time.monotonic() - started < 10, "the streams held up the stop"
                for page in (inbox_page, ticket_page):
                    while True:
                        try:
                            await page.next(seconds=5)
                        except EOFError:
                            break
