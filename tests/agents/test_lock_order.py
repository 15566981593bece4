"""Lock order under concurrency: transfers and queue drains that need the same agents in opposite
orders never deadlock, even when forced to interleave; and a failing drain step never stops the
queue worker."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from agents import assignment
from router.core import actions
from tests.conftest import post_message


async def test_crossing_transfers_do_not_deadlock_when_forced_to_interleave(client, auth, pool, clock, monkeypatch):
    """T1 aiko→ben and T2 ben→aiko at once, each pausing between its two agent locks."""
    from agents import store

    t1 = await post_message(client, auth, "delivery tracking please", email="a1@example.net")  # aiko
    t2 = await post_message(client, auth, "app crash error", email="a2@example.net")            # ben
    real = store.release_load

    async def slow_release(conn, agent_id):
        await real(conn, agent_id)
        await asyncio.sleep(0.3)   # scheduling delay between the two agent-row locks
    monkeypatch.setattr(store, "release_load", slow_release)
    results = await asyncio.gather(
        client.post(f"/api/v1/tickets/{t1}/assign", json={"agent": "ben@example.com"}, headers=auth),
        client.post(f"/api/v1/tickets/{t2}/assign", json={"agent": "aiko@example.com"}, headers=auth))
    # A deadlock is answered as a 503 (the database aborted one transfer), never raised: check the answers.
    assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
    assignees = await pool.fetch("SELECT a.email FROM tickets t JOIN agents a ON a.id = t.assignee_id"
                                 " WHERE t.number = ANY($1::bigint[]) ORDER BY t.number", [int(t1[2:]), int(t2[2:])])
    assert [r["email"] for r in assignees] == ["ben@example.com", "aiko@example.com"]


async def queue_crossing_batches(pool) -> None:
    """Four waiting tickets whose two drain batches need the same two agents in opposite orders:
    batch 1 urgent shipping/en (aiko) then technical/ja (chie); batch 2 technical/ja then shipping/en."""
    async with pool.acquire() as conn:
        cust = await conn.fetchval("INSERT INTO customers (name) VALUES ('q') RETURNING id")
        team = await conn.fetchval("SELECT id FROM teams")
        spec = [("urgent", "shipping", "en"), ("urgent", "technical", "ja"),
                ("high", "technical", "ja"), ("high", "shipping", "en")]
        for i, (prio, skill, lang) in enumerate(spec):
            await conn.execute(
                "INSERT INTO tickets (customer_id, channel, priority, skill, language, team_id, created_at)"
                " VALUES ($1,'api',$2,$3,$4,$5, now() + make_interval(secs => $6))", cust, prio, skill, lang, team, i)


async def test_concurrent_drains_do_not_deadlock_when_forced_to_interleave(pool, clock, monkeypatch):
    """Each drain pauses after each agent lock, so crossing lock orders would deadlock."""
    monkeypatch.setattr(assignment, "DRAIN_BATCH", 2)
    await queue_crossing_batches(pool)
    real = assignment._take_and_assign

    async def slow(*a, **k):
        r = await real(*a, **k)
        await asyncio.sleep(0.3)
        return r
    monkeypatch.setattr(assignment, "_take_and_assign", slow)

    async def later():
        await asyncio.sleep(0.05)  # the second drain starts slightly later, so it gets the other batch
        return await actions.drain_queue(pool, clock())

    res = await asyncio.gather(actions.drain_queue(pool, clock()), later(), return_exceptions=True)
    assert not any(isinstance(r, Exception) for r in res)
    assert await pool.fetchval("SELECT count(*) FROM tickets WHERE assignee_id IS NOT NULL") == 4


async def test_queue_worker_survives_a_failing_step(monkeypatch):
    from router import workers
    calls = 0

    async def boom(pool, now):
        nonlocal calls
        calls += 1
        raise asyncpg.DeadlockDetectedError("deadlock detected")
    monkeypatch.setattr(actions, "drain_queue", boom)
    monkeypatch.setattr(workers, "QUEUE_DRAIN_SECONDS", 0.01)

    class Svc:
        def require_pool(self): return None
        def clock(self): return None
    task = asyncio.create_task(workers.queue_worker(Svc()))
    try:
        await asyncio.sleep(0.2)
        assert not task.done()
        assert calls >= 3  # it kept trying after each failure
    finally:
        task.cancel()  # never leave it running into later tests (with the real drain patched back)
        with pytest.raises(asyncio.CancelledError):
            await task
