"""SLA clocks and the monitor on the real database, with a clock the test moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from router.app import create_app
from router.config import demo_config_text, parse_config
from sla import monitor
from tests.conftest import API_TOKEN, post_message

FAST_POLICY = """
[[sla_policies]]
name = "fast"
first_response = "45s"
next_response = "45s"
resolution = "10m"
calendar = "24x7"
warn_at = 0.5
"""


@pytest.fixture
def fast_config(settings):
    """The demo config with a 45-second first-response policy in front of the others."""
    text = demo_config_text().replace("[[sla_policies]]", FAST_POLICY + "\n[[sla_policies]]", 1)
    return parse_config(text, settings)


@pytest.fixture
async def fast_client(fast_config, pool, clock):
    app = create_app(fast_config, pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def run_monitors(pool, config, now, instances=2):
    async def one():
        async with pool.acquire() as conn, conn.transaction():
            return await monitor.scan(conn, now, alerts=bool(config.settings.slack_bot_token), ref_prefix="T-")

    results = await asyncio.gather(*(one() for _ in range(instances)))
    return [event for result in results for event in result]


async def sla_events(pool):
    async with pool.acquire() as conn:
        return [(r["target"], r["kind"]) for r in
                await conn.fetch("SELECT target, kind FROM sla_events ORDER BY id")]


async def test_warning_then_breach_exactly_once_with_two_monitors(fast_client, fast_config, pool, clock):
    ref = await post_message(fast_client, AUTH, "Where is my parcel?", email="c@example.com")
    detail = (await fast_client.get(f"/api/v1/tickets/{ref}", headers=AUTH)).json()
    first = next(c for c in detail["sla"]["clocks"] if c["target"] == "first_response")
    assert detail["sla"]["policy"] == "fast"
    assert datetime.fromisoformat(first["due_at"]) == clock() + timedelta(seconds=45)

    assert await run_monitors(pool, fast_config, clock() + timedelta(seconds=10)) == []
    clock.advance(timedelta(seconds=23))
    fired = await run_monitors(pool, fast_config, clock())
    assert [(e.target, e.kind) for e in fired] == [("first_response", "warning")]
    assert await run_monitors(pool, fast_config, clock()) == []

    clock.advance(timedelta(seconds=23))
    fired = await run_monitors(pool, fast_config, clock())
    assert [(e.target, e.kind, e.ticket_ref) for e in fired] == [("first_response", "breach", ref)]
    clock.advance(timedelta(minutes=1))
    assert await run_monitors(pool, fast_config, clock(), instances=3) == []
    assert await sla_events(pool) == [("first_response", "warning"), ("first_response", "breach")]


async def test_reply_before_due_stops_the_first_response_clock(fast_client, fast_config, pool, clock):
    ref = await post_message(fast_client, AUTH, "Where is my parcel?", email="c@example.com")
    clock.advance(timedelta(seconds=10))
    reply = await fast_client.post(f"/api/v1/tickets/{ref}/replies", headers=AUTH, json={"text": "On it!"})
    assert reply.status_code == 201
    clock.advance(timedelta(minutes=2))
    assert await run_monitors(pool, fast_config, clock()) == []
    # The customer writes again after our reply: a next-response clock starts and can breach.
    await post_message(fast_client, AUTH, "Thanks, any update?", email="c@example.com")
    clock.advance(timedelta(seconds=50))
    fired = await run_monitors(pool, fast_config, clock())
    assert sorted((e.target, e.kind) for e in fired) == [("next_response", "breach"), ("next_response", "warning")]


async def test_pending_pauses_the_clock_and_customer_reply_resumes(fast_client, fast_config, pool, clock):
    ref = await post_message(fast_client, AUTH, "Where is my parcel?", email="c@example.com")
    clock.advance(timedelta(seconds=10))
    await fast_client.patch(f"/api/v1/tickets/{ref}", json={"status": "pending"}, headers=AUTH)
    clock.advance(timedelta(hours=3))
    assert await run_monitors(pool, fast_config, clock()) == []
    await post_message(fast_client, AUTH, "Here is the info you asked for", email="c@example.com")
    detail = (await fast_client.get(f"/api/v1/tickets/{ref}", headers=AUTH)).json()
    assert detail["status"] == "open"
    first = next(c for c in detail["sla"]["clocks"] if c["target"] == "first_response")
    assert datetime.fromisoformat(first["due_at"]) == clock() + timedelta(seconds=35)


async def test_priority_change_recomputes_due_times(client, auth, pool, clock):
    ref = await post_message(client, auth, "Question about delivery", email="p@example.com")
    normal = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    assert normal["sla"]["policy"] == "normal"
    response = await client.patch(f"/api/v1/tickets/{ref}", json={"priority": "urgent"}, headers=auth)
    urgent = response.json()
    assert urgent["sla"]["policy"] == "urgent"
    first = next(c for c in urgent["sla"]["clocks"] if c["target"] == "first_response")
    assert datetime.fromisoformat(first["due_at"]) == clock() + timedelta(hours=1)


async def test_normal_policy_counts_japanese_business_hours(client, auth, clock):
    clock.now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # Friday 17:00 JST; Mon 23 Nov is a holiday
    ref = await post_message(client, auth, "配送状況を教えてください", email="jp@example.jp")
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    first = next(c for c in detail["sla"]["clocks"] if c["target"] == "first_response")
    # 1h on Friday (17:00-18:00), Monday 23 Nov is Labour Thanksgiving Day, so 3h more on Tuesday.
    assert datetime.fromisoformat(first["due_at"]) == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # Tue 12:00 JST



async def test_alerts_queued_for_slack_once_per_target_and_kind(fast_client, fast_config, pool, clock):
    from dataclasses import replace

    with_slack = replace(fast_config, settings=replace(fast_config.settings, slack_bot_token="xoxb-test"))
    ref = await post_message(fast_client, AUTH, "Where is my parcel?", email="c@example.com")
    clock.advance(timedelta(minutes=11))  # past first-response and resolution, warnings included
    fired = await run_monitors(pool, with_slack, clock(), instances=3)
    assert len(fired) == 4
    assert await run_monitors(pool, with_slack, clock(), instances=3) == []
    async with pool.acquire() as conn:
        alerts = await conn.fetch("SELECT channel, payload FROM outbox WHERE kind = 'sla_alert' ORDER BY id")
        events = await conn.fetch("SELECT kind FROM events WHERE kind LIKE 'sla.%'")
    assert {a["channel"] for a in alerts} == {"slack"}
    assert sorted((a["payload"]["target"], a["payload"]["kind"]) for a in alerts) == [
        ("first_response", "breach"), ("first_response", "warning"), ("resolution", "breach"),
        ("resolution", "warning")]
    assert all(a["payload"]["ticket_ref"] == ref for a in alerts)
    assert len(events) == 4


async def test_urgent_follow_up_escalates_the_ticket_and_its_policy(client, auth, clock):
    ref = await post_message(client, auth, "配送について教えてください", email="esc@example.jp")
    assert (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["sla"]["policy"] == "normal"
    clock.advance(timedelta(minutes=10))
    assert await post_message(client, auth, "至急お願いします！", email="esc@example.jp") == ref
    detail = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    assert (detail["priority"], detail["sla"]["policy"]) == ("urgent", "urgent")
    first = next(c for c in detail["sla"]["clocks"] if c["target"] == "first_response")
    assert datetime.fromisoformat(first["due_at"]) == clock() - timedelta(minutes=10) + timedelta(hours=1)
    await post_message(client, auth, "ありがとうございます", email="esc@example.jp")
    assert (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()["priority"] == "urgent"  # never lowered
