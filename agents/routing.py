"""The routing decision: which agent, if any, takes a ticket, and why.

Pure functions over a snapshot of candidates, so the rules are unit- and property-tested without a
database and the storage layer only has to load snapshots and apply the result (the slot UPDATE re-checks
capacity under a row lock, because the snapshot may be stale by the time it is applied).

Rules (SPEC §2.7): an agent is eligible when they take routed work, are online, are below capacity and
have the ticket's skill, language and team. Among eligible agents the one who last helped the customer
wins (continuity); otherwise the lowest load ratio, then the least recently assigned, then the lowest
id, so the same snapshot always gives the same answer whatever order the candidates arrive in.
Candidate ids are assumed unique.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class AgentSnapshot:
    """One candidate as the router sees them at decision time."""

    id: int
    skills: frozenset[str]
    languages: frozenset[str]
    status: str  # "online" | "away" | "offline"
    load: int  # open tickets currently assigned
    capacity: int  # max open assigned tickets
    last_assigned_at: datetime | None
    takes_routed_work: bool = True  # False for leads
    team: str | None = None


@dataclass(frozen=True)
class TicketNeeds:
    """What an agent must have to take the ticket; None means "any"."""

    skill: str | None
    language: str | None
    team: str | None = None
    previous_agent_id: int | None = None  # who last helped this customer (continuity)


@dataclass(frozen=True)
class RoutingDecision:
    """The chosen agent (None: the ticket waits in its queue) and the reason shown to agents."""

    agent_id: int | None
    reason: str


@dataclass(frozen=True)
class QueuedTicket:
    """A waiting ticket. `urgency` 0 is the most urgent: the caller maps its priorities to ranks,
    so the priority vocabulary lives in one place (router.core.refs)."""

    ticket_id: int
    urgency: int
    created_at: datetime
    needs: TicketNeeds


def eligibility_problem(agent: AgentSnapshot, needs: TicketNeeds) -> str | None:
    """None if the agent may take the ticket, else a short phrase that reads after a count
    ("2 at capacity", "1 offline").

    Permanent mismatches (routed work, team, skill, language) are checked before transient ones
    (status, capacity), so a queued ticket's summary counts as "at capacity" or "offline" only agents
    who could take it once they free up or come back: that is what a lead can act on.
    """
    if not agent.takes_routed_work:
        return "no routed work"
    if needs.team is not None and agent.team != needs.team:
        return "other team"
    if needs.skill is not None and needs.skill not in agent.skills:
        return "missing skill"
    if needs.language is not None and needs.language not in agent.languages:
        return "missing language"
    if agent.status != "online":
        return agent.status
    if agent.capacity <= 0:
        return "no capacity"
    if agent.load >= agent.capacity:
        return "at capacity"
    return None


def choose_agent(needs: TicketNeeds, candidates: Sequence[AgentSnapshot]) -> RoutingDecision:
    """Pick the best eligible candidate in one pass, keeping the runner-up only to say which rule
    decided. Problems are tallied as we go so a queued ticket's reason needs no second pass."""
    best: AgentSnapshot | None = None
    best_key: tuple | None = None
    runner_up_key: tuple | None = None
    eligible = 0
    previous: AgentSnapshot | None = None
    previous_problem: str | None = None
    problems: dict[str, int] = {}
    for agent in candidates:
        problem = eligibility_problem(agent, needs)
        if agent.id == needs.previous_agent_id:
            previous, previous_problem = agent, problem
        if problem is not None:
            problems[problem] = problems.get(problem, 0) + 1
            continue
        eligible += 1
        last = agent.last_assigned_at
        # None (never assigned) sorts first; when both are None, == lets the tuple fall through to id.
        key = (agent.load / agent.capacity, last is not None, last, agent.id)
        if best_key is None or key < best_key:
            best, best_key, runner_up_key = agent, key, best_key
        elif runner_up_key is None or key < runner_up_key:
            runner_up_key = key

    if previous is not None and previous_problem is None:
        return RoutingDecision(previous.id, f"continuity: agent {previous.id} helped this customer before"
                                            f" (load {previous.load}/{previous.capacity})")
    if best is None or best_key is None:
        return RoutingDecision(None, _queued_reason(needs, problems))
    load = f"load {best.load}/{best.capacity}"
    if runner_up_key is None:
        reason = f"only eligible agent of {len(candidates)} ({load})"
    elif best_key[0] != runner_up_key[0]:
        reason = f"least loaded of {eligible} eligible ({load})"
    elif best_key[1:3] != runner_up_key[1:3]:
        reason = f"least recently assigned of {eligible} eligible, tied on {load}"
    else:
        reason = f"lowest id of {eligible} eligible, tied on {load} and last assignment"
    if needs.previous_agent_id is not None:
        reason += f"; previous agent {needs.previous_agent_id}: {previous_problem or 'not a candidate'}"
    return RoutingDecision(best.id, reason)


def _queued_reason(needs: TicketNeeds, problems: dict[str, int]) -> str:
    """E.g. "queued: no available agent with skill billing and language ja (2 at capacity, 1 offline)".
    Counts are ordered largest first, then by name, so the text does not depend on candidate order."""
    asked = (("skill", needs.skill), ("language", needs.language), ("team", needs.team))
    wanted = [f"{label} {value}" for label, value in asked if value is not None]
    what = "no available agent" + (" with " + " and ".join(wanted) if wanted else "")
    tally = sorted(problems.items(), key=lambda item: (-item[1], item[0]))
    why = ", ".join(f"{count} {problem}" for problem, count in tally) or "no candidates"
    return f"queued: {what} ({why})"


def order_queue(tickets: Iterable[QueuedTicket]) -> list[QueuedTicket]:
    """Most urgent first, then oldest first; ticket_id breaks exact ties so the order is total."""
    return sorted(tickets, key=_queue_key)


def _queue_key(ticket: QueuedTicket) -> tuple[int, datetime, int]:
    return ticket.urgency, ticket.created_at, ticket.ticket_id


def plan_assignments(queue: Sequence[QueuedTicket],
                     candidates: Sequence[AgentSnapshot]) -> list[tuple[int, RoutingDecision]]:
    """Drain `queue` (already in queue order, see `order_queue`) against one snapshot.

    Each assignment counts against the chosen agent for the tickets after it: load +1 and a
    last_assigned_at later than anything in the snapshot (a microsecond-stepped marker, so equals
    rotate deterministically). Tickets nobody can take are skipped; only assignments are returned.
    """
    agents = list(candidates)
    index = {agent.id: i for i, agent in enumerate(agents)}
    stamps = [agent.last_assigned_at for agent in agents if agent.last_assigned_at is not None]
    marker = max(stamps, default=datetime.min)
    # Slots that any ticket could still use; once none are left the rest of the queue cannot move.
    free = sum(max(0, agent.capacity - agent.load) for agent in agents
               if agent.takes_routed_work and agent.status == "online")
    plan: list[tuple[int, RoutingDecision]] = []
    for ticket in queue:
        if free <= 0:
            break
        decision = choose_agent(ticket.needs, agents)
        if decision.agent_id is None:
            continue
        marker += timedelta(microseconds=1)
        i = index[decision.agent_id]
        agents[i] = replace(agents[i], load=agents[i].load + 1, last_assigned_at=marker)
        free -= 1
        plan.append((ticket.ticket_id, decision))
    return plan
