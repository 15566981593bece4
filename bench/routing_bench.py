"""Routing decision latency (SPEC §4: p99 ≤ 2 ms with 1,000 agents).

Times `choose_agent` alone over random but realistic snapshots: most agents online and partly loaded,
2-6 skills and one or two of ja/en each, some tickets carrying a previous agent for continuity.
Run from the repository root: `python -m bench.routing_bench`.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from agents.routing import AgentSnapshot, TicketNeeds, choose_agent

_LANGUAGE_SETS = (frozenset({"ja"}), frozenset({"en"}), frozenset({"ja", "en"}))
_DECISIONS_PER_SNAPSHOT = 100  # a fresh snapshot now and then, as loads change between drains


def _snapshot(rng: random.Random, n_agents: int, skills: list[str], now: datetime) -> list[AgentSnapshot]:
    agents = []
    for agent_id in range(1, n_agents + 1):
        capacity = rng.randint(3, 10)
        agents.append(AgentSnapshot(
            id=agent_id,
            skills=frozenset(rng.sample(skills, rng.randint(2, 6))),
            languages=rng.choice(_LANGUAGE_SETS),
            status=rng.choices(("online", "away", "offline"), weights=(70, 15, 15))[0],
            load=rng.randint(0, capacity),
            capacity=capacity,
            last_assigned_at=None if rng.random() < 0.1 else now - timedelta(seconds=rng.randint(0, 86_400)),
            takes_routed_work=rng.random() > 0.05,
        ))
    return agents


def _needs(rng: random.Random, n_agents: int, skills: list[str]) -> TicketNeeds:
    return TicketNeeds(
        skill=rng.choice(skills) if rng.random() < 0.9 else None,
        language=rng.choice(("ja", "en")) if rng.random() < 0.95 else None,
        previous_agent_id=rng.randint(1, n_agents) if rng.random() < 0.3 else None,
    )


def run(n_agents: int = 1000, n_skills: int = 50, n_decisions: int = 5000, seed: int = 1) -> dict:
    rng = random.Random(seed)
    skills = [f"skill{i}" for i in range(n_skills)]
    now = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    timings: list[int] = []
    agents: list[AgentSnapshot] = []
    for i in range(n_decisions):
        if i % _DECISIONS_PER_SNAPSHOT == 0:
            agents = _snapshot(rng, n_agents, skills, now)
        needs = _needs(rng, n_agents, skills)
        start = time.perf_counter_ns()
        choose_agent(needs, agents)
        timings.append(time.perf_counter_ns() - start)
    timings.sort()
    return {
        "p50_ms": timings[len(timings) // 2] / 1e6,
        "p99_ms": timings[min(len(timings) - 1, len(timings) * 99 // 100)] / 1e6,
        "decisions": n_decisions,
    }


if __name__ == "__main__":
    print(run())
