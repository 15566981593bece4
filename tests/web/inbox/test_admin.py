"""`/admin`: admins change agents, teams, canned responses and dead outbox items; leads see every page
read-only and are refused every change; plain agents get 403; a write without a session or without
the CSRF token changes nothing. Deactivation and password resets end sessions at once."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest

from agents import store as agent_store
from agents.store import AgentIdentity
from router.config import Config, Settings, demo_config_text, parse_config
from router.core.actions import admin as admin_actions
from router.core.store import outbox
from tests.conftest import API_TOKEN, ORIGIN, post_message, sign_in

ADMIN_TOML = """
[[agents]]
email = "ada@example.com"
name = "Ada Admin"
team = "support"
role = "admin"
capacity = 0
password = "demo"
"""
"""A human admin next to the demo agents (the demo config has none)."""

INTEGRATION = AgentIdentity(None, "integration", "admin")
NEW_PASSWORD = "correct horse battery"

Browser = Callable[..., Awaitable[tuple[httpx.AsyncClient, str]]]


def admin_config(settings: Settings) -> Config:
    return parse_config(demo_config_text() + ADMIN_TOML, settings, source="router.toml")


@pytest.fixture
def config(settings: Settings) -> Config:
    return admin_config(settings)


@pytest.fixture(autouse=True)
async def synced(pool: asyncpg.Pool, config: Config) -> None:
    """The test database holds the demo agents; add the admin."""
    async with pool.acquire() as conn:
        await agent_store.sync_from_config(conn, config.teams, config.agents)


@pytest.fixture
async def browser(app) -> AsyncIterator[Browser]:
    """`await browser("ada@example.com")` → a client signed in as that agent, and its CSRF token;
    `await browser()` → a client with no session."""
    async with contextlib.AsyncExitStack() as stack:
        async def open_one(email: str | None = None, password: str = "demo") -> tuple[httpx.AsyncClient, str]:
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router.test"))
            return client, (await sign_in(client, email, password) if email else "")
        yield open_one


async def post(client: httpx.AsyncClient, path: str, csrf: str | None, data: dict[str, str] | None = None
               ) -> httpx.Response:
    form = dict(data or {})
    if csrf is not None:
        form["csrf_token"] = csrf
    return await client.post(path, data=form, headers={"Origin": ORIGIN})


async def agent_id(pool: asyncpg.Pool, email: str) -> int:
    async with pool.acquire() as conn:
        found: int = await conn.fetchval("SELECT id FROM agents WHERE email = $1", email)
    return found


async def snapshot(pool: asyncpg.Pool) -> dict[str, str]:
    """A digest of every table: equal snapshots mean nothing was written."""
    async with pool.acquire() as conn:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {table: await conn.fetchval(
            f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM \"{table}\" r")
            for table in tables}


async def loads_are_true(pool: asyncpg.Pool) -> list[tuple[str, int, int]]:
    """Agents whose load counter differs from the open and pending tickets they hold."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT a.email, a.load, (SELECT count(*) FROM tickets t WHERE t.assignee_id = a.id"
            " AND t.status IN ('open', 'pending')) AS held FROM agents a")
    return [(r["email"], r["load"], r["held"]) for r in rows if r["load"] != r["held"]]


def notice(page: httpx.Response) -> str | None:
    found = re.search(r'<p class="notice" role="status">([^<]*)</p>', page.text)
    return html.unescape(found.group(1)) if found else None


def alert(page: httpx.Response) -> str | None:
    found = re.search(r'<p class="error" role="alert"[^>]*>([^<]*)</p>', page.text)
    return html.unescape(found.group(1)) if found else None


# -- who may see, who may change ----------------------------------------------------------------------

PAGES = ("/admin", "/admin/agents", "/admin/agents/new", "/admin/agents/{ben}", "/admin/teams", "/admin/canned",
         "/admin/canned/new", "/admin/canned/{canned}", "/admin/sla", "/admin/channels")


