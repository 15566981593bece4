"""Several warning levels per SLA target (`warn_at = [0.5, 0.75, 0.9]`): the config, the pure level
arithmetic, and the monitor firing each level once per ticket, target and cycle with two monitors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from router.app import create_app
from router.config import ConfigError, demo_config_text, parse_config
from sla import monitor
from sla.calendar import make_calendar
from sla.policy import NextWarning, SlaPolicy, next_warning
from tests.conftest import API_TOKEN, post_message

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
LEVELS_POLICY = """
[[sla_policies]]
name = "levels"
first_response = "100s"
next_response = "100s"
calendar = "24x7"
warn_at = [0.9, 0.5, 0.75]
"""


def policy_text(policy: str = LEVELS_POLICY) -> str:
    return demo_config_text().replace("[[sla_policies]]", policy + "\n[[sla_policies]]", 1)


def with_policy(settings, policy: str = LEVELS_POLICY):
    return parse_config(policy_text(policy), settings)


def test_warn_at_takes_one_fraction_or_a_sorted_list(settings):
    config = with_policy(settings)
    assert config.sla.named("levels").warn_at == (0.5, 0.75, 0.9)
    assert config.sla.named("normal").warn_at == (0.75,)


@pytest.mark.parametrize("value, problem", [
    ("[0.5, 1.0]", "must be a fraction between 0 and 1"),
    ("[]", "must be a fraction between 0 and 1"),
    ('["half"]', "must be a fraction between 0 and 1"),
    ("[0.5, 0.5]", "lists a level twice"),
    ("true", "must be a fraction between 0 and 1"),
])
def test_bad_warning_levels_are_reported_on_their_line(settings, value, problem):
    policy = LEVELS_POLICY.replace("warn_at = [0.9, 0.5, 0.75]", f"warn_at = {value}")
    with pytest.raises(ConfigError) as caught:
        with_policy(settings, policy)
    [found] = [p for p in caught.value.problems if "warn_at" in p]
    line = policy_text(policy).splitlines().index(f"warn_at = {value}") + 1
    assert found.startswith(f"<config>:{line}: sla_policies[0].warn_at: ") and problem in found


def test_next_warning_fires_the_highest_level_crossed_and_names_the_next():
    policy = SlaPolicy(name="p", calendar="24x7", first_response=timedelta(seconds=100), warn_at=(0.5, 0.75, 0.9))
    calendar = make_calendar("24x7", "UTC", "24x7")
    start = datetime(2026, 1, 5, tzinfo=UTC)

    def at(seconds: float, fired: int, paused: float = 0):
        return next_warning(policy, "first_response", calendar, started_at=start, paused_for=timedelta(seconds=paused),
                            fired=fired, now=start + timedelta(seconds=seconds))

    assert at(60, fired=1) == NextWarning(None, start + timedelta(seconds=75))
    assert at(80, fired=1) == NextWarning(2, start + timedelta(seconds=90))
    assert at(95, fired=1) == NextWarning(3, None)  # level 2 passed unseen: moot
    assert at(95, fired=3) == NextWarning(None, None)
    assert at(80, fired=1, paused=10).fire is None  # paused time moves every level later
    assert next_warning(policy, "resolution", calendar, started_at=start, paused_for=timedelta(0), fired=0,
                        now=start).next_at is None  # the policy sets no such target


@pytest.fixture
def levels_config(settings):
    from dataclasses import replace

    config = with_policy(settings)
    return replace(config, settings=replace(config.settings, slack_bot_token="xoxb-test"))


@pytest.fixture
async def levels_client(levels_config, pool, clock):
    app = create_app(levels_config, pool=pool, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


async def monitors(pool, config, now, instances=2):
    async def one():
        async with pool.acquire() as conn, conn.transaction():
            return await monitor.scan(conn, now, alerts=True, ref_prefix="T-", rules=config.sla)

    results = await asyncio.gather(*(one() for _ in range(instances)))
    return sorted((e.target, e.kind, e.level) for result in results for e in result)


async def test_each_level_fires_once_with_two_monitors(levels_client, levels_config, pool, clock):
    ref = await post_message(levels_client, AUTH, "Where is my parcel?", email="lv@example.com")
    assert await monitors(pool, levels_config, clock() + timedelta(seconds=49)) == []
    for seconds, fired in ((50, ("first_response", "warning", 1)), (75, ("first_response", "warning", 2)),
                           (90, ("first_response", "warning", 3)), (100, ("first_response", "breach", 1))):
        now = clock() + timedelta(seconds=seconds)
        assert await monitors(pool, levels_config, now) == [fired], seconds
        assert await monitors(pool, levels_config, now, instances=3) == []
    async with pool.acquire() as conn:
        keys = [r["idempotency_key"] for r in await conn.fetch(
            "SELECT idempotency_key FROM outbox WHERE kind = 'sla_alert' ORDER BY id")]
        payloads = [r["payload"] for r in await conn.fetch(
            "SELECT payload FROM events WHERE kind LIKE 'sla.%' ORDER BY id")]
    ticket_id = keys[0].split(":")[1]
    assert keys == [f"sla:{ticket_id}:first_response:1:warning:1", f"sla:{ticket_id}:first_response:1:warning:2",
                    f"sla:{ticket_id}:first_response:1:warning:3", f"sla:{ticket_id}:first_response:1:breach:1"]
    assert [(p["kind"], p["level"], p["ticket_ref"]) for p in payloads] == [
        ("warning", 1, ref), ("warning", 2, ref), ("warning", 3, ref), ("breach", 1, ref)]


async def test_a_monitor_back_after_a_while_fires_the_highest_level_passed(levels_client, levels_config, pool, clock):
    await post_message(levels_client, AUTH, "Where is my parcel?", email="lv@example.com")
    assert await monitors(pool, levels_config, clock() + timedelta(seconds=95)) == [
        ("first_response", "warning", 1), ("first_response", "warning", 3)]


async def test_pending_time_moves_the_next_level_later(levels_client, levels_config, pool, clock):
    ref = await post_message(levels_client, AUTH, "Where is my parcel?", email="lv@example.com")
    clock.advance(timedelta(seconds=60))
    assert await monitors(pool, levels_config, clock()) == [("first_response", "warning", 1)]
    await levels_client.patch(f"/api/v1/tickets/{ref}", json={"status": "pending"}, headers=AUTH)
    clock.advance(timedelta(seconds=30))
    await levels_client.patch(f"/api/v1/tickets/{ref}", json={"status": "open"}, headers=AUTH)
    # 60 s used before the pause: level 2 (75 s) is due 15 s after the resume, not at once.
    assert await monitors(pool, levels_config, clock() + timedelta(seconds=14)) == []
    assert await monitors(pool, levels_config, clock() + timedelta(seconds=15)) == [("first_response", "warning", 2)]


async def test_a_new_next_response_cycle_warns_at_every_level_again(levels_client, levels_config, pool, clock):
    ref = await post_message(levels_client, AUTH, "Where is my parcel?", email="lv@example.com")
    clock.advance(timedelta(seconds=80))
    assert len(await monitors(pool, levels_config, clock())) == 2
    await levels_client.post(f"/api/v1/tickets/{ref}/replies", headers=AUTH, json={"text": "Looking into it"})
    await post_message(levels_client, AUTH, "Any news?", email="lv@example.com")
    assert await monitors(pool, levels_config, clock() + timedelta(seconds=50)) == [("next_response", "warning", 1)]
    assert await monitors(pool, levels_config, clock() + timedelta(seconds=76)) == [("next_response", "warning", 2)]


async def test_next_due_is_the_earliest_pending_level(levels_client, levels_config, pool, clock):
    await post_message(levels_client, AUTH, "Where is my parcel?", email="lv@example.com")
    async with pool.acquire() as conn:
        assert await monitor.next_due(conn) == clock() + timedelta(seconds=50)
    await monitors(pool, levels_config, clock() + timedelta(seconds=50))
    async with pool.acquire() as conn:
        assert await monitor.next_due(conn) == clock() + timedelta(seconds=75)
