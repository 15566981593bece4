"""A deactivated agent takes no work: nobody can set them online again or hand them a ticket."""

from __future__ import annotations

from tests.conftest import post_message


async def test_deactivated_agent_cannot_be_set_online_or_given_a_ticket(client, auth, pool):
    ref = await post_message(client, auth, "my invoice is wrong", email="kim@example.net")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE agents SET active = false, status = 'offline' WHERE email = 'ben@example.com'")
    lead = {"Authorization": "Bearer demo-lena"}
    online = await client.patch("/api/v1/agents/ben@example.com", json={"status": "online"}, headers=lead)
    assert online.status_code == 409 and "deactivated" in online.json()["detail"]
    given = await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": "ben@example.com"}, headers=lead)
    assert given.status_code == 409
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT a.status, (SELECT count(*) FROM tickets WHERE assignee_id = a.id) AS n"
                                  " FROM agents a WHERE email = 'ben@example.com'")
    assert row["status"] == "offline" and row["n"] == 0
    offline = await client.patch("/api/v1/agents/ben@example.com", json={"status": "offline"}, headers=lead)
    assert offline.status_code == 200
