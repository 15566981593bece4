"""Merging two customers: one person, one thread (SPEC §2.4).

Used by the ingest pipeline (a message that proves two identities belong together) and by the
merge action (an agent's decision). Runs inside the caller's transaction; each store writes its
own tables, this module decides what a merge means for tickets, clocks and agents.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from agents import store as agent_store
from router.core.refs import PRIORITIES, priority_rank
from router.core.store import customers, events, tickets
from sla import clocks
from sla.policy import SlaRules


async def merge_customers(conn: asyncpg.Connection, rules: SlaRules, survivor_id: int, other_id: int,
                          now: datetime, *, reason: str, actor_id: int | None = None) -> int | None:
    """Fold customer `other_id` into `survivor_id`: identities, tickets and every message move over,
    and their active tickets become one thread (the oldest), so nothing is lost and nobody repeats
    themselves. Returns the id of the surviving active thread, if any."""
    duplicates = await customers.duplicates(conn, survivor_id, other_id)
    await tickets.repoint_senders(conn, duplicates)
    tier = await customers.fold(conn, survivor_id, other_id, duplicates)
    await tickets.move_customer(conn, other_id, survivor_id)
    thread_id = await _one_thread(conn, rules, survivor_id, tier, now, actor_id=actor_id)
    await events.record(conn, thread_id, "customer.merged",
                        {"survivor": survivor_id, "merged": other_id, "reason": reason}, now)
    return thread_id


async def _one_thread(conn: asyncpg.Connection, rules: SlaRules, customer_id: int, tier: str, now: datetime, *,
                      actor_id: int | None) -> int | None:
    """Keep the oldest active ticket as the thread and move the messages of the other active tickets
    into it; those are closed (clocks stopped, agents' slots freed) with a note saying where they went."""
    active = await tickets.active_for_update(conn, customer_id)
    if not active:
        return None
    thread, others = active[0], active[1:]
    for other in others:
        await tickets.fold_into(conn, thread.id, other.id, now)
        await clocks.stop_all(conn, other.id, now)
        await agent_store.log_routing(conn, other.id, "merged", f"merged into {thread.ref}", now, actor_id=actor_id)
        await events.record(conn, other.id, "ticket.merged", {"into": thread.ref}, now)
    for agent_id in sorted(o.assignee_id for o in others if o.assignee_id is not None):
        await agent_store.release_load(conn, agent_id)  # in id order, like every multi-agent change
    # The thread takes the highest priority of the merged tickets, and the merged customer's tier
    # (a VIP record folded in makes the thread VIP): its SLA policy follows both.
    top = PRIORITIES[max(priority_rank(t.priority) for t in active)]
    updated = await tickets.set_priority(conn, thread.id, top, now)
    policy = await clocks.recompute(conn, rules, updated, tier, now)
    if policy is not None:
        await tickets.set_sla_policy(conn, thread.id, policy.name)
    return thread.id
