"""Merging two customers, and splitting them back: one person, one thread (SPEC §2.4).

Used by the ingest pipeline (a message that proves two identities belong together), by proofs and
by the merge actions (an agent's decision). Runs inside the caller's transaction; each store writes
its own tables, this module decides what a merge means for tickets, clocks and agents. Every merge
is logged first (`store.merges`) with everything it moves, so `split` can undo it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from agents import assignment
from agents import store as agent_store
from router.core.errors import Conflict
from router.core.refs import PRIORITIES, priority_rank
from router.core.store import customers, events, merges, suggestions, tickets
from sla import clocks
from sla.policy import SlaRules, TicketFacts


@dataclass(frozen=True)
class Merged:
    """A recorded merge (undo it by `id`) and the surviving active thread, if any."""

    id: int
    thread_id: int | None


async def merge_customers(conn: asyncpg.Connection, rules: SlaRules, survivor_id: int, other_id: int,
                          now: datetime, *, reason: str, actor_id: int | None = None,
                          suggestion_id: int | None = None) -> Merged:
    """Fold customer `other_id` into `survivor_id`: identities, tickets and every message move over,
    and their active tickets become one thread (the oldest), so nothing is lost and nobody repeats
    themselves. Logged with who (`actor_id`, None for the system) and why, undoable by `split`."""
    survivor_before = await customers.lock_pair(conn, survivor_id, other_id)
    drops = await customers.merge_drops(conn, survivor_id, other_id)
    dropped = [drop for drop, _ in drops]
    merge_id = await merges.begin(conn, survivor_id, other_id, actor_id=actor_id, reason=reason,
                                  suggestion_id=suggestion_id, survivor_before=survivor_before,
                                  dropped=dropped, now=now)
    await tickets.repoint_senders(conn, [(drop, keep) for drop, keep in drops if keep is not None])
    await merges.detach_senders(conn, [drop for drop, keep in drops if keep is None])
    tier = await customers.fold(conn, survivor_id, other_id, dropped)
    await tickets.move_customer(conn, other_id, survivor_id)
    thread_id = await _one_thread(conn, rules, survivor_id, tier, now, actor_id=actor_id)
    await merges.set_thread(conn, merge_id, thread_id)
    await events.record(conn, thread_id, "customer.merged",
                        {"merge_id": merge_id, "survivor": survivor_id, "merged": other_id, "reason": reason,
                         "actor_id": actor_id}, now)
    return Merged(merge_id, thread_id)


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


@dataclass(frozen=True)
class Split:
    """What a split did: the tickets it gave back or reopened, and the later messages that followed
    their sender to the other side."""

    merge_id: int
    survivor_id: int
    merged_id: int
    tickets: tuple[int, ...]
    messages_restored: int
    later_messages_moved: int


async def split(conn: asyncpg.Connection, rules: SlaRules, merge_id: int, now: datetime, *, why: str,
                actor_id: int | None, reopen_window: timedelta) -> Split:
    """Undo merge `merge_id`: each identity, ticket and message returns to where it came from; the
    tickets the fold closed get back their status and agent (as a ticket returning to its agent:
    counted on their load, or routed anew when they are no longer active); priorities and SLA
    clocks return to what each side's tickets had, as if the merge had never happened.

    Messages that arrived after the merge follow their sender: one from an identity that returns to
    the other side moves to that side's ticket (a side that had no active ticket at merge time gets
    its latest ticket back, reopened within `reopen_window`, else a new ticket following it, as if
    the message had arrived unmerged); tickets started after the merge by such an identity go with it.
    Agents' replies and notes after the merge stay on the ticket they were written on.
    A later merge of either customer built on this one: Conflict, undo that one first. The
    suggestions the merge settled count as dismissed: the split says they are two people.
    """
    merge = await merges.get(conn, merge_id, lock=True)
    if merge.undone_at is not None:
        raise Conflict(f"merge {merge_id} was undone already")
    live = await customers.lock_live(conn, [merge.survivor_id, merge.merged_id])
    later = await merges.later_merge(conn, merge)
    if later is not None:
        raise Conflict(f"merge {later} of one of these customers came after merge {merge_id} and built on it:"
                       f" undo merge {later} first")
    if live.get(merge.merged_id) != merge.survivor_id or live.get(merge.survivor_id) is not None:
        raise Conflict(f"customer {merge.merged_id} is no longer merged into {merge.survivor_id}")
    before = await merges.tickets_before(conn, merge.id)
    await customers.unfold(conn, merge.survivor_id, merge.merged_id, await merges.identities_before(conn, merge.id),
                           merge.survivor_before)
    restored = await merges.restore_messages(conn, merge.id)
    await merges.restore_ticket_owners(conn, merge.id, merge.merged_id)
    followed = await merges.follow_new_tickets(conn, merge)
    homes = _homes(merge, before)
    for side in (merge.survivor_id, merge.merged_id):
        if side not in homes and await merges.has_later_messages(conn, merge, side):
            homes[side] = await _home_for(conn, rules, side, now, reopen_window=reopen_window, actor_id=actor_id)
    moved = await merges.follow_senders(conn, merge, homes)
    await _reopen_folded(conn, merge, before, now, actor_id=actor_id)
    thread_priority = PRIORITIES[max((priority_rank(b.priority) for b in before if b.folded or
                                      b.ticket_id == merge.thread_id), default=0)]
    for ticket_before in before:
        await _settle(conn, rules, ticket_before, merge, thread_priority, now)
    await merges.mark_undone(conn, merge.id, actor_id, why, now)
    await suggestions.reject_merged(conn, merge.survivor_id, merge.merged_id, actor_id,
                                    f"merge {merge.id} undone: {why}", now)
    payload = {"merge_id": merge.id, "survivor": merge.survivor_id, "merged": merge.merged_id, "reason": why,
               "actor_id": actor_id}
    touched = sorted({*(b.ticket_id for b in before if b.folded or b.ticket_id == merge.thread_id), *followed})
    where: list[int | None] = [*touched] or [None]
    for ticket_id in where:
        await events.record(conn, ticket_id, "customer.split", payload, now)
    return Split(merge.id, merge.survivor_id, merge.merged_id, tuple(touched), restored, moved)


def _homes(merge: merges.MergeRow, before: list[merges.TicketBefore]) -> dict[int, int]:
    """Each side's ticket in the merged thread: the thread itself for the side that owned it, else
    that side's newest ticket folded into it."""
    homes: dict[int, int] = {}
    for b in sorted(before, key=lambda b: (b.ticket_id != merge.thread_id, -b.ticket_id)):
        if b.folded or b.ticket_id == merge.thread_id:
            homes.setdefault(b.customer_id, b.ticket_id)
    return homes


