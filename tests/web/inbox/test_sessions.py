"""Inbox sign-in: server-side sessions, throttling without account enumeration, CSRF on every
cookie-authenticated write (pages and /api/v1), and sessions ending at once on deactivation."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import ORIGIN, post_message, sign_in


async def test_wrong_password_and_unknown_account_read_the_same(client):
    wrong = await client.post("/login", data={"email": "aiko@example.com", "password": "nope"},
                              headers={"Origin": ORIGIN})
    unknown = await client.post("/login", data={"email": "nobody@example.com", "password": "nope"},
                                headers={"Origin": ORIGIN})
    assert wrong.status_code == unknown.status_code == 401
    assert "The email address or the password is not right." in wrong.text
    assert wrong.text.replace("aiko@", "nobody@") == unknown.text
    assert "router_session" not in client.cookies


async def test_sign_in_sets_a_server_side_session_cookie(client, pool):
    response = await client.post("/login", data={"email": "aiko@example.com", "password": "demo",
                                                  "next": "/preferences"}, headers={"Origin": ORIGIN})
    assert response.status_code == 303 and response.headers["location"] == "/preferences"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    session_id = client.cookies["router_session"]
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT id_hash FROM agent_sessions")
    assert stored and stored != session_id  # only a digest is kept
    page = await client.get("/preferences")
    assert page.status_code == 200 and "Aiko Tanaka" in page.text


async def test_cookie_is_secure_when_the_public_url_is_https(config, pool, clock):
    from dataclasses import replace

    import httpx

    from router.app import create_app

    app = create_app(replace(config, settings=replace(config.settings, public_url="https://support.example.com")),
                     pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://support.example.com") as c:
        response = await c.post("/login", data={"email": "aiko@example.com", "password": "demo"},
                                headers={"Origin": "https://support.example.com"})
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_pages_redirect_to_login_without_a_session(client):
    response = await client.get("/preferences")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fpreferences"


async def test_open_redirect_after_sign_in_is_refused(client):
    response = await client.post("/login", data={"email": "aiko@example.com", "password": "demo",
                                                  "next": "//evil.example/x"}, headers={"Origin": ORIGIN})
    assert response.headers["location"] == "/inbox"


async def test_cross_origin_sign_in_is_refused(client):
    response = await client.post("/login", data={"email": "aiko@example.com", "password": "demo"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "router_session" not in client.cookies


async def test_throttled_per_account_with_the_same_message_for_unknown_accounts(client, clock):
    for email in ("aiko@example.com", "ghost@example.com"):
        for _ in range(5):
            response = await client.post("/login", data={"email": email, "password": "bad"},
                                         headers={"Origin": ORIGIN})
            assert response.status_code == 401
        locked = await client.post("/login", data={"email": email, "password": "demo"}, headers={"Origin": ORIGIN})
        assert locked.status_code == 429, email
        assert "Too many sign-in attempts" in locked.text
        assert locked.headers["retry-after"]
    clock.advance(timedelta(minutes=16))
    response = await client.post("/login", data={"email": "aiko@example.com", "password": "demo"},
                                 headers={"Origin": ORIGIN})
    assert response.status_code == 303


async def test_throttled_per_address_across_accounts(client):
    for index in range(20):
        await client.post("/login", data={"email": f"guess{index}@example.com", "password": "bad"},
                          headers={"Origin": ORIGIN})
    response = await client.post("/login", data={"email": "aiko@example.com", "password": "demo"},
                                 headers={"Origin": ORIGIN})
    assert response.status_code == 429


async def test_api_write_with_the_cookie_needs_the_csrf_token_and_origin(client, auth, pool):
    ref = await post_message(client, auth, "my invoice is wrong", email="kim@example.net")
    token = await sign_in(client, "lena@example.com")
    listed = await client.get("/api/v1/tickets")  # reads need only the session
    assert listed.status_code == 200
    body = {"text": "a note"}
    missing = await client.post(f"/api/v1/tickets/{ref}/notes", json=body, headers={"Origin": ORIGIN})
    wrong_origin = await client.post(f"/api/v1/tickets/{ref}/notes", json=body,
                                     headers={"Origin": "https://evil.example", "X-CSRF-Token": token})
    no_origin = await client.post(f"/api/v1/tickets/{ref}/notes", json=body, headers={"X-CSRF-Token": token})
    assert missing.status_code == wrong_origin.status_code == no_origin.status_code == 403
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM messages WHERE direction = 'note'") == 0
    ok = await client.post(f"/api/v1/tickets/{ref}/notes", json=body, headers={"Origin": ORIGIN, "X-CSRF-Token": token})
    assert ok.status_code == 201, ok.text


async def test_bearer_calls_need_no_csrf_token(client, auth):
    ref = await post_message(client, auth, "my invoice is wrong", email="kim@example.net")
    response = await client.post(f"/api/v1/tickets/{ref}/notes", json={"text": "n"},
                                 headers={"Authorization": "Bearer demo-lena"})
    assert response.status_code == 201


@pytest.mark.parametrize("change", ["deactivate", "password"])
async def test_deactivation_or_a_new_password_ends_sessions_at_once(client, pool, clock, change):
    await sign_in(client, "aiko@example.com")
    assert (await client.get("/preferences")).status_code == 200
    clock.advance(timedelta(seconds=1))
    async with pool.acquire() as conn:
        if change == "deactivate":
            await conn.execute("UPDATE agents SET active = false WHERE email = 'aiko@example.com'")
        else:
            await conn.execute("UPDATE agents SET password_changed_at = $1 WHERE email = 'aiko@example.com'",
                               clock())
    assert (await client.get("/preferences")).status_code == 303
    assert (await client.get("/api/v1/tickets")).status_code == 401


async def test_logout_ends_the_session(client, pool):
    token = await sign_in(client, "aiko@example.com")
    refused = await client.post("/logout", headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    response = await client.post("/logout", data={"csrf_token": token}, headers={"Origin": ORIGIN})
    assert response.status_code == 303
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agent_sessions") == 0


async def test_preferences_switch_the_language(client):
    token = await sign_in(client, "aiko@example.com")
    response = await client.post("/preferences", data={"csrf_token": token, "ui_language": "ja", "timezone": ""},
                                 headers={"Origin": ORIGIN})
    assert response.status_code == 303
    page = await client.get("/preferences")
    assert "表示言語とタイムゾーン" in page.text and 'lang="ja"' in page.text


async def test_accept_language_chooses_japanese_on_the_login_page(client):
    page = await client.get("/login", headers={"Accept-Language": "ja,en;q=0.8"})
    assert "サインイン" in page.text


async def test_page_forms_need_a_bounded_declared_length(client):
    token = await sign_in(client, "aiko@example.com")

    async def chunked():
        yield f"csrf_token={token}&ui_language=ja&".encode()
        yield b"x=" + b"a" * 1000

    response = await client.post("/preferences", content=chunked(),
                                 headers={"Origin": ORIGIN, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 411
    large = await client.post("/preferences", data={"csrf_token": token, "x": "a" * 1_100_000},
                              headers={"Origin": ORIGIN})
    assert large.status_code == 413
    page = await client.get("/preferences")
    assert 'lang="en"' in page.text  # nothing was applied


async def test_expired_sessions_end_and_are_purged_at_the_next_sign_in(client, pool, clock):
    await sign_in(client, "aiko@example.com")
    clock.advance(timedelta(hours=13))  # idle longer than the session lifetime
    assert (await client.get("/preferences")).status_code == 303
    client.cookies.clear()
    await sign_in(client, "ben@example.com")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agent_sessions") == 1


async def test_activity_slides_the_session_forward(client, clock):
    await sign_in(client, "aiko@example.com")
    for _ in range(3):
        clock.advance(timedelta(hours=8))
        assert (await client.get("/preferences")).status_code == 200
