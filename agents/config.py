"""Agent and team configuration types: what `[[teams]]` and `[[agents]]` in the config file say.

They live here, not in `router.config`, so `agents/` never imports `router` (ARCHITECTURE: the
import direction); the config loader builds these and hands them over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

AgentRole = Literal["agent", "lead", "admin"]
AGENT_ROLES: tuple[AgentRole, ...] = get_args(AgentRole)
AgentStatus = Literal["online", "away", "offline"]
AGENT_STATUSES: tuple[AgentStatus, ...] = get_args(AgentStatus)


@dataclass(frozen=True)
class Team:
    name: str


@dataclass(frozen=True)
class AgentConfig:
    email: str
    name: str
    team: str | None
    role: AgentRole = "agent"
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    capacity: int = 5
    chat_capacity: int = 3
    password: str | None = None
    token: str | None = None