@pytest.fixture
async def ids(app, pool: asyncpg.Pool, client, auth) -> dict[str, int]:
    """Real objects for every admin action to act on: an agent, a UI team, a canned response, a dead item."""
    ctx = app.state.services.actions()
    team = await admin_actions.create_team(ctx, INTEGRATION, "Escalations")
    canned = await admin_actions.create_canned(ctx, INTEGRATION, "Thanks", "Thank you, {customer_name}.", "en")
    ref = await post_message(client, auth, "My invoice is wrong", email="tom@customer.example", name="Tom")
    async with pool.acquire() as conn, conn.transaction():
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref[2:]))
        now = app.state.services.clock()
        item = await outbox.enqueue(conn, key="dead-1", kind="reply", channel="email",
                                    payload={"to": "tom@customer.example", "text": "hi"}, now=now, ticket_id=ticket_id)
        await outbox.mark_failed(conn, item, ticket_id, "reply", "550 5.1.1 mailbox unavailable", dead=True,
                                 retry_at=now, now=now)
    return {"ben": await agent_id(pool, "ben@example.com"), "team": team, "canned": canned, "item": item}


def writes(ids: dict[str, int]) -> list[tuple[str, dict[str, str]]]:
    """Every admin change, with a valid form: a refusal is then about who sends it, not what."""
    profile = {"name": "Ben C.", "role": "agent", "team_id": "", "skills": "technical", "languages": "en",
               "capacity": "9", "chat_capacity": "2"}
    return [
        ("/admin/agents", {**profile, "email": "dan@example.com", "password": NEW_PASSWORD}),
        (f"/admin/agents/{ids['ben']}", profile),
        (f"/admin/agents/{ids['ben']}/hand-back", {}),
        (f"/admin/agents/{ids['ben']}/deactivate", {}),
        (f"/admin/agents/{ids['ben']}/reactivate", {}),
        (f"/admin/agents/{ids['ben']}/password", {"password": NEW_PASSWORD}),
        ("/admin/teams", {"name": "Night shift"}),
        (f"/admin/teams/{ids['team']}", {"name": "Escalations 2"}),
        ("/admin/canned", {"name": "Bye", "text": "Bye {customer_name}", "language": "en"}),
        (f"/admin/canned/{ids['canned']}", {"name": "Thanks!", "text": "Thanks.", "language": ""}),
        (f"/admin/canned/{ids['canned']}/delete", {}),
        (f"/admin/outbox/{ids['item']}/retry", {}),
    ]


def shape(path: str) -> str:
    """`/admin/agents/{agent_id:int}` and `/admin/agents/3` both as `/admin/agents/1`."""
    return re.sub(r"/\d+(?=/|$)", "/1", re.sub(r"\{\w+:int\}", "1", path))


async def test_every_admin_route_is_covered_here(app, ids):
    """A route added later must join the lists above, so the refusals below cover it."""
    served = {(method, shape(route.path)) for route in app.routes if getattr(route, "path", "").startswith("/admin")
              and not route.path.startswith("/admin/kb")  # leads edit it too: tests/kb/test_admin_kb.py
              for method in (route.methods or ()) if method != "HEAD"}
    listed = {("GET", shape(p.format(**ids))) for p in PAGES} | {("POST", shape(p)) for p, _ in writes(ids)}
    assert served == listed


async def test_admins_and_leads_see_every_page_agents_get_403_and_strangers_sign_in(browser, ids):
    admin, _ = await browser("ada@example.com")
    lead, _ = await browser("lena@example.com")
    agent, _ = await browser("aiko@example.com")
    stranger, _ = await browser()
    for template in PAGES:
        path = template.format(**ids)
        assert (await admin.get(path)).status_code == 200, path
        assert (await lead.get(path)).status_code == 200, path
        refused = await agent.get(path)
        assert refused.status_code == 403 and "text/html" in refused.headers["content-type"], path
        away = await stranger.get(path)
        assert away.status_code == 303 and away.headers["location"].startswith("/login?next="), path


async def test_leads_see_the_pages_without_live_controls(browser, ids):
    lead, _ = await browser("lena@example.com")
    admin, _ = await browser("ada@example.com")
    for path, control in ((f"/admin/agents/{ids['ben']}", "Deactivate agent"), ("/admin/agents", "New agent"),
                          ("/admin/teams", "Create team"), ("/admin/canned", "New canned response"),
                          ("/admin/channels", ">Retry<")):
        assert control in (await admin.get(path)).text, path
        as_lead = (await lead.get(path)).text
        assert control not in as_lead, path
        assert "Read-only: leads see these settings" in as_lead
    form = (await lead.get(f"/admin/agents/{ids['ben']}")).text
    assert "<fieldset disabled>" in form and 'value="Ben Carter"' in form


