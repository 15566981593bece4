"""Every HTTP answer carries the security headers — JSON, the HTML form, problems, 404s and 500s —
and every 401 says how to authenticate, every 429 and 503 when to come back (`router.web.app`)."""

from __future__ import annotations

import httpx
import pytest

from router.web.app import CONTENT_SECURITY_POLICY

EXPECTED = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], (response.request.url, name, response.headers)


def test_the_policy_allows_no_inline_script_nor_foreign_frames() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'" and directives["base-uri"] == "'none'"


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/healthz", None, 200),
    ("GET", "/support", None, 200),
    ("POST", "/support", b'{"email": "x@example.net"}', 422),
    ("GET", "/no/such/page", None, 404),
    ("DELETE", "/healthz", None, 405),
    ("POST", "/api/v1/tickets/T-1/notes", b'{"text": ', 401),
])
async def test_every_response_carries_the_security_headers(client, method, path, body, status) -> None:
    headers = {"content-type": "application/json"} if body is not None else {}
    response = await client.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert_security_headers(response)


async def test_a_500_carries_the_security_headers(app) -> None:
    class Broken:
        async def ingest(self, pool, message):
            raise RuntimeError("a bug")

    app.state.services.pipeline = Broken()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://router.test") as client:
        response = await client.post("/support", json={"email": "x@example.net", "message": "hello"})
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert_security_headers(response)


@pytest.mark.parametrize(("method", "path", "token"), [
    ("GET", "/api/v1/tickets", None),
    ("GET", "/api/v1/tickets", "not-a-token"),
    ("POST", "/api/v1/messages", None),
    ("POST", "/api/v1/messages", "not-a-token"),
])
async def test_every_401_asks_for_a_bearer_token(client, method, path, token) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.request(method, path, json={}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert_security_headers(response)


async def test_every_429_says_when_to_retry(client) -> None:
    statuses = []
    for _ in range(7):
        response = await client.post("/support", json={"email": "x@example.net"})
        statuses.append(response.status_code)
    assert statuses[-1] == 429, statuses
    assert response.headers["retry-after"].isdigit() and int(response.headers["retry-after"]) > 0
    assert_security_headers(response)


async def test_a_503_still_says_when_to_retry(app, client) -> None:
    app.state.services.pool = None  # as before the lifespan connected
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert_security_headers(response)
