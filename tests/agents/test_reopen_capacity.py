"""A reopened ticket goes back to its agent only when they can take it: never above capacity."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import post_message


def crm_user(email: str) -> dict:
    """The sender fields of a CRM user whose address the integration verified."""
    return {"sender_id": email, "email": email, "verified": ["email"]}


async def aiko(client, auth) -> dict:
    agents = (await client.get("/api/v1/agents", headers=auth)).json()["agents"]
    return next(a for a in agents if a["email"] == "aiko@example.com")


async def assignee(client, auth, ref: str) -> str | None:
    return (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["assignee"]


async def test_a_reopened_ticket_returns_to_its_agent_when_she_has_a_free_slot(client, auth, clock):
    ref = await post_message(client, auth, "請求書の金額が違います", **crm_user("r1@example.jp"))  # billing/ja: aiko
    assert await assignee(client, auth, ref) == "aiko@example.com"
    await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    clock.advance(timedelta(hours=1))
    assert await post_message(client, auth, "まだ返金されていません", **crm_user("r1@example.jp")) == ref
    assert await assignee(client, auth, ref) == "aiko@example.com"
    assert (await aiko(client, auth))["load"] == 1


async def test_a_reopened_ticket_never_pushes_its_agent_above_capacity(client, auth, clock):
    await client.patch("/api/v1/agents/aiko@example.com", json={"capacity": 2}, headers=auth)
    ref = await post_message(client, auth, "請求書の金額が違います", **crm_user("r2@example.jp"))
    await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth)
    for i in range(2):  # aiko fills up again with other billing work
        other = await post_message(client, auth, f"請求について質問です {i}", **crm_user(f"other{i}@example.jp"))
        assert await assignee(client, auth, other) == "aiko@example.com"
    clock.advance(timedelta(hours=1))
    assert await post_message(client, auth, "まだ返金されていません", **crm_user("r2@example.jp")) == ref
    me = await aiko(client, auth)
    assert me["load"] == me["capacity"] == 2
    assert await assignee(client, auth, ref) != "aiko@example.com"
    log = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["routing_log"]
    assert any(entry["action"] == "unassigned" and "capacity" in entry["reason"] for entry in log)
