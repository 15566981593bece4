"""Customer profiles and merges: two records of one person become one thread, keeping every message."""

from __future__ import annotations

from tests.conftest import post_message


async def customer_of(client, auth, ref):
    return (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["customer"]["id"]


async def test_agent_merge_makes_one_thread_and_frees_the_closed_tickets_slot(client, auth, pool):
    first = await post_message(client, auth, "Refund for my invoice please", email="kim@example.com")
    second = await post_message(client, auth, "I also got an error at login", channel="line", sender_id="U123",
                                name="Kim")
    keep, other = await customer_of(client, auth, first), await customer_of(client, auth, second)
    assert keep != other
    loads_before = {a["email"]: a["load"] for a in (await client.get("/api/v1/agents", headers=auth)).json()["agents"]}

    merged = await client.post(f"/api/v1/customers/{keep}/merge", json={"other": other}, headers=auth)
    assert merged.status_code == 200
    profile = merged.json()
    assert {(i["kind"], i["value"]) for i in profile["identities"]} == {("email", "kim@example.com"), ("line", "U123")}

    thread = (await client.get(f"/api/v1/tickets/{first}", headers=auth)).json()
    assert sorted(m["text"] for m in thread["messages"] if m["direction"] == "in") == [
        "I also got an error at login", "Refund for my invoice please"]
    closed = (await client.get(f"/api/v1/tickets/{second}", headers=auth)).json()
    assert closed["status"] == "closed"
    assert closed["routing_log"][-1] == {**closed["routing_log"][-1], "action": "merged",
                                         "reason": f"merged into {first}"}
    loads_after = {a["email"]: a["load"] for a in (await client.get("/api/v1/agents", headers=auth)).json()["agents"]}
    assert sum(loads_after.values()) == sum(loads_before.values()) - 1

    # The merged-away record answers with the surviving profile; new messages on either identity join the thread.
    assert (await client.get(f"/api/v1/customers/{other}", headers=auth)).json()["id"] == keep
    assert await post_message(client, auth, "any news?", channel="line", sender_id="U123") == first
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE merged_into IS NULL") == 1


async def test_merge_errors_are_json_problems(client, auth):
    ref = await post_message(client, auth, "hello", email="one@example.com")
    customer = await customer_of(client, auth, ref)
    cases = [({"other": customer}, 422), ({"other": "x"}, 422), ({"other": 999999}, 404), ({}, 422)]
    for body, status in cases:
        response = await client.post(f"/api/v1/customers/{customer}/merge", json=body, headers=auth)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()) == {"error", "detail"}
    assert (await client.get("/api/v1/customers/999999", headers=auth)).status_code == 404
    assert (await client.post(f"/api/v1/customers/{customer}/merge", json={"other": 1})).status_code == 401


async def test_merging_in_a_vip_record_moves_the_thread_to_the_vip_policy(client, auth, pool):
    ref = await post_message(client, auth, "Where is my parcel?", email="plain@example.com")
    assert (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["sla"]["policy"] == "normal"
    keep = await customer_of(client, auth, ref)
    vip = await pool.fetchval("INSERT INTO customers (name, tier) VALUES ('VIP record', 'vip') RETURNING id")
    merged = await client.post(f"/api/v1/customers/{keep}/merge", json={"other": vip}, headers=auth)
    assert merged.json()["tier"] == "vip"
    assert (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["sla"]["policy"] == "vip"
