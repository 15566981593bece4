"""Every agent page and agent API endpoint needs a session (or a Bearer token), every cookie write
needs the CSRF token, and admin actions need an admin. The routes come from the app's own route table,
so a page added later is covered without touching this file."""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest
from starlette.routing import Route

from tests.conftest import ORIGIN, post_message, sign_in

PROTECTED_PREFIXES = ("/inbox", "/admin", "/reports", "/preferences", "/logout", "/api/v1/")
PUBLIC = frozenset({"/api/v1/messages"})
"""The integration intake has its own token (tests/test_intake.py); everything else under /api/v1 is
the agents' API."""
EXPECTED_PAGES = ("/inbox", "/inbox/{ref}", "/admin")
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
PROBE_FORM = {"text": "CSRF probe", "body": "CSRF probe", "note": "CSRF probe", "status": "solved",
              "priority": "urgent", "agent": "ben@example.com", "assignee": "ben@example.com",
              "reason": "CSRF probe", "channel": "api", "email": "probe@example.com", "name": "Probe"}
"""Fields a write form might read: with them, a write that slipped past the CSRF check would change
something the database snapshot sees."""
PROBE_JSON = {"text": "CSRF probe", "status": "solved", "priority": "urgent", "agent": "ben@example.com",
              "other": 1, "capacity": 1}
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def protected_routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every agent page and agent API endpoint in the app's route table."""
    found = []
    for route in app.routes:
        if not isinstance(route, Route) or route.path in PUBLIC or not route.path.startswith(PROTECTED_PREFIXES):
            continue
        found.extend((method, route.path) for method in sorted(route.methods or ()) if method != "HEAD")
    return found


def fill(template: str, samples: dict[str, str]) -> str:
    return _PARAM.sub(lambda m: samples.get(m.group(1), "1"), template)


async def request(client: httpx.AsyncClient, method: str, path: str, **headers: str) -> httpx.Response:
    """`method` on `path` with a probe body shaped like what the path takes (JSON for the API)."""
    headers = {"Origin": ORIGIN, **headers}
    if method in SAFE:
        return await client.request(method, path, headers=headers)
    if path.startswith("/api/"):
        return await client.request(method, path, json=PROBE_JSON, headers=headers)
    return await client.request(method, path, data=PROBE_FORM, headers=headers)


async def snapshot(pool: asyncpg.Pool) -> dict[str, str]:
    """A digest of every table's rows: equal snapshots mean nothing was written."""
    async with pool.acquire() as conn:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        return {t["tablename"]: await conn.fetchval(
            f'SELECT md5(coalesce(string_agg(r::text, \'|\' ORDER BY r::text), \'\')) FROM "{t["tablename"]}" r')
            for t in tables}


@pytest.fixture
async def samples(client, auth) -> dict[str, str]:
    """Real values for path parameters: an existing ticket and its customer, so a refusal is about
    the session, not a missing object."""
    ref = await post_message(client, auth, "返金をお願いします。注文 1182 です。", email="taro@customer.example",
                             name="山田 太郎", subject="返金について")
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    return {"ref": ref, "id": str(detail["customer"]["id"])}


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return [table for table in after if before.get(table) != after[table]]


async def test_the_inbox_pages_are_in_the_route_table(app):
    paths = {path for _, path in protected_routes(app)}
    missing = [page for page in EXPECTED_PAGES if page not in paths]
    assert not missing, f"pages not served yet: {missing}"


async def test_without_a_session_every_agent_page_and_endpoint_refuses(app, client, samples, pool):
    routes = protected_routes(app)
    assert routes, "no agent routes found in the route table"
    before = await snapshot(pool)
    wrong = []
    for method, template in routes:
        path = fill(template, samples)
        response = await request(client, method, path)
        to_login = response.status_code in (302, 303, 307) and response.headers["location"].startswith("/login")
        if not (response.status_code == 401 or to_login):
            wrong.append(f"{method} {path} → {response.status_code} {response.text[:120]!r}")
        if path.startswith("/api/") and response.status_code != 401:
            wrong.append(f"{method} {path} → {response.status_code}: the API answers 401, never a redirect")
    assert not wrong, "reachable without a session:\n" + "\n".join(wrong)
    assert not changed(before, await snapshot(pool))


async def test_a_cookie_write_without_the_csrf_token_is_refused_and_changes_nothing(app, client, samples, pool):
    csrf = await sign_in(client, "aiko@example.com")
    writes = [(m, t) for m, t in protected_routes(app) if m not in SAFE]
    assert writes
    before = await snapshot(pool)
    wrong = []
    for method, template in writes:
        path = fill(template, samples)
        for label, headers in (("no token", {}), ("a wrong token", {"X-CSRF-Token": csrf[::-1]})):
            response = await request(client, method, path, **headers)
            if response.status_code != 403:
                wrong.append(f"{method} {path} with {label} → {response.status_code} {response.text[:120]!r}")
    assert not wrong, "cookie writes accepted without the CSRF token:\n" + "\n".join(wrong)
    assert not changed(before, await snapshot(pool)), "a refused write changed the database"
    assert (await client.get("/preferences")).status_code == 200, "a refused /logout ended the session"

    # The same write with the token goes through: the refusals above were the token's doing.
    accepted = await client.patch(f"/api/v1/tickets/{samples['ref']}", json={"status": "pending"},
                                  headers={"Origin": ORIGIN, "X-CSRF-Token": csrf})
    assert accepted.status_code == 200, accepted.text
    assert "tickets" in changed(before, await snapshot(pool))


LEADS_EDIT = "/admin/kb"
"""The one admin section leads edit too (issue 13: leads and admins write the knowledge base)."""


async def test_agents_and_leads_get_403_on_admin_actions(app, client, auth, samples, pool):
    other = await post_message(client, auth, "Where is my parcel?", email="tom@customer.example", name="Tom")
    other_customer = (await client.get(f"/api/v1/tickets/{other}", headers=auth)).json()["customer"]["id"]
    admin_routes = [(m, t) for m, t in protected_routes(app) if t.startswith("/admin")]
    before = await snapshot(pool)
    wrong = []
    for email, refused in (("aiko@example.com", SAFE | {"POST", "PUT", "PATCH", "DELETE"}),
                           ("lena@example.com", {"POST", "PUT", "PATCH", "DELETE"})):
        client.cookies.clear()
        csrf = await sign_in(client, email)
        for method, template in admin_routes:
            if method not in refused or (email == "lena@example.com" and template.startswith(LEADS_EDIT)):
                continue
            path = fill(template, samples)
            response = await request(client, method, path, **{"X-CSRF-Token": csrf})
            if response.status_code != 403:
                wrong.append(f"{email}: {method} {path} → {response.status_code}")
    assert not wrong, "admin actions allowed to non-admins:\n" + "\n".join(wrong)

    # The API's admin actions: an agent may not change a colleague's capacity nor merge customers.
    client.cookies.clear()
    csrf = await sign_in(client, "aiko@example.com")
    headers = {"Origin": ORIGIN, "X-CSRF-Token": csrf}
    capacity = await client.patch("/api/v1/agents/ben@example.com", json={"capacity": 50}, headers=headers)
    merge = await client.post(f"/api/v1/customers/{samples['id']}/merge", json={"other": other_customer},
                              headers=headers)
    assert (capacity.status_code, merge.status_code) == (403, 403), (capacity.text, merge.text)
    assert changed(before, await snapshot(pool)) in ([], ["agent_sessions"]), "a refused admin action wrote"
