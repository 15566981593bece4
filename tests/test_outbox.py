"""The outbox dispatcher against a real SMTP relay stand-in: retries, backoff, dead letters, leases."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from router.core import outbound
from router.core.outbound import MAX_ATTEMPTS, Dispatcher
from router.core.store import outbox
from router.metrics import Metrics
from router.workers import senders_for
from tests.conftest import free_port, post_message


def relay_config(config, port: int):
    return replace(config, settings=replace(config.settings, smtp_relay=f"smtp://127.0.0.1:{port}"))


async def outbox_rows(pool):
    async with pool.acquire() as conn:
        return await conn.fetch("SELECT status, attempts, next_attempt_at, last_error FROM outbox ORDER BY id")


def test_backoff_grows_exponentially_with_bounded_jitter():
    rng = random.Random(3)
    for attempts in range(1, 12):
        delay = outbound.backoff(attempts, rng)
        base = min(outbound.BASE_BACKOFF * 2 ** (attempts - 1), outbound.MAX_BACKOFF)
        assert base * 0.8 <= delay <= base * 1.2


async def test_relay_down_retries_with_backoff_then_delivers_once(client, auth, pool, config, clock, sink):
    await post_message(client, auth, "Where is my refund?", email="out@customer.example")
    metrics = Metrics()
    down = Dispatcher(pool, senders_for(relay_config(config, free_port())), clock, metrics)
    assert await down.run_once() == 0
    [row] = await outbox_rows(pool)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["last_error"]
    assert clock() + timedelta(seconds=3) < row["next_attempt_at"] <= clock() + timedelta(seconds=7)
    assert await down.run_once() == 0  # not due yet: nothing is tried
    assert (await outbox_rows(pool))[0]["attempts"] == 1
    assert metrics.outbox_failures.labels("email")._value.get() == 1

    up = Dispatcher(pool, senders_for(relay_config(config, sink.port)), clock, metrics)
    clock.advance(timedelta(seconds=10))
    assert await up.run_once() == 1
    assert len(sink.messages) == 1
    clock.advance(timedelta(hours=1))
    assert await up.run_once() == 0
    assert [r["status"] for r in await outbox_rows(pool)] == ["sent"]


async def test_gives_up_after_max_attempts_as_dead_letter(client, auth, pool, config, clock):
    ref = await post_message(client, auth, "Where is my refund?", email="out@customer.example")
    dispatcher = Dispatcher(pool, senders_for(relay_config(config, free_port())), clock)
    for _ in range(MAX_ATTEMPTS):
        await dispatcher.run_once()
        clock.advance(outbound.MAX_BACKOFF * 2)
    [row] = await outbox_rows(pool)
    assert (row["status"], row["attempts"]) == ("dead", MAX_ATTEMPTS)
    assert await dispatcher.run_once() == 0
    async with pool.acquire() as conn:
        kinds = [r["kind"] for r in await conn.fetch(
            "SELECT e.kind FROM events e JOIN tickets t ON t.id = e.ticket_id WHERE t.number = $1",
            int(ref[2:]))]
    assert "outbox.dead" in kinds
    metrics = (await client.get("/metrics")).text
    assert 'router_outbox_items{status="dead"} 1.0' in metrics


async def test_relay_refusal_5xx_is_permanent(client, auth, pool, config, clock, sink):
    sink.refuse_with = "550 5.1.1 No such user"
    await post_message(client, auth, "Where is my refund?", email="out@customer.example")
    await Dispatcher(pool, senders_for(relay_config(config, sink.port)), clock).run_once()
    [row] = await outbox_rows(pool)
    assert (row["status"], row["attempts"]) == ("dead", 1)


async def test_two_dispatchers_deliver_each_item_once(client, auth, pool, config, clock, sink):
    for i in range(12):
        await post_message(client, auth, f"question {i}", email=f"c{i}@customer.example")
    senders = senders_for(relay_config(config, sink.port))
    first, second = Dispatcher(pool, senders, clock), Dispatcher(pool, senders, clock)
    delivered = await asyncio.gather(first.run_once(), second.run_once(), first.run_once(), second.run_once())
    assert sum(delivered) == 12
    assert sorted(m["To"] for m in sink.messages) == sorted(f"c{i}@customer.example" for i in range(12))


async def test_an_item_interrupted_mid_send_is_never_sent_twice_and_shows_on_the_ticket(client, auth, pool, config,
                                                                                     clock, sink):
    """At most once (SPEC §2.10): a process that dies after sending, before recording it, leaves the
    item `sending`; when its lease ends it goes dead as "interrupted", not out again."""
    ref = await post_message(client, auth, "Where is my refund?", email="out@customer.example")
    crashed = Dispatcher(pool, senders_for(relay_config(config, sink.port)), clock)
    [item] = await crashed.lease()
    await crashed.senders["email"].send(item)  # sent, then the process "dies" before marking it
    survivor = Dispatcher(pool, senders_for(relay_config(config, sink.port)), clock)
    assert await survivor.run_once() == 0  # still leased
    clock.advance(outbox.LEASE + timedelta(seconds=1))
    assert await survivor.run_once() == 0
    assert len(sink.messages) == 1
    row = await pool.fetchrow("SELECT status, last_error FROM outbox")
    assert row["status"] == "dead" and "interrupted" in row["last_error"]
    ticket = (await client.get(f"/api/v1/tickets/{ref}", headers=auth)).json()
    [ack] = [m for m in ticket["messages"] if m["direction"] == "out"]
    assert ack["delivery"]["status"] == "dead" and "interrupted" in ack["delivery"]["error"]


@pytest.mark.parametrize("channel", ["telegram", "line"])
async def test_items_for_channels_without_a_sender_stay_queued(pool, config, clock, channel):
    async with pool.acquire() as conn:
        await outbox.enqueue(conn, key=f"k-{channel}", kind="reply", channel=channel, payload={"to": "x"},
                             now=clock())
    assert await Dispatcher(pool, senders_for(config), clock).run_once() == 0
    assert [r["status"] for r in await outbox_rows(pool)] == ["pending"]