@pytest.mark.parametrize("who", ["lead", "agent", "no CSRF token", "wrong CSRF token", "other origin"])
async def test_every_change_is_refused_and_changes_nothing(browser, pool, ids, who):
    email = {"lead": "lena@example.com", "agent": "aiko@example.com"}.get(who, "ada@example.com")
    client, csrf = await browser(email)
    token = {"no CSRF token": None, "wrong CSRF token": csrf[::-1]}.get(who, csrf)
    before = await snapshot(pool)
    for path, data in writes(ids):
        form = {**data, **({"csrf_token": token} if token is not None else {})}
        origin = "http://evil.example" if who == "other origin" else ORIGIN
        response = await client.post(path, data=form, headers={"Origin": origin})
        assert response.status_code == 403, (who, path, response.status_code, response.text[:200])
        assert "text/html" in response.headers["content-type"]
    assert await snapshot(pool) == before, f"a refused change by {who} wrote to the database"


async def test_without_a_session_every_change_goes_to_sign_in_and_changes_nothing(browser, pool, ids):
    stranger, _ = await browser()
    before = await snapshot(pool)
    for path, data in writes(ids):
        response = await post(stranger, path, None, data)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    assert await snapshot(pool) == before


# -- agents -----------------------------------------------------------------------------------------------

async def test_an_admin_creates_an_agent_who_can_then_sign_in(browser, pool):
    admin, csrf = await browser("ada@example.com")
    async with pool.acquire() as conn:
        support = await conn.fetchval("SELECT id FROM teams WHERE name = 'support'")
    response = await post(admin, "/admin/agents", csrf, {
        "email": " Dan@Example.com ", "name": "Dan Ito", "password": NEW_PASSWORD, "role": "agent",
        "team_id": str(support), "skills": "billing, shipping", "languages": "ja、en", "capacity": "4",
        "chat_capacity": "2"})
    assert response.status_code == 303, response.text
    page = await admin.get(response.headers["location"])
    assert notice(page) == "The agent was created."
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM agents WHERE email = 'dan@example.com'")
    assert (row["name"], row["team_id"], row["role"], list(row["skills"]), list(row["languages"]), row["capacity"],
            row["chat_capacity"], row["status"], row["managed_by"], row["active"]) == (
        "Dan Ito", support, "agent", ["billing", "shipping"], ["ja", "en"], 4, 2, "offline", "admin", True)
    assert row["password_hash"].startswith("$argon2")
    dan, _ = await browser("dan@example.com", NEW_PASSWORD)
    assert (await dan.get("/preferences")).status_code == 200
    assert "Dan Ito" in (await admin.get("/admin/agents")).text


@pytest.mark.parametrize(("change", "status", "message"), [
    ({"email": "ben@example.com"}, 409, "there is already an agent ben@example.com"),
    ({"email": "not an address"}, 422, "is not an email address"),
    ({"password": "short"}, 422, "at least 10 characters"),
    ({"capacity": "many"}, 422, "Capacity must be a whole number"),
    ({"capacity": "1001"}, 422, "`capacity` must be a whole number from 0 to 1000"),
    ({"role": "owner"}, 422, "`role` must be one of"),
    ({"languages": "日本語"}, 422, "is not a language code"),
    ({"team_id": "999999"}, 422, "no team 999999"),
    ({"name": "   "}, 422, "`name` is required"),
])
async def test_a_refused_new_agent_comes_back_with_the_reason_and_what_was_typed(browser, pool, change, status,
                                                                                   message):
    admin, csrf = await browser("ada@example.com")
    form = {"email": "dan@example.com", "name": "Dan Ito", "password": NEW_PASSWORD, "role": "agent",
            "team_id": "", "skills": "billing", "languages": "ja", "capacity": "4", "chat_capacity": "2", **change}
    before = await snapshot(pool)
    response = await post(admin, "/admin/agents", csrf, form)
    assert response.status_code == status
    assert message in (alert(response) or ""), response.text[:3000]
    assert f'value="{form["name"]}"' in response.text and 'name="password"' in response.text
    assert await snapshot(pool) == before