async def _home_for(conn: asyncpg.Connection, rules: SlaRules, customer_id: int, now: datetime, *,
                    reopen_window: timedelta, actor_id: int | None) -> int:
    """Where a side's later messages go when it had no active ticket in the merged thread: what the
    pipeline would have chosen for them (SPEC §2.5) — its active ticket, its latest solved one
    reopened within the window (back to its agent when they can take it), else a new ticket
    continuing its latest, routed and clocked like new work."""
    choice = await tickets.choose_thread(conn, customer_id, thread_refs=(), number_hint=None, now=now,
                                         reopen_window=reopen_window)
    if choice.ticket is not None and choice.action == "join":
        return choice.ticket.id
    if choice.ticket is not None:  # reopen
        await tickets.set_status(conn, choice.ticket.id, "open", now)
        ticket = await tickets.by_id_for_update(conn, choice.ticket.id)
        assert ticket is not None
        await clocks.reopen(conn, rules, ticket, now)
        await events.record(conn, ticket.id, "ticket.reopened", {"ref": ticket.ref}, now)
        await assignment.route_reopened(conn, ticket, now)
        return ticket.id
    assert choice.previous_ticket_id is not None  # the side wrote before: it has a ticket
    ticket_id = await merges.follow_up_ticket(conn, choice.previous_ticket_id, now)
    ticket = await tickets.by_id_for_update(conn, ticket_id)
    assert ticket is not None
    tier = await customers.tier_of(conn, customer_id)
    policy = rules.match(TicketFacts(priority=ticket.priority, tier=tier, channel=ticket.channel, topic=ticket.topic))
    if policy is not None:
        await tickets.set_sla_policy(conn, ticket.id, policy.name)
    await clocks.start_ticket(conn, rules, ticket.id, policy, now)
    await events.record(conn, ticket.id, "ticket.created", {"ref": ticket.ref, "channel": ticket.channel,
                                                            "actor_id": actor_id}, now)
    await assignment.route_ticket(conn, ticket, now)
    return ticket.id


async def _reopen_folded(conn: asyncpg.Connection, merge: merges.MergeRow, before: list[merges.TicketBefore],
                         now: datetime, *, actor_id: int | None) -> None:
    """Tickets the fold closed (and nobody touched since) reopen as they were, back with their agent."""
    current = {b.ticket_id: await tickets.by_id_for_update(conn, b.ticket_id) for b in before if b.folded}
    returning: list[int] = []
    for b in before:
        ticket = current.get(b.ticket_id)
        if ticket is None or ticket.status != "closed" or ticket.assignee_id is not None:
            continue
        assignee = b.assignee_id if await _active(conn, b.assignee_id) else None
        await merges.reopen_folded(conn, b, assignee, merge.merged_at, now)
        await agent_store.log_routing(conn, b.ticket_id, "unmerged", f"merge {merge.id} undone: reopened as it was",
                                      now, agent_id=assignee, actor_id=actor_id)
        if assignee is not None:
            returning.append(assignee)
        elif b.assignee_id is not None:
            reopened = await tickets.by_id_for_update(conn, b.ticket_id)
            assert reopened is not None
            await assignment.route_ticket(conn, reopened, now)
    for agent_id in sorted(returning):
        await agent_store.add_load(conn, agent_id)  # in id order, like every multi-agent change


async def _active(conn: asyncpg.Connection, agent_id: int | None) -> bool:
    entry = await agent_store.directory_entry(conn, agent_id) if agent_id is not None else None
    return bool(entry is not None and entry["active"])


async def _settle(conn: asyncpg.Connection, rules: SlaRules, b: merges.TicketBefore, merge: merges.MergeRow,
                  merged_priority: str, now: datetime) -> None:
    """Each touched ticket's priority and SLA policy as its own customer's: the thread gives back the
    priority the merge raised it to (unless someone changed it since); clocks follow the policy."""
    ticket = await tickets.by_id_for_update(conn, b.ticket_id)
    if ticket is None or ticket.status not in ("open", "pending"):
        return
    if b.ticket_id == merge.thread_id:
        await merges.restore_dropped_clocks(conn, merge.id, ticket.id)
        if ticket.priority == merged_priority and ticket.priority != b.priority:
            ticket = await tickets.set_priority(conn, ticket.id, PRIORITIES[priority_rank(b.priority)], now)
    tier = await customers.tier_of(conn, ticket.customer_id)
    policy = await clocks.recompute(conn, rules, ticket, tier, now)
    if policy is not None:
        await tickets.set_sla_policy(conn, ticket.id, policy.name)
