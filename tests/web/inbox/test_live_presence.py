"""The collision warning: a ticket page is told who else has the ticket open and who is typing a reply,
in its own language and without its own agent; viewers vanish when they leave or their page goes
silent."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from router.core.actions.presence import TYPING_FOR, VIEWING_FOR
from router.live import LiveHub
from tests.conftest import ORIGIN, post_message, sign_in
from tests.web.inbox.test_live import Pages, followed, hub, pages, server  # noqa: F401 (fixtures)


class Agent:
    """One agent's browser on the ASGI app: signs in once, then sends presence heartbeats."""

    def __init__(self, client: httpx.AsyncClient, email: str) -> None:
        self.client = httpx.AsyncClient(transport=client._transport, base_url="http://router.test")
        self.email = email
        self.token = ""

    async def sign_in(self) -> Agent:
        self.token = await sign_in(self.client, self.email)
        return self

    async def presence(self, ref: str, state: str, page: str = "page-one-0001") -> httpx.Response:
        return await self.client.post(f"/inbox/{ref}/presence", data={"page": page, "state": state},
                                      headers={"Origin": ORIGIN, "X-CSRF-Token": self.token})


@pytest.fixture
async def ticket(server, client, auth, hub: LiveHub, pool) -> str:  # noqa: F811
    """A ticket whose events the running follower has handed out already."""
    ref = await post_message(client, auth, "Where is my parcel?", email="kim@customer.test")
    await followed(hub, pool)
    return ref


async def agent(client: httpx.AsyncClient, email: str) -> Agent:
    return await Agent(client, email).sign_in()


async def test_a_ticket_page_shows_who_else_views_it_and_who_types(pages: Pages, client, ticket: str) -> None:  # noqa: F811
    aiko_page = await pages.open("aiko@example.com", watch=(ticket,))
    chie_page = await pages.open("chie@example.com", watch=(ticket,), language="ja")
    aiko, ben = await agent(client, "aiko@example.com"), await agent(client, "ben@example.com")

    answer = await aiko.presence(ticket, "viewing")
    assert answer.status_code == 200 and answer.json() == {"heartbeat_seconds": 20}
    shown = await chie_page.until(f"presence-{ticket}")
    assert shown.data == '<span class="presence-viewing">Aiko Tanaka さんが閲覧中</span>'

    await ben.presence(ticket, "typing")
    assert "Ben Carter is typing…" in (await aiko_page.until(f"presence-{ticket}")).data
    assert (await chie_page.until(f"presence-{ticket}")).data == (
        '<span class="presence-viewing">Aiko Tanaka さんが閲覧中</span> · '
        '<span class="presence-typing">Ben Carter さんが入力中…</span>')

    await ben.presence(ticket, "viewing")  # stopped typing (sent, or cleared the draft)
    assert (await aiko_page.until(f"presence-{ticket}")).data == (
        '<span class="presence-viewing">Ben Carter is viewing</span>')

    await ben.presence(ticket, "left")
    assert (await aiko_page.until(f"presence-{ticket}")).data == ""  # the warning is cleared
    # aiko's own page never named her: the only fragments it got were about Ben
    await aiko_page.nothing_within(0.5)


async def test_a_page_opened_later_is_told_at_once_who_is_there(pages: Pages, client, ticket: str) -> None:  # noqa: F811
    ben = await agent(client, "ben@example.com")
    await ben.presence(ticket, "viewing")
    first = await pages.open("chie@example.com", watch=(ticket,))  # presence unknown to the process yet
    assert "Ben Carter" in (await first.until(f"presence-{ticket}")).data
    second = await pages.open("aiko@example.com", watch=(ticket,))  # known: handed over at subscription
    assert "Ben Carter" in (await second.until(f"presence-{ticket}")).data


async def test_a_silent_page_stops_counting_when_its_presence_expires(pages: Pages, hub: LiveHub, client,  # noqa: F811
                                                                      clock, ticket: str) -> None:
    page = await pages.open("aiko@example.com", watch=(ticket,))
    ben = await agent(client, "ben@example.com")
    await ben.presence(ticket, "typing")
    assert "is typing" in (await page.until(f"presence-{ticket}")).data

    clock.advance(TYPING_FOR + timedelta(seconds=1))  # the page crashed mid-sentence
    hub.presence_changed()
    assert "Ben Carter is viewing" in (await page.until(f"presence-{ticket}")).data

    clock.advance(VIEWING_FOR)
    hub.presence_changed()
    assert (await page.until(f"presence-{ticket}")).data == ""


async def test_several_tabs_of_one_agent_count_once(pages: Pages, client, ticket: str) -> None:  # noqa: F811
    page = await pages.open("aiko@example.com", watch=(ticket,))
    ben = await agent(client, "ben@example.com")
    await ben.presence(ticket, "viewing", page="first-tab-0001")
    await ben.presence(ticket, "typing", page="second-tab-002")
    while "is typing" not in (shown := (await page.until(f"presence-{ticket}")).data):
        pass
    assert shown == '<span class="presence-typing">Ben Carter is typing…</span>'  # once, typing in one tab
    await ben.presence(ticket, "left", page="second-tab-002")
    viewing = '<span class="presence-viewing">Ben Carter is viewing</span>'
    assert (await page.until(f"presence-{ticket}")).data == viewing


async def test_presence_heartbeats_need_a_session_the_csrf_token_and_a_real_ticket(client, auth, pool) -> None:
    ticket = await post_message(client, auth, "Where is my parcel?", email="kim@customer.test")
    signed_out = await client.post(f"/inbox/{ticket}/presence", data={"page": "page-one-0001", "state": "viewing"},
                                   headers={"Origin": ORIGIN})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
    ben = await agent(client, "ben@example.com")
    no_token = await ben.client.post(f"/inbox/{ticket}/presence", data={"page": "page-one-0001", "state": "viewing"},
                                     headers={"Origin": ORIGIN})
    assert no_token.status_code == 403
    other_site = await ben.client.post(f"/inbox/{ticket}/presence", data={"page": "page-one-0001",
                                       "state": "viewing", "csrf_token": ben.token},
                                       headers={"Origin": "https://evil.example"})
    assert other_site.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM inbox_presence") == 0

    assert (await ben.presence("T-999999", "viewing")).status_code == 404
    assert (await ben.presence(ticket, "dancing")).status_code == 422
    assert (await ben.presence(ticket, "viewing", page="x")).status_code == 422
    huge = await ben.client.post(f"/inbox/{ticket}/presence", content=b"page=" + b"a" * 10_000,
                                 headers={"Origin": ORIGIN, "X-CSRF-Token": ben.token,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    # a page closing sends its token in the form (a beacon cannot set headers)
    beacon = await ben.client.post(f"/inbox/{ticket}/presence", data={"page": "page-one-0001", "state": "viewing",
                                                                      "csrf_token": ben.token},
                                   headers={"Origin": ORIGIN})
    assert beacon.status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM inbox_presence") == 1