async def test_an_admin_edits_an_agent_and_the_history_says_what_changed(browser, pool):
    admin, csrf = await browser("ada@example.com")
    ben = await agent_id(pool, "ben@example.com")
    response = await post(admin, f"/admin/agents/{ben}", csrf, {
        "name": "Ben Carter", "role": "lead", "team_id": "", "skills": "technical, refunds",
        "languages": "en, ja", "capacity": "9", "chat_capacity": "1"})
    assert response.status_code == 303
    assert notice(await admin.get(response.headers["location"])).startswith("The agent was saved.")
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM agents WHERE id = $1", ben)
        event = await conn.fetchval("SELECT payload FROM events WHERE kind = 'agent.updated' ORDER BY id DESC LIMIT 1")
    assert (row["role"], row["team_id"], list(row["skills"]), list(row["languages"]), row["capacity"],
            row["chat_capacity"], row["managed_by"]) == ("lead", None, ["technical", "refunds"], ["en", "ja"], 9, 1,
                                                         "admin")
    assert event == {"agent_id": ben, "by": "ada@example.com", "role": "lead", "team_id": None,
                     "skills": ["technical", "refunds"], "languages": ["en", "ja"], "capacity": 9, "chat_capacity": 1}


async def test_an_admin_cannot_change_their_own_role_or_deactivate_themselves(browser, pool):
    admin, csrf = await browser("ada@example.com")
    ada = await agent_id(pool, "ada@example.com")
    before = await snapshot(pool)
    demoted = await post(admin, f"/admin/agents/{ada}", csrf, {
        "name": "Ada", "role": "agent", "team_id": "", "skills": "", "languages": "", "capacity": "0",
        "chat_capacity": "0"})
    assert demoted.status_code == 409 and "your own role" in alert(demoted)
    gone = await post(admin, f"/admin/agents/{ada}/deactivate", csrf)
    assert gone.status_code == 409 and "cannot deactivate yourself" in gone.text
    assert await snapshot(pool) == before


async def test_deactivation_ends_sessions_and_token_and_returns_open_tickets_to_the_queue(
        browser, pool, client, auth):
    refs = [await post_message(client, auth, text, email=email, name=name) for text, email, name in (
        ("返金をお願いします。", "taro@customer.example", "山田 太郎"),
        ("請求書が届きません。", "hana@customer.example", "鈴木 花子"))]
    aiko = await agent_id(pool, "aiko@example.com")
    async with pool.acquire() as conn:
        assert [await conn.fetchval("SELECT assignee_id FROM tickets WHERE number = $1", int(r[2:])) for r in refs] \
            == [aiko, aiko]
        await conn.execute("UPDATE tickets SET status = 'pending' WHERE number = $1", int(refs[1][2:]))
    aiko_browser, _ = await browser("aiko@example.com")
    token = {"Authorization": "Bearer demo-aiko"}
    assert (await client.get("/api/v1/tickets", headers=token)).status_code == 200
    admin, csrf = await browser("ada@example.com")

    response = await post(admin, f"/admin/agents/{aiko}/deactivate", csrf)
    assert response.status_code == 303
    assert notice(await admin.get(response.headers["location"])).startswith("The agent was deactivated")

    assert (await aiko_browser.get("/preferences")).status_code == 303, "her session still works"
    assert (await client.get("/api/v1/tickets", headers=token)).status_code == 401, "her token still works"
    again = await client.post("/login", data={"email": "aiko@example.com", "password": "demo"},
                              headers={"Origin": ORIGIN})
    assert again.status_code == 401, "she can still sign in"
    async with pool.acquire() as conn:
        agent = await conn.fetchrow("SELECT active, status, load FROM agents WHERE id = $1", aiko)
        sessions = await conn.fetchval("SELECT count(*) FROM agent_sessions WHERE agent_id = $1", aiko)
        for ref in refs:
            ticket = await conn.fetchrow("SELECT id, assignee_id FROM tickets WHERE number = $1", int(ref[2:]))
            log = await conn.fetchrow("SELECT action, reason, actor_id FROM routing_log WHERE ticket_id = $1"
                                      " ORDER BY id DESC LIMIT 1", ticket["id"])
            assert ticket["assignee_id"] is None, ref
            assert log["action"] == "unassigned" and "Aiko Tanaka was deactivated by ada@example.com" in log["reason"]
            assert log["actor_id"] == await agent_id(pool, "ada@example.com")
    assert (agent["active"], agent["status"], agent["load"], sessions) == (False, "offline", 0, 0)
    assert await loads_are_true(pool) == []
    page = (await admin.get(f"/admin/agents/{aiko}")).text
    assert "This agent is deactivated" in page and "Reactivate agent" in page


