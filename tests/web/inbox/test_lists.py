"""`/inbox`: every view holds what it says, with counts; every filter narrows; keyset pages neither
repeat nor drop rows while tickets arrive; unread markers follow what the agent has read; search finds
tickets by reference, name, email, phone and words, Japanese two-character words included; the rows
refresh live; signed-out visitors are sent to sign in. The JSON list answers the same query."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from router.core.clock import ManualClock
from router.core.store import inbox, reads
from router.web.inbox import lists
from tests.conftest import post_message, sign_in

ROW = re.compile(r'<tr data-row data-ref="(T-\d+)"')
AIKO, BEN, CHIE = 1, 2, 3  # demo agents' ids (tests/conftest.py loads the demo config in order)


def listed(html: str) -> list[str]:
    return ROW.findall(html)


async def page(client: httpx.AsyncClient, **params: str) -> str:
    response = await client.get("/inbox", params=params)
    assert response.status_code == 200, response.text[:500]
    return response.text


async def refs(client: httpx.AsyncClient, **params: str) -> list[str]:
    return listed(await page(client, **params))


def count(html: str, view: str) -> str:
    match = re.search(rf'id="count-{view}"[^>]*>([^<]*)<', html)
    assert match, f"no count for {view}"
    return match.group(1)


async def assign(client: httpx.AsyncClient, auth: dict[str, str], ref: str, agent: str | None) -> None:
    response = await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": agent, "reason": "test"},
                                 headers=auth)
    assert response.status_code == 200, response.text


async def patch(client: httpx.AsyncClient, auth: dict[str, str], ref: str, **change: str) -> None:
    response = await client.patch(f"/api/v1/tickets/{ref}", json=change, headers=auth)
    assert response.status_code == 200, response.text


async def ticket(client: httpx.AsyncClient, auth: dict[str, str], who: str, text: str, *,
                 agent: str | None = "aiko@example.com", **fields: object) -> str:
    """A ticket from customer `who`, assigned to `agent` (None: waiting in the queue)."""
    ref = await post_message(client, auth, text, email=f"{who}@customer.example", name=fields.pop("name", who),
                             **fields)
    await assign(client, auth, ref, agent)
    return ref


@pytest.fixture
async def world(client, auth, clock: ManualClock) -> dict[str, str]:
    """Tickets in every state. `late` and `warned` are 3h45 old (SLA first response 4h, warning at
    75 %) when the rest arrive; `late` is 30 minutes older still, so it is due first."""
    made = {}
    made["late"] = await ticket(client, auth, "late", "Where is my delivery? It has been a week.")
    clock.advance(timedelta(minutes=30))
    made["warned"] = await ticket(client, auth, "warned", "The tracking number does not work.")
    clock.advance(timedelta(hours=3, minutes=20))
    made["mine"] = await ticket(client, auth, "mine", "請求書の金額が間違っています。返金をお願いします。",
                                subject="ご請求について")
    made["bens"] = await ticket(client, auth, "bens", "The app crashes with an error at login",
                                agent="ben@example.com")
    made["pending"] = await ticket(client, auth, "pending", "I will send the receipt tomorrow",
                                   agent="ben@example.com")
    await patch(client, auth, made["pending"], status="pending")
    made["solved"] = await ticket(client, auth, "solved", "Thanks, all good now")
    await patch(client, auth, made["solved"], status="solved")
    for agent_id in (AIKO, BEN, CHIE):  # nobody can take new work: the next ticket waits in the queue
        response = await client.patch(f"/api/v1/agents/{agent_id}", json={"status": "offline"}, headers=auth)
        assert response.status_code == 200, response.text
    made["queued"] = await post_message(client, auth, "Question about your opening hours",
                                        email="queued@customer.example", name="queued")
    clock.advance(timedelta(minutes=1))
    return made


async def test_signed_out_visitors_are_sent_to_sign_in(client):
    for path in ("/inbox", "/inbox?view=all&q=返金", "/inbox/rows?view=mine"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    htmx = await client.get("/inbox/rows", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


async def test_every_view_holds_its_tickets(client, world):
    await sign_in(client, "aiko@example.com")
    w = world
    default = await page(client)
    assert "<h1 id=\"list-title\">Mine</h1>" in default
    assert sorted(listed(default)) == sorted([w["late"], w["warned"], w["mine"]])
    assert await refs(client, view="unassigned") == [w["queued"]]
    assert sorted(await refs(client, view="team")) == sorted(
        [w["late"], w["warned"], w["mine"], w["bens"], w["queued"], w["pending"]])
    assert await refs(client, view="at_risk") == [w["late"], w["warned"]]  # soonest due first
    assert await refs(client, view="pending") == [w["pending"]]
    assert await refs(client, view="solved") == [w["solved"]]
    everything = await refs(client, view="all")
    assert sorted(everything) == sorted(w.values())
    assert everything[:2] == [w["queued"], w["solved"]]  # newest activity first


async def test_at_risk_pages_go_from_the_soonest_due(client, auth, world, clock, monkeypatch):
    fresh = await ticket(client, auth, "fresh", "Where is my parcel?")
    clock.advance(timedelta(hours=3, minutes=30))  # everything open is warned now, `late` and `warned` past due
    monkeypatch.setattr(lists, "PAGE_ROWS", 1)
    await sign_in(client, "aiko@example.com")
    html = await page(client, view="at_risk")
    seen = listed(html)
    while cursor := re.search(r"cursor=([\w-]+)", html):
        html = (await client.get("/inbox/rows", params={"view": "at_risk", "cursor": cursor.group(1),
                                                         "shown": str(len(seen))})).text
        seen += listed(html)
    same_due = sorted([world["mine"], world["bens"], world["queued"]], key=lambda ref: int(ref[2:]))  # then by id
    assert seen == [world["late"], world["warned"], *same_due, fresh]  # pending (paused) and solved are not at risk


async def test_views_are_the_same_for_a_lead_except_their_own(client, world):
    await sign_in(client, "lena@example.com")
    assert await refs(client) == []
    assert sorted(await refs(client, view="all")) == sorted(world.values())
    assert await refs(client, view="at_risk") == [world["late"], world["warned"]]


async def test_counts_per_view(client, world, monkeypatch):
    await sign_in(client, "aiko@example.com")
    html = await page(client)
    assert {view: count(html, view) for view in inbox.VIEWS} == {
        "mine": "3", "unassigned": "1", "team": "6", "at_risk": "2", "pending": "1", "solved": "1", "all": "7"}
    monkeypatch.setattr(inbox, "COUNT_CAP", 3)
    html = await page(client)
    assert count(html, "all") == "2+" and count(html, "team") == "2+" and count(html, "mine") == "2+"
    assert count(html, "at_risk") == "2" and count(html, "solved") == "1"


async def test_at_risk_colours_the_countdown_and_leaves_paused_clocks_out(client, world, clock):
    await sign_in(client, "aiko@example.com")
    html = await page(client, view="all")
    row = html[html.index(f'data-ref="{world["late"]}"'):]
    assert 'class="sla-warn"' in row[:row.index("</tr>")]
    mine = html[html.index(f'data-ref="{world["mine"]}"'):]
    assert 'class="sla-ok"' in mine[:mine.index("</tr>")]
    clock.advance(timedelta(minutes=20))  # `late` is now past due
    html = await page(client, view="at_risk")
    row = html[html.index(f'data-ref="{world["late"]}"'):]
    assert 'class="sla-late"' in row[:row.index("</tr>")]
    assert world["pending"] not in listed(html)


async def test_filters_narrow_the_list(client, auth, world):
    await sign_in(client, "aiko@example.com")
    w = world
    assert await refs(client, view="all", status="pending") == [w["pending"]]
    assert await refs(client, view="mine", status="open", language="ja") == [w["mine"]]
    assert sorted(await refs(client, view="all", language="ja")) == [w["mine"]]
    assert await refs(client, view="all", topic="technical") == [w["bens"]]
    assert sorted(await refs(client, view="all", topic="shipping")) == sorted([w["late"], w["warned"]])
    assert sorted(await refs(client, view="all", assignee=str(BEN))) == sorted([w["bens"], w["pending"]])
    assert await refs(client, view="all", assignee="none") == [w["queued"]]
    assert sorted(await refs(client, view="all", assignee="ben@example.com")) == sorted([w["bens"], w["pending"]])
    assert len(await refs(client, view="all", team="support")) == 7
    assert await refs(client, view="all", team="nobody") == []
    await patch(client, auth, w["bens"], priority="urgent")
    assert await refs(client, view="all", priority="urgent") == [w["bens"]]
    chat = await ticket(client, auth, "chatter", "hello from the chat", channel="chat")
    assert await refs(client, view="all", channel="chat") == [chat]
    assert await refs(client, view="all", channel="chat", status="solved") == []
    html = await page(client, view="all", channel="chat", priority="urgent", language="ja")
    assert '<option value="chat" selected>' in html and '<option value="urgent" selected>' in html
    assert '<option value="ja" selected>日本語</option>' in html and '<option value="en">English</option>' in html


async def test_each_filter_has_a_visible_label(client, world):
    await sign_in(client, "aiko@example.com")
    html = await page(client)
    for name in ("status", "channel", "priority", "topic", "language", "assignee", "team"):
        control = re.search(rf'<select id="([^"]+)" name="{name}">', html)
        assert control, name
        assert f'<label for="{control.group(1)}">' in html, name
    assert f'<option value="{BEN}">Ben Carter</option>' in html and '<option value="support">support</option>' in html


async def test_keyset_pages_neither_repeat_nor_drop_rows_while_tickets_arrive(client, auth):
    first = [await ticket(client, auth, f"c{i}", f"message number {i}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    arrived = []
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/api/v1/tickets", params=params, headers=auth)).json()
        seen.extend(t["ref"] for t in body["tickets"])
        arrived.append(await ticket(client, auth, f"new{len(arrived)}", "a new ticket meanwhile"))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a row was listed twice"
    assert seen == list(reversed(first)), "rows were dropped or out of order"
    assert not set(arrived) & set(seen)


async def test_load_more_and_the_live_refresh_of_the_rows(client, auth, monkeypatch):
    monkeypatch.setattr(lists, "PAGE_ROWS", 2)
    made = [await ticket(client, auth, f"c{i}", f"message number {i}") for i in range(5)]
    await sign_in(client, "aiko@example.com")
    html = await page(client, view="all")
    assert listed(html) == list(reversed(made))[:2] and "Load more" in html
    tbody = re.search(r'<tbody id="rows"[^>]*>', html, re.S).group(0)
    assert 'hx-get="/inbox/rows?view=all"' in tbody
    assert 'hx-trigger="sse:inbox throttle:1s"' in tbody and 'hx-include="#rows-shown"' in tbody
    assert "data-rows" in tbody
    newest_first = list(reversed(made))
    first = await client.get("/inbox/rows", params={"view": "all", "shown": "2"})
    assert listed(first.text) == newest_first[:2]
    cursor = re.search(r"cursor=([\w-]+)", first.text).group(1)
    assert 'id="rows-shown" name="shown" value="2"' in first.text
    assert 'id="count-all" hx-swap-oob="true"' in first.text
    more = await client.get("/inbox/rows", params={"view": "all", "cursor": cursor, "shown": "2"})
    assert listed(more.text) == newest_first[2:4]
    assert 'value="4"' in more.text
    refreshed = await client.get("/inbox/rows", params={"view": "all", "shown": "4"})
    assert listed(refreshed.text) == newest_first[:4]
    last = await client.get("/inbox/rows", params={
        "view": "all", "shown": "4", "cursor": re.search(r"cursor=([\w-]+)", more.text).group(1)})
    assert listed(last.text) == newest_first[4:]
    assert "Load more" not in last.text and "No tickets" not in last.text


async def test_unread_until_the_agent_opens_it_and_again_when_the_customer_writes(client, auth, pool, clock):
    ref = await ticket(client, auth, "reader", "Where is my delivery?")
    await sign_in(client, "aiko@example.com")

    def unread(html: str) -> bool:
        row = html[html.index(f'data-ref="{ref}"'):]
        return 'class="unread' in row[:80] and "unread-dot" in row[:row.index("</tr>")]

    assert unread(await page(client))
    clock.advance(timedelta(minutes=5))
    async with pool.acquire() as conn:
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref[2:]))
        await reads.mark_read(conn, AIKO, ticket_id, clock())
        await reads.mark_read(conn, AIKO, ticket_id, clock() - timedelta(hours=1))  # never moves back
    assert not unread(await page(client))
    assert unread(await page(client, view="all")) is False
    clock.advance(timedelta(minutes=5))
    await post_message(client, auth, "Any news?", email="reader@customer.example")
    assert unread(await page(client))


async def test_unread_is_per_agent(client, auth, pool, clock):
    ref = await ticket(client, auth, "reader", "Where is my delivery?")
    async with pool.acquire() as conn:
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref[2:]))
        await reads.mark_read(conn, BEN, ticket_id, clock())
    await sign_in(client, "aiko@example.com")
    assert "unread-dot" in await page(client)


@pytest.fixture
async def searchable(client, auth) -> dict[str, str]:
    return {
        "refund": await post_message(client, auth, "請求書の金額が間違っています。返金をお願いします。",
                                     email="hanako.yamada@customer.example", name="山田 花子",
                                     subject="ご請求について"),
        "invoice": await post_message(client, auth, "先月の請求について確認させてください。",
                                      email="jiro@customer.example", name="林 次郎"),
        "english": await post_message(client, auth, "My order has not arrived, the tracking number does not work",
                                      email="emma@customer.example", name="Emma Smith",
                                      subject="Where is my order?"),
        "scattered": await post_message(client, auth, "請求の件です。要求書を送ります。",  # 請求 and 求書, no 請求書
                                        email="saburo@customer.example", name="Saburo"),
        "phone": await post_phone(client, auth, "ログインするとエラーが表示されます。", "+81 90 1234 5678",
                                  "佐藤 健一"),
    }


async def post_phone(client: httpx.AsyncClient, auth: dict[str, str], text: str, phone: str, name: str) -> str:
    body = {"channel": "whatsapp", "sender": {"id": "wa-1", "phone": phone, "name": name, "verified": ["phone"]},
            "text": text}
    response = await client.post("/api/v1/messages", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return str(response.json()["ticket_ref"])


SEARCHES = [
    ("返金", ["refund"]),
    ("請求", ["refund", "invoice", "scattered"]),
    ("請求書", ["refund"]),
    ("間違", ["refund"]),
    ("hanako.yamada@customer.example", ["refund"]),
    ("HANAKO.YAMADA@customer.example", ["refund"]),
    ("山田", ["refund"]),
    ("林", ["invoice"]),
    ("Emma Smith", ["english"]),
    ("tracking", ["english"]),
    ("ＴＲＡＣＫＩＮＧ", ["english"]),
    ("order arrived", ["english"]),
    ("090-1234-5678", ["phone"]),
    ("+81 90 1234 5678", ["phone"]),
    ("エラー", ["phone"]),
    ("配送", []),
    ("refund invoice", []),
]


@pytest.mark.parametrize("plan", ["from-index", "by-recency"])
async def test_search_finds_tickets_by_words_names_addresses_and_phones(client, auth, searchable, pool, monkeypatch,
                                                                        plan):
    if plan == "by-recency":  # every term ANALYZE counts as common is read down the list by recency
        monkeypatch.setattr(inbox, "SEARCH_COMMON_PAGE", 0)
        async with pool.acquire() as conn:
            await conn.execute("ANALYZE messages")
    await sign_in(client, "aiko@example.com")
    for query, expected in SEARCHES:
        want = sorted(searchable[name] for name in expected)
        assert sorted(await refs(client, q=query)) == want, query
        body = (await client.get("/api/v1/tickets", params={"q": query}, headers=auth)).json()
        assert sorted(t["ref"] for t in body["tickets"]) == want, query


async def test_search_by_reference(client, auth, searchable):
    await sign_in(client, "aiko@example.com")
    ref = searchable["english"]
    assert await refs(client, q=ref) == [ref]
    assert await refs(client, q=ref.lower()) == [ref]
    assert await refs(client, q=ref[2:]) == [ref]  # the number alone: the first message carries the reference
    assert await refs(client, q="T-999999") == []


async def test_search_by_an_address_linked_after_the_messages(client, auth, searchable, pool):
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO customer_identities (customer_id, kind, value)"
            " SELECT customer_id, 'email', 'kenichi@work.example' FROM tickets WHERE number = $1",
            int(searchable["phone"][2:]))
    await sign_in(client, "aiko@example.com")
    assert await refs(client, q="kenichi@work.example") == [searchable["phone"]]


async def test_search_within_a_view_and_filters_and_the_page_says_what_it_shows(client, auth, searchable):
    await assign(client, auth, searchable["invoice"], "ben@example.com")
    await assign(client, auth, searchable["refund"], "aiko@example.com")
    await assign(client, auth, searchable["scattered"], "ben@example.com")
    await sign_in(client, "aiko@example.com")
    html = await page(client, q="請求")
    assert "Results for “請求”" in html and "All tickets" in html  # the top bar's search looks everywhere
    assert await refs(client, q="請求", view="mine") == [searchable["refund"]]
    assert sorted(await refs(client, q="請求", assignee=str(BEN))) == sorted([searchable["invoice"],
                                                                            searchable["scattered"]])
    assert "No tickets match “配送”." in await page(client, q="配送")
    assert "Type a word" in await page(client, q="!!!")
    assert '<input type="hidden" name="q" value="請求">' in html  # the filters keep the search


async def test_japanese_interface(client, world):
    await sign_in(client, "aiko@example.com")
    html = (await client.get("/inbox", headers={"Accept-Language": "ja"})).text
    assert "<h1 id=\"list-title\">自分の担当</h1>" in html
    assert '<label for="filter-assignee">担当者</label>' in html
    assert "未割り当て" in html and "さらに読み込む" not in html


async def test_bad_list_requests_get_a_readable_page(client):
    await sign_in(client, "aiko@example.com")
    for params in ({"view": "bogus"}, {"cursor": "garbage"}, {"status": "done"}, {"priority": "asap"},
                   {"shown": "-1"}, {"assignee": "0"}, {"q": "x" * 501}):
        response = await client.get("/inbox", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("text/html"), params


async def test_the_api_list_takes_the_same_filters_and_search(client, auth, world):
    body = (await client.get("/api/v1/tickets", params={"status": "open", "language": "ja", "q": "返金"},
                             headers=auth)).json()
    assert [t["ref"] for t in body["tickets"]] == [world["mine"]]
    summary = body["tickets"][0]
    assert summary["sla"]["target"] == "first_response" and summary["sla"]["paused"] is False
    assert summary["customer_name"] == "mine"
    problem = await client.get("/api/v1/tickets", params={"priority": "asap"}, headers=auth)
    assert problem.status_code == 422 and problem.json()["error"] == "invalid_input"


async def test_reads_are_stored_once_per_agent_and_ticket(pool, clock, client, auth):
    ref = await ticket(client, auth, "reader", "hello")
    async with pool.acquire() as conn:
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref[2:]))
        for _ in range(3):
            await reads.mark_read(conn, AIKO, ticket_id, clock())
        rows = await conn.fetch("SELECT * FROM ticket_reads")
    assert len(rows) == 1 and rows[0]["read_at"] == clock()


async def test_an_empty_view_refreshes_live_when_its_first_ticket_arrives(client, auth):
    await sign_in(client, "aiko@example.com")
    empty = await page(client)
    assert 'name="shown" value="0"' in empty
    made = await ticket(client, auth, "first", "My refund has not arrived")
    refreshed = await client.get("/inbox/rows", params={"view": "mine", "shown": "0"})
    assert refreshed.status_code == 200 and listed(refreshed.text) == [made]


async def test_what_agents_write_is_searchable_and_acknowledgements_are_not(client, auth):
    made = await ticket(client, auth, "parcel", "Where is my parcel?")
    other = await ticket(client, auth, "quiet", "Hello there")
    reply = await client.post(f"/api/v1/tickets/{made}/replies", json={"text": "The courier Yamato has it."},
                              headers={"Authorization": "Bearer demo-aiko"})
    assert reply.status_code in (201, 202), reply.text
    await sign_in(client, "aiko@example.com")
    assert listed(await page(client, view="all", q="yamato")) == [made]
    # Every ticket got an acknowledgement ("We received your request …"): its words find nothing.
    assert listed(await page(client, view="all", q="received")) == []  # the ack text has "received"
    assert other
