"""Bad input on the agent API, the integration API and the web form gets the exact 4xx JSON problem
`{"error": code, "detail": text}` (router/core/errors.py), never a 500 or 503."""

import pytest

# JSON string escapes PostgreSQL text cannot hold: a NUL character, a lone surrogate.
BAD_TEXT = ["a\\u0000b", "a\\ud800b"]
HUGE_ID = "99999999999999999999"  # 20 digits: more than a bigint holds


async def create_ticket(client, auth) -> str:
    r = await client.post("/api/v1/messages", json={"channel": "api", "sender": {"email": "x@example.net"},
                                                    "text": "my invoice"}, headers=auth)
    assert r.status_code == 202, r.text
    return r.json()["ticket_ref"]


def assert_problem(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code, body
    assert set(body) == {"error", "detail"} and isinstance(body["detail"], str) and body["detail"], body


@pytest.mark.parametrize("action", ["notes", "replies"])
@pytest.mark.parametrize("text", BAD_TEXT)
async def test_ticket_text_with_bad_unicode(client, auth, action, text):
    ref = await create_ticket(client, auth)
    r = await client.post(f"/api/v1/tickets/{ref}/{action}", content=f'{{"text": "{text}"}}', headers=auth)
    assert_problem(r, 422, "invalid_input")


@pytest.mark.parametrize("text", BAD_TEXT)
async def test_message_text_with_bad_unicode(client, auth, text):
    body = f'{{"channel": "api", "sender": {{"email": "x@example.net"}}, "text": "{text}"}}'
    r = await client.post("/api/v1/messages", content=body, headers=auth)
    assert_problem(r, 422, "invalid_input")


@pytest.mark.parametrize("status", ["bogus", *BAD_TEXT])
async def test_patch_ticket_unknown_status(client, auth, status):
    ref = await create_ticket(client, auth)
    r = await client.patch(f"/api/v1/tickets/{ref}", content=f'{{"status": "{status}"}}', headers=auth)
    assert_problem(r, 422, "invalid_input")


@pytest.mark.parametrize("body", ["[]", '["text"]', '"text"', "42", "null"])
async def test_note_body_not_an_object(client, auth, body):
    ref = await create_ticket(client, auth)
    r = await client.post(f"/api/v1/tickets/{ref}/notes", content=body, headers=auth)
    assert_problem(r, 400, "malformed_body")


@pytest.mark.parametrize("body", ['{"text": ', b'{"text": "\xff"}'])
async def test_note_body_not_json(client, auth, body):
    ref = await create_ticket(client, auth)
    r = await client.post(f"/api/v1/tickets/{ref}/notes", content=body, headers=auth)
    assert_problem(r, 400, "malformed_body")


@pytest.mark.parametrize(("method", "url", "payload"), [
    ("GET", f"/api/v1/tickets?assignee={HUGE_ID}", None),
    ("POST", "/api/v1/customers/1/merge", {"other": int(HUGE_ID)}),
    ("POST", f"/api/v1/customers/{HUGE_ID}/merge", {"other": 1}),
    ("PATCH", f"/api/v1/agents/{HUGE_ID}", {"status": "away"}),
])
async def test_huge_id(client, auth, method, url, payload):
    r = await client.request(method, url, json=payload, headers=auth)
    assert_problem(r, 422, "invalid_input")


@pytest.mark.parametrize(("customer_id", "status", "code"), [
    (HUGE_ID, 422, "invalid_input"),
    (str(2**63), 422, "invalid_input"),  # one past the largest bigint
    (str(2**63 - 1), 404, "not_found"),  # a valid id that no customer has
    ("0", 422, "invalid_input"),
    ("abc", 404, "not_found"),  # not an id at all: no such route
])
async def test_customer_id_in_path(client, auth, customer_id, status, code):
    r = await client.get(f"/api/v1/customers/{customer_id}", headers=auth)
    assert_problem(r, status, code)


async def test_team_filter_nul(client, auth):
    r = await client.get("/api/v1/tickets?team=a%00b", headers=auth)
    assert_problem(r, 422, "invalid_input")


async def test_support_json_lang_list(client):
    r = await client.post("/support", json={"lang": [], "email": "a@example.net", "message": "hi"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] is True