async def test_a_released_ticket_goes_to_a_colleague_who_fits(browser, pool, client, auth):
    ref = await post_message(client, auth, "I was charged twice, please refund", email="amy@customer.example")
    async with pool.acquire() as conn:
        first = await conn.fetchval("SELECT assignee_id FROM tickets WHERE number = $1", int(ref[2:]))
    admin, csrf = await browser("ada@example.com")
    assert (await post(admin, f"/admin/agents/{first}/deactivate", csrf)).status_code == 303
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT assignee_id FROM tickets WHERE number = $1", int(ref[2:]))
    assert now not in (None, first), "an English billing ticket fits both aiko and ben"
    assert await loads_are_true(pool) == []


async def test_a_reactivated_agent_signs_in_again_and_stays_offline(browser, pool, client):
    admin, csrf = await browser("ada@example.com")
    chie = await agent_id(pool, "chie@example.com")
    assert (await post(admin, f"/admin/agents/{chie}/deactivate", csrf)).status_code == 303
    assert (await post(admin, f"/admin/agents/{chie}/deactivate", csrf)).status_code == 409
    assert (await post(admin, f"/admin/agents/{chie}/reactivate", csrf)).status_code == 303
    assert (await client.get("/api/v1/tickets", headers={"Authorization": "Bearer demo-chie"})).status_code == 200
    await browser("chie@example.com")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM agents WHERE id = $1", chie) == "offline"


async def test_a_password_reset_ends_sessions_and_the_new_password_works(app, browser, pool, client):
    ben_browser, _ = await browser("ben@example.com")
    admin, csrf = await browser("ada@example.com")
    ben = await agent_id(pool, "ben@example.com")

    short = await post(admin, f"/admin/agents/{ben}/password", csrf, {"password": "short"})
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert (await ben_browser.get("/preferences")).status_code == 200, "a refused reset ended the session"

    response = await post(admin, f"/admin/agents/{ben}/password", csrf, {"password": NEW_PASSWORD})
    assert response.status_code == 303
    assert notice(await admin.get(response.headers["location"])) == \
        "The password was changed and the agent's sessions ended."
    assert (await ben_browser.get("/preferences")).status_code == 303, "the old session still works"
    old = await client.post("/login", data={"email": "ben@example.com", "password": "demo"},
                            headers={"Origin": ORIGIN})
    assert old.status_code == 401
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT password_hash, password_changed_at, (SELECT count(*) FROM agent_sessions s"
                                  " WHERE s.agent_id = a.id) AS sessions FROM agents a WHERE id = $1", ben)
    assert row["password_hash"].startswith("$argon2") and NEW_PASSWORD not in row["password_hash"]
    assert (row["password_changed_at"], row["sessions"]) == (app.state.services.clock(), 0)
    await browser("ben@example.com", NEW_PASSWORD)


