"""The routing decision (SPEC §2.7): eligibility rules, preference order, queue order and queue drains."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.routing import (
    AgentSnapshot,
    QueuedTicket,
    RoutingDecision,
    TicketNeeds,
    choose_agent,
    eligibility_problem,
    order_queue,
    plan_assignments,
)
from router.core.refs import PRIORITIES, urgency

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
ANY = TicketNeeds(skill=None, language=None)
BILLING_JA = TicketNeeds(skill="billing", language="ja")


def agent(agent_id: int, *, skills: str = "billing technical", languages: str = "ja en",
          status: str = "online", load: int = 0, capacity: int = 5, last: datetime | None = None,
          routed: bool = True, team: str | None = None) -> AgentSnapshot:
    return AgentSnapshot(id=agent_id, skills=frozenset(skills.split()),
                         languages=frozenset(languages.split()), status=status, load=load, capacity=capacity,
                         last_assigned_at=last, takes_routed_work=routed, team=team)


def queued(ticket_id: int, priority: str = "normal", age_minutes: int = 0,
           needs: TicketNeeds = ANY) -> QueuedTicket:
    return QueuedTicket(ticket_id=ticket_id, urgency=urgency(priority),
                        created_at=T0 - timedelta(minutes=age_minutes), needs=needs)


# --- eligibility ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("candidate", "needs", "problem"), [
    (agent(1), BILLING_JA, None),
    (agent(1, skills="", languages=""), ANY, None),
    (agent(1, routed=False), ANY, "no routed work"),
    (agent(1, status="away"), ANY, "away"),
    (agent(1, status="offline"), ANY, "offline"),
    (agent(1, load=5, capacity=5), ANY, "at capacity"),
    (agent(1, load=7, capacity=5), ANY, "at capacity"),
    (agent(1, load=0, capacity=0), ANY, "no capacity"),
    (agent(1, load=0, capacity=-1), ANY, "no capacity"),
    (agent(1, skills="technical"), BILLING_JA, "missing skill"),
    (agent(1, languages="en"), BILLING_JA, "missing language"),
    (agent(1, team="tier1"), TicketNeeds(None, None, team="tier2"), "other team"),
    (agent(1, team=None), TicketNeeds(None, None, team="tier2"), "other team"),
    (agent(1, team="tier2"), TicketNeeds(None, None, team="tier2"), None),
    (agent(1, team="tier1"), ANY, None),
])
def test_eligibility_rules(candidate: AgentSnapshot, needs: TicketNeeds, problem: str | None) -> None:
    assert eligibility_problem(candidate, needs) == problem


def test_permanent_mismatch_is_reported_before_transient_state() -> None:
    # An offline agent at capacity without the skill could not take the ticket even when back and free.
    tired = agent(1, skills="technical", status="offline", load=5, capacity=5)
    assert eligibility_problem(tired, BILLING_JA) == "missing skill"
    assert eligibility_problem(agent(1, status="offline", load=5, capacity=5), BILLING_JA) == "offline"


# --- choosing ---------------------------------------------------------------------------------------------

def test_only_eligible_agent_is_chosen_over_ineligible_ones() -> None:
    decision = choose_agent(BILLING_JA, [agent(1, languages="en"), agent(2, status="away"), agent(3, load=2)])
    assert decision == RoutingDecision(3, "only eligible agent of 3 (load 2/5)")


def test_lowest_load_ratio_wins_not_lowest_absolute_load() -> None:
    decision = choose_agent(ANY, [agent(1, load=1, capacity=2), agent(2, load=2, capacity=10)])
    assert decision == RoutingDecision(2, "least loaded of 2 eligible (load 2/10)")


def test_equal_ratio_goes_to_least_recently_assigned() -> None:
    candidates = [agent(1, load=1, last=T0), agent(2, load=2, capacity=10, last=T0 - timedelta(hours=1)),
                  agent(3, load=4, last=T0)]
    decision = choose_agent(ANY, candidates)
    assert decision == RoutingDecision(2, "least recently assigned of 3 eligible, tied on load 2/10")


def test_never_assigned_counts_as_least_recent() -> None:
    decision = choose_agent(ANY, [agent(1, last=T0 - timedelta(days=300)), agent(2, last=None)])
    assert decision.agent_id == 2
    assert decision.reason.startswith("least recently assigned")


def test_full_tie_goes_to_lowest_id() -> None:
    assert choose_agent(ANY, [agent(9, last=T0), agent(4, last=T0), agent(7, last=T0)]) == RoutingDecision(
        4, "lowest id of 3 eligible, tied on load 0/5 and last assignment")
    assert choose_agent(ANY, [agent(9), agent(4)]).agent_id == 4


def test_continuity_beats_load_and_recency() -> None:
    needs = TicketNeeds("billing", "ja", previous_agent_id=1)
    decision = choose_agent(needs, [agent(1, load=4, last=T0), agent(2, load=0, last=None)])
    assert decision == RoutingDecision(1, "continuity: agent 1 helped this customer before (load 4/5)")


def test_continuity_is_skipped_when_previous_agent_is_not_eligible_and_says_why() -> None:
    needs = TicketNeeds("billing", "ja", previous_agent_id=1)
    decision = choose_agent(needs, [agent(1, status="offline"), agent(2, load=1), agent(3, load=3)])
    assert decision == RoutingDecision(2, "least loaded of 2 eligible (load 1/5); previous agent 1: offline")
    gone = choose_agent(TicketNeeds(None, None, previous_agent_id=99), [agent(2)])
    assert gone.reason.endswith("; previous agent 99: not a candidate")


def test_queued_reason_counts_why_nobody_fits() -> None:
    candidates = [agent(1, load=5), agent(2, load=5), agent(3, status="offline"), agent(4, languages="en"),
                  agent(5, routed=False)]
    assert choose_agent(BILLING_JA, candidates) == RoutingDecision(
        None, "queued: no available agent with skill billing and language ja"
              " (2 at capacity, 1 missing language, 1 no routed work, 1 offline)")


def test_queued_reason_names_team_and_handles_no_candidates() -> None:
    needs = TicketNeeds(None, None, team="vip")
    assert choose_agent(needs, [agent(1)]).reason == "queued: no available agent with team vip (1 other team)"
    assert choose_agent(ANY, []) == RoutingDecision(None, "queued: no available agent (no candidates)")


# --- queue order ------------------------------------------------------------------------------------------

def test_order_queue_priority_then_age_then_id() -> None:
    tickets = [queued(1, "low", age_minutes=500), queued(2, "normal", age_minutes=10),
               queued(3, "urgent", age_minutes=0), queued(4, "normal", age_minutes=60),
               queued(6, "high", age_minutes=5), queued(5, "high", age_minutes=5)]
    assert [t.ticket_id for t in order_queue(tickets)] == [3, 5, 6, 4, 2, 1]


def test_urgency_refuses_an_unknown_priority() -> None:
    with pytest.raises(ValueError, match="unknown priority 'p0'"):
        urgency("p0")


# --- draining a queue -------------------------------------------------------------------------------------

def test_plan_rotates_among_equals_and_counts_new_load() -> None:
    candidates = [agent(1, capacity=2), agent(2, capacity=2)]
    plan = plan_assignments([queued(i) for i in range(10, 15)], candidates)
    assert [(ticket, decision.agent_id) for ticket, decision in plan] == [(10, 1), (11, 2), (12, 1), (13, 2)]
    assert plan[1][1].reason == "least loaded of 2 eligible (load 0/2)"
    assert plan[2][1].reason == "least recently assigned of 2 eligible, tied on load 1/2"
    assert candidates == [agent(1, capacity=2), agent(2, capacity=2)]  # the snapshot itself is untouched


def test_plan_treats_fresh_assignments_as_newer_than_the_snapshot() -> None:
    candidates = [agent(1, last=T0 + timedelta(days=1)), agent(2, last=T0)]
    plan = plan_assignments([queued(1), queued(2), queued(3)], candidates)
    assert [decision.agent_id for _, decision in plan] == [2, 1, 2]


def test_plan_skips_tickets_nobody_can_take_and_keeps_going() -> None:
    queue = [queued(1, needs=TicketNeeds("shipping", None)), queued(2, needs=BILLING_JA),
             queued(3, needs=TicketNeeds(None, "fr")), queued(4, needs=ANY)]
    plan = plan_assignments(queue, [agent(1, capacity=3)])
    assert [ticket for ticket, _ in plan] == [2, 4]


def test_plan_stops_when_capacity_runs_out() -> None:
    candidates = [agent(1, load=3, capacity=5), agent(2, status="away")]
    plan = plan_assignments([queued(i) for i in range(100)], candidates)
    assert [ticket for ticket, _ in plan] == [0, 1]


# --- properties -------------------------------------------------------------------------------------------

SKILLS = ("billing", "technical", "shipping")
STAMPS = (None, T0, T0 + timedelta(minutes=1), T0 + timedelta(hours=2))  # few values, so ties are common

agent_fields = st.fixed_dictionaries({
    "skills": st.frozensets(st.sampled_from(SKILLS)),
    "languages": st.frozensets(st.sampled_from(("ja", "en"))),
    "status": st.sampled_from(("online", "online", "away", "offline")),
    "load": st.integers(0, 4),
    "capacity": st.integers(-1, 4),
    "last_assigned_at": st.sampled_from(STAMPS),
    "takes_routed_work": st.booleans(),
    "team": st.sampled_from((None, "tier1", "tier2")),
})
snapshots = st.lists(agent_fields, max_size=12).map(
    lambda rows: [AgentSnapshot(id=i + 1, **row) for i, row in enumerate(rows)])
needs_strategy = st.builds(
    TicketNeeds,
    skill=st.none() | st.sampled_from(SKILLS),
    language=st.none() | st.sampled_from(("ja", "en")),
    team=st.none() | st.sampled_from(("tier1", "tier2")),
    previous_agent_id=st.none() | st.integers(1, 14),
)
tickets = st.builds(queued, st.integers(1, 10_000), st.sampled_from(PRIORITIES), st.integers(0, 120),
                    needs_strategy)
queues = st.lists(tickets, max_size=15, unique_by=lambda t: t.ticket_id)
FAST = settings(max_examples=300, deadline=None)


def preference(candidate: AgentSnapshot) -> tuple:
    """The preference order written the slow, obvious way (sort by ratio, never-assigned first, id)."""
    last = candidate.last_assigned_at
    return (candidate.load / candidate.capacity, last is not None, last or T0, candidate.id)


@FAST
@given(needs_strategy, snapshots)
def test_choice_is_eligible_and_best_or_queued_only_when_nobody_fits(
        needs: TicketNeeds, candidates: list[AgentSnapshot]) -> None:
    decision = choose_agent(needs, candidates)
    eligible = [c for c in candidates if eligibility_problem(c, needs) is None]
    if not eligible:
        assert decision.agent_id is None
        assert decision.reason.startswith("queued: ")
        return
    assert not decision.reason.startswith("queued")
    chosen = next(c for c in candidates if c.id == decision.agent_id)
    assert eligibility_problem(chosen, needs) is None
    if any(c.id == needs.previous_agent_id for c in eligible):
        assert decision.agent_id == needs.previous_agent_id
        assert decision.reason.startswith("continuity: ")
    else:
        assert chosen == min(eligible, key=preference)


@FAST
@given(needs_strategy, snapshots, st.randoms(use_true_random=False))
def test_choice_is_deterministic_and_independent_of_candidate_order(needs: TicketNeeds,
                                                                     candidates: list[AgentSnapshot],
                                                                     rng) -> None:
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    assert choose_agent(needs, candidates) == choose_agent(needs, candidates) == choose_agent(needs, shuffled)


@FAST
@given(queues, snapshots, st.randoms(use_true_random=False))
def test_plan_never_exceeds_capacity_and_is_deterministic(queue: list[QueuedTicket],
                                                          candidates: list[AgentSnapshot], rng) -> None:
    plan = plan_assignments(queue, candidates)
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    assert plan == plan_assignments(queue, candidates) == plan_assignments(queue, shuffled)

    by_id = {c.id: c for c in candidates}
    needs_of = {t.ticket_id: t.needs for t in queue}
    assigned = Counter(decision.agent_id for _, decision in plan)
    for agent_id, count in assigned.items():
        assert by_id[agent_id].load + count <= by_id[agent_id].capacity
    for ticket_id, decision in plan:  # loads only grow during a drain, so eligible in the snapshot too
        assert eligibility_problem(by_id[decision.agent_id], needs_of[ticket_id]) is None
    order = [t.ticket_id for t in queue]
    planned = [ticket_id for ticket_id, _ in plan]
    assert planned == sorted(planned, key=order.index)  # queue order kept, each ticket at most once
    assert len(set(planned)) == len(planned)
    # Loads only grow, so a ticket skipped mid-drain still has nobody once the drain is done.
    after = [replace(c, load=c.load + assigned[c.id]) for c in candidates]
    for ticket in queue:
        if ticket.ticket_id not in planned:
            assert all(eligibility_problem(c, ticket.needs) is not None for c in after)


@FAST
@given(queues, st.randoms(use_true_random=False))
def test_order_queue_is_a_total_order_with_priority_before_age(queue: list[QueuedTicket], rng) -> None:
    ordered = order_queue(queue)
    shuffled = list(queue)
    rng.shuffle(shuffled)
    assert order_queue(shuffled) == ordered
    assert sorted(ordered, key=lambda t: t.ticket_id) == sorted(queue, key=lambda t: t.ticket_id)
    ranks = [t.urgency for t in ordered]
    assert ranks == sorted(ranks)  # an urgent ticket precedes every normal one, however old the normal one
    for earlier, later in pairwise(ordered):
        if earlier.urgency == later.urgency:
            assert (earlier.created_at, earlier.ticket_id) < (later.created_at, later.ticket_id)
