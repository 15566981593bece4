"""Bad input on the agent API and the web form gets a 4xx JSON problem, never a 500 or 503."""

import pytest


async def _ticket(client, auth):
    r = await client.post("/api/v1/messages", json={"channel": "api", "sender": {"email": "x@example.net"},
                                                    "text": "my invoice"}, headers=auth)
    assert r.status_code == 202, r.text
    return r.json()["ticket_ref"]

@pytest.mark.parametrize("text", ["a\\u0000b", "a\\ud800b"])
async def test_note_with_bad_unicode(client, auth, text):
    ref = await _ticket(client, auth)
    r = await client.post(f"/api/v1/tickets/{ref}/notes", content=f'{{"text": "{text}"}}', headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]

@pytest.mark.parametrize("text", ["a\\u0000b", "a\\ud800b"])
async def test_reply_with_bad_unicode(client, auth, text):
    ref = await _ticket(client, auth)
    r = await client.post(f"/api/v1/tickets/{ref}/replies", content=f'{{"text": "{text}"}}', headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]

async def test_huge_customer_id(client, auth):
    r = await client.get("/api/v1/customers/99999999999999999999", headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]

async def test_huge_merge_other(client, auth):
    r = await client.post("/api/v1/customers/1/merge", json={"other": 10**20}, headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]

async def test_huge_assignee_filter(client, auth):
    r = await client.get("/api/v1/tickets?assignee=99999999999999999999", headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]

async def test_team_filter_nul(client, auth):
    r = await client.get("/api/v1/tickets?team=a%00b", headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]

async def test_support_json_lang_list(client):
    r = await client.post("/support", json={"lang": [], "email": "a@example.net", "message": "hi"})
    assert r.status_code == 202

async def test_patch_agent_huge_id(client, auth):
    r = await client.patch("/api/v1/agents/99999999999999999999", json={"status": "away"}, headers=auth)
    assert 400 <= r.status_code < 500 and r.json()["error"]