async def test_the_actions_check_the_permission_themselves(app, pool, ids):
    """The JSON API will call these without the pages' checks: each refuses a lead on its own, and the
    integration token counts as an admin."""
    from router.core.errors import Forbidden

    ctx = app.state.services.actions()
    lead = AgentIdentity(await agent_id(pool, "lena@example.com"), "lena@example.com", "lead")
    ben = ids["ben"]
    profile = agent_store.Profile(name="X", team_id=None, role="agent", skills=(), languages=(), capacity=1,
                                  chat_capacity=1)
    calls = [
        lambda who: admin_actions.create_agent(ctx, who, "dan@example.com", profile, NEW_PASSWORD),
        lambda who: admin_actions.edit_agent(ctx, who, ben, profile),
        lambda who: admin_actions.hand_back_to_config(ctx, who, ben),
        lambda who: admin_actions.reset_password(ctx, who, ben, NEW_PASSWORD),
        lambda who: admin_actions.reactivate_agent(ctx, who, ben),
        lambda who: admin_actions.deactivate_agent(ctx, who, ben),
        lambda who: admin_actions.create_team(ctx, who, "Nights"),
        lambda who: admin_actions.rename_team(ctx, who, ids["team"], "Days"),
        lambda who: admin_actions.create_canned(ctx, who, "Bye", "Bye", None),
        lambda who: admin_actions.update_canned(ctx, who, ids["canned"], "Bye", "Bye", None),
        lambda who: admin_actions.delete_canned(ctx, who, ids["canned"]),
        lambda who: admin_actions.retry_outbox_item(ctx, who, ids["item"]),
    ]
    before = await snapshot(pool)
    for call in calls:
        with pytest.raises(Forbidden):
            await call(lead)
    assert await snapshot(pool) == before
    await admin_actions.reset_password(ctx, INTEGRATION, ben, NEW_PASSWORD)
    await admin_actions.retry_outbox_item(ctx, INTEGRATION, ids["item"])


# -- teams ------------------------------------------------------------------------------------------------

async def test_teams_are_created_and_renamed_but_config_teams_are_renamed_in_the_config(browser, pool):
    admin, csrf = await browser("ada@example.com")
    created = await post(admin, "/admin/teams", csrf, {"name": " Night shift "})
    assert created.status_code == 303
    assert notice(await admin.get(created.headers["location"])) == "The team was created."
    async with pool.acquire() as conn:
        night = await conn.fetchval("SELECT id FROM teams WHERE name = 'Night shift'")
        support = await conn.fetchval("SELECT id FROM teams WHERE name = 'support'")
    assert night is not None

    duplicate = await post(admin, "/admin/teams", csrf, {"name": "NIGHT SHIFT"})
    assert duplicate.status_code == 409 and "already a team named 'NIGHT SHIFT'" in alert(duplicate)
    renamed = await post(admin, f"/admin/teams/{night}", csrf, {"name": "Nights"})
    assert renamed.status_code == 303
    config_team = await post(admin, f"/admin/teams/{support}", csrf, {"name": "Care"})
    assert config_team.status_code == 409 and "named in router.toml; rename it there" in alert(config_team)
    clash = await post(admin, f"/admin/teams/{night}", csrf, {"name": "Support"})
    assert clash.status_code == 409
    async with pool.acquire() as conn:
        assert [r["name"] for r in await conn.fetch("SELECT name FROM teams ORDER BY id")] == ["support", "Nights"]
    page = (await admin.get("/admin/teams")).text
    assert "Rename it in router.toml" in page and 'id="rename-' + str(night) + '"' in page


# -- SLA and calendars ------------------------------------------------------------------------------------

async def test_the_sla_policies_and_calendars_in_force_are_shown(browser):
    lead, _ = await browser("lena@example.com")
    page = (await lead.get("/admin/sla")).text
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(\w+)</th>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>"
                      r"\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>", page)
    assert rows == [("urgent", "Priority: urgent", "1h", "—", "8h", "75 %"),
                    ("vip", "Customer tier: vip", "30m", "—", "—", "75 %"),
                    ("normal", "Every ticket", "4h", "8h", "3d", "75 %")]
    assert "<th scope=\"row\">Monday</th><td>09:00-18:00</td>" in page
    assert "<th scope=\"row\">Sunday</th><td>Closed all day</td>" in page
    assert "Public holidays of JP are closed" in page and "Asia/Tokyo" in page
    assert "Always open (24 hours, 7 days)" in page


async def test_the_admin_pages_speak_japanese(browser):
    admin, _ = await browser("ada@example.com")
    page = (await admin.get("/admin/sla", headers={"Accept-Language": "ja"})).text
    assert "<h1>SLA ポリシーと営業カレンダー</h1>" in page and "月曜日" in page


