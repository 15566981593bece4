"""What team leads (and agents) do from an SLA alert in Slack: take the ticket, hand it to someone
else with a reason, escalate it, snooze its alerts.

Assignment and priority go through the very actions the inbox and the API use (`assign.transfer`,
`status.update`), so the same permissions hold: agents move their own or unassigned tickets, leads any.
Taking or receiving a ticket from Slack also needs its skill and language: a lead should not hand a
Japanese billing question to someone who can answer neither. What was done is recorded on the
ticket's card (and as an event), and the card is refreshed through the outbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from agents.store import AgentIdentity
from router.core.actions import Context, assign, status
from router.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from router.core.refs import PRIORITIES, parse_ref
from router.core.store import events, slack_alerts, tickets
from router.core.store.slack_alerts import AgentCard
from router.core.store.tickets import Ticket

SNOOZE = timedelta(minutes=30)
MAX_REASON_CHARS = 500


async def _ticket(conn: asyncpg.Connection, ref_text: str) -> Ticket:
    number = parse_ref(ref_text)
    ticket = await tickets.by_number(conn, number) if number is not None else None
    if ticket is None:
        raise NotFound(f"there is no ticket {ref_text}")
    return ticket


async def _agent(conn: asyncpg.Connection, agent_id: int | None) -> AgentCard:
    found = await slack_alerts.agent_by_id(conn, agent_id) if agent_id is not None else None
    if found is None:
        raise Forbidden("only agents can act on tickets")
    return found


def missing(agent: AgentCard, ticket: Ticket) -> str | None:
    """What `agent` lacks to work `ticket` ("skill billing and language ja"), None when nothing."""
    lacks = []
    if ticket.skill and ticket.skill not in agent.skills:
        lacks.append(f"skill {ticket.skill}")
    if ticket.language and ticket.language not in agent.languages:
        lacks.append(f"language {ticket.language}")
    return " and ".join(lacks) or None


def _still_open(ticket: Ticket) -> None:
    if not ticket.active:
        raise Conflict(f"{ticket.ref} is {ticket.status} already")


async def take(ctx: Context, actor: AgentIdentity, ref: str, *, key: str) -> str:
    """Assign the ticket to whoever pressed "Take it", when they have its skill and language."""
    async with ctx.pool.acquire() as conn:
        ticket = await _ticket(conn, ref)
        agent = await _agent(conn, actor.id)
    _still_open(ticket)
    if ticket.assignee_id == agent.id:
        raise Conflict(f"{ticket.ref} is yours already")
    lacks = missing(agent, ticket)
    if lacks:
        raise Forbidden(f"you cannot take {ticket.ref}: it needs {lacks}, which your profile does not have")
    await assign.transfer(ctx, actor, ticket.ref, str(agent.id), f"taken from Slack by {agent.email}")
    await _record(ctx, ticket, agent, "Taken", key)
    return f"{ticket.ref} is yours now."


async def candidates(ctx: Context, ref: str) -> tuple[Ticket, list[AgentCard]]:
    """Who the ticket may be handed to: active agents with its skill and language, other than its
    assignee, online and least loaded first."""
    async with ctx.pool.acquire() as conn:
        ticket = await _ticket(conn, ref)
        agents = await slack_alerts.agents_for(conn, ticket.skill, ticket.language)
    return ticket, [agent for agent in agents if agent.id != ticket.assignee_id]


async def reassign(ctx: Context, actor: AgentIdentity, ref: str, agent_key: str | None, reason: str, *,
                   key: str) -> str:
    """Hand the ticket to another agent who has its skill and language, with a reason."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why: the reason stays in the ticket's history")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"the reason is longer than {MAX_REASON_CHARS} characters")
    if agent_key is None or not (agent_key.isascii() and agent_key.isdigit()):
        raise InvalidInput("choose an agent")
    async with ctx.pool.acquire() as conn:
        ticket = await _ticket(conn, ref)
        me = await _agent(conn, actor.id)
        target = await slack_alerts.agent_by_id(conn, int(agent_key))
    _still_open(ticket)
    if target is None:
        raise InvalidInput("that agent no longer exists or is deactivated")
    if target.id == ticket.assignee_id:
        raise Conflict(f"{ticket.ref} is assigned to {target.name} already")
    lacks = missing(target, ticket)
    if lacks:
        raise Forbidden(f"{target.name} cannot take {ticket.ref}: it needs {lacks}")
    await assign.transfer(ctx, actor, ticket.ref, str(target.id), reason)
    await _record(ctx, ticket, me, f"Reassigned to {target.name} ({reason})", key)
    return f"{ticket.ref} is {target.name}'s now."


async def escalate(ctx: Context, actor: AgentIdentity, ref: str, *, key: str) -> str:
    """Raise the priority one step; the SLA clocks follow the policy it matches now."""
    async with ctx.pool.acquire() as conn:
        ticket = await _ticket(conn, ref)
        agent = await _agent(conn, actor.id)
    _still_open(ticket)
    rank = PRIORITIES.index(ticket.priority)
    if rank == len(PRIORITIES) - 1:
        raise Conflict(f"{ticket.ref} is {ticket.priority} already: there is nothing higher")
    higher = PRIORITIES[rank + 1]
    await status.update(ctx, actor, ticket.ref, priority=higher)
    await _record(ctx, ticket, agent, f"Escalated to {higher}", key)
    return f"{ticket.ref} is {higher} now."


async def snooze(ctx: Context, actor: AgentIdentity, ref: str, *, key: str) -> str:
    """No alert for the ticket for the next 30 minutes: for leads and its assignee, who are the ones
    answering for it."""
    async with ctx.pool.acquire() as conn:
        ticket = await _ticket(conn, ref)
        agent = await _agent(conn, actor.id)
    _still_open(ticket)
    if not actor.is_lead and ticket.assignee_id != agent.id:
        raise Forbidden("only leads and the ticket's assignee can snooze its alerts")
    until = ctx.clock() + SNOOZE
    await _record(ctx, ticket, agent, "Snoozed for 30m", key, snoozed_until=until)
    return f"No alert for {ticket.ref} until the snooze ends."


async def _record(ctx: Context, ticket: Ticket, agent: AgentCard, what: str, key: str, *,
                  snoozed_until: datetime | None = None) -> None:
    now = ctx.clock()
    entry = {"who": agent.name, "what": what, "at": now.isoformat()}
    async with ctx.pool.acquire() as conn, conn.transaction():
        await slack_alerts.add_activity(conn, ticket.id, ctx.config.settings.slack_alert_channel or "", entry, now,
                                        snoozed_until=snoozed_until)
        await events.record(conn, ticket.id, "alert.acted", {"actor": agent.id, "what": what, "via": "slack",
                                                             **({"snoozed_until": snoozed_until.isoformat()}
                                                                if snoozed_until else {})}, now)
        if ctx.config.slack_enabled:
            await slack_alerts.queue_refresh(conn, ticket.id, key, now)