# -- channel status and dead outbox items -----------------------------------------------------------------

async def test_channel_status_shows_setup_last_message_backlog_and_dead_items(app, browser, pool, client, auth):
    ref = await post_message(client, auth, "Where is my parcel?", sender_id="tom-1", name="Tom")  # no email ack
    now = app.state.services.clock()
    async with pool.acquire() as conn, conn.transaction():
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref[2:]))
        for key in ("waiting-1", "waiting-2"):
            await outbox.enqueue(conn, key=key, kind="reply", channel="email", payload={"to": "a@b.example"},
                                 now=now, ticket_id=ticket_id)
        refused = await outbox.enqueue(conn, key="refused", kind="reply", channel="email",
                                       payload={"to": "gone@customer.example"}, now=now, ticket_id=ticket_id)
        await outbox.mark_failed(conn, refused, ticket_id, "reply", "550 5.1.1 <gone@customer.example> unknown",
                                 dead=True, retry_at=now, now=now)
        cut = await outbox.enqueue(conn, key="cut", kind="ack", channel="email", payload={"to": "tom@customer.example"},
                                   now=now, ticket_id=ticket_id)
        await outbox.mark_failed(conn, cut, ticket_id, "ack", outbox.INTERRUPTED, dead=True, retry_at=now, now=now)
    lead, _ = await browser("lena@example.com")
    page = (await lead.get("/admin/channels")).text
    email_row = re.search(r'<th scope="row">Email</th>(.*?)</tr>', page, re.S).group(1)
    assert "Not configured" in email_row and "Set ROUTER_SMTP_RELAY" in email_row, "no relay in the test settings"
    cells = re.findall(r'<td class="number">(?:<strong class="problem">)?(\d+)', email_row)
    assert cells == ["2", "2"], "waiting and dead counts"
    api_row = re.search(r'<th scope="row">Integration API</th>(.*?)</tr>', page, re.S).group(1)
    assert "Configured" in api_row and "Not configured" not in api_row
    assert "2026-11-25 10:00" in api_row, "the last message received, in Asia/Tokyo"
    assert "Never" in re.search(r'<th scope="row">Telegram</th>(.*?)</tr>', page, re.S).group(1)
    assert "550 5.1.1 &lt;gone@customer.example&gt; unknown" in page
    assert "Interrupted mid-send: it may have arrived." in page
    assert "retrying it may deliver it twice" in page
    assert f'href="/inbox/{ref}"' in page
    assert API_TOKEN not in page, "settings' values are never shown"


async def test_retry_puts_a_dead_item_back_in_the_queue_once(app, browser, pool, client, auth):
    ref = await post_message(client, auth, "Hello", email="tom@customer.example")
    now = app.state.services.clock()
    async with pool.acquire() as conn, conn.transaction():
        ticket_id = await conn.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref[2:]))
        item = await outbox.enqueue(conn, key="k", kind="reply", channel="email", payload={"to": "t@c.example"},
                                    now=now, ticket_id=ticket_id)
        await conn.execute("UPDATE outbox SET attempts = 8 WHERE id = $1", item)
        await outbox.mark_failed(conn, item, ticket_id, "reply", "timeout", dead=True, retry_at=now, now=now)
    admin, csrf = await browser("ada@example.com")
    response = await post(admin, f"/admin/outbox/{item}/retry", csrf)
    assert response.status_code == 303
    after = await admin.get(response.headers["location"])
    assert notice(after) == "The item is queued again and will be sent shortly."
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempts, next_attempt_at FROM outbox WHERE id = $1", item)
        event = await conn.fetchrow("SELECT ticket_id, payload FROM events WHERE kind = 'outbox.retried'")
        leased = await outbox.lease(conn, ["email"], now)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, now)
    assert (event["ticket_id"], event["payload"]) == (ticket_id, {"id": item, "kind": "reply", "by": "ada@example.com"})
    assert item in [leased_item["id"] for leased_item in leased], "the dispatcher picks it up again"
    again = await post(admin, f"/admin/outbox/{item}/retry", csrf)
    assert again.status_code == 409 and "is not dead" in again.text
