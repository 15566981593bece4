"""Storage for agents and teams: config sync, credentials, status, load and the routing log.

An agent's `load` (open tickets assigned) is a counter kept next to `capacity`. New assignments take
a slot in `agents.assignment` with one conditional UPDATE, whose row lock keeps two processes from
pushing an agent past capacity; here are only the unconditional changes (`add_load`, `release_load`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from argon2 import PasswordHasher

from agents.config import AgentConfig, Team

_hasher = PasswordHasher()
AGENT_COLUMNS = ("a.id, a.email, a.name, a.role, a.skills, a.languages, a.capacity, a.chat_capacity, a.status,"
                 " a.load, a.last_assigned_at, t.name AS team")


@dataclass(frozen=True)
class AgentIdentity:
    """Who is calling an agent API."""

    id: int | None
    email: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Configures agents: skills, languages, capacity (SPEC §1, admins)."""
        return self.role == "admin"

    @property
    def is_lead(self) -> bool:
        """Steers the team: reassigns any ticket, sets anyone's status (SPEC §1, team leads)."""
        return self.role in ("admin", "lead")


def token_digest(token: str) -> str:
    """Agent tokens are random and long, so a plain SHA-256 is enough to avoid storing them."""
    return hashlib.sha256(token.encode()).hexdigest()


async def sync_from_config(conn: asyncpg.Connection, teams: Sequence[Team], agents: Sequence[AgentConfig]) -> None:
    """Create/update teams and agents named in config. Passwords are *initial*: set only when the
    agent has none yet, so a password changed in the app is not reset by a restart."""
    async with conn.transaction():
        # Existing agent rows first, in id order: the order every multi-agent change locks them in.
        await conn.execute("SELECT 1 FROM agents WHERE email = ANY($1::text[]) ORDER BY id FOR UPDATE",
                           [agent.email for agent in agents])
        for team in teams:
            await conn.execute("INSERT INTO teams (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", team.name)
        for agent in agents:
            row = await conn.fetchrow(
                "INSERT INTO agents (email, name, team_id, role, skills, languages, capacity, chat_capacity,"
                " status, token_hash)"
                " VALUES ($1, $2, (SELECT id FROM teams WHERE name = $3), $4, $5, $6, $7, $8, 'online', $9)"
                " ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
                " role = EXCLUDED.role, skills = EXCLUDED.skills, languages = EXCLUDED.languages,"
                " capacity = EXCLUDED.capacity, chat_capacity = EXCLUDED.chat_capacity,"
                " token_hash = COALESCE(EXCLUDED.token_hash, agents.token_hash)"
                " RETURNING id, password_hash",
                agent.email, agent.name, agent.team, agent.role, list(agent.skills), list(agent.languages),
                agent.capacity, agent.chat_capacity, token_digest(agent.token) if agent.token else None,
            )
            if agent.password and row["password_hash"] is None:
                await conn.execute("UPDATE agents SET password_hash = $2 WHERE id = $1",
                                   row["id"], _hasher.hash(agent.password))


async def by_token(conn: asyncpg.Connection, token: str) -> AgentIdentity | None:
    row = await conn.fetchrow("SELECT id, email, role FROM agents WHERE token_hash = $1 AND active",
                              token_digest(token))
    return AgentIdentity(row["id"], row["email"], row["role"]) if row else None


async def by_id(conn: asyncpg.Connection, agent_id: int) -> AgentIdentity | None:
    row = await conn.fetchrow("SELECT id, email, role FROM agents WHERE id = $1", agent_id)
    return AgentIdentity(row["id"], row["email"], row["role"]) if row else None


async def find(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    """An agent by numeric id or email."""
    if key.isascii() and key.isdigit():
        return await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents a LEFT JOIN teams t ON t.id = a.team_id"
                                   " WHERE a.id = $1", int(key))
    return await conn.fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents a LEFT JOIN teams t ON t.id = a.team_id"
                               " WHERE a.email = $1", key.strip().lower())


async def list_all(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {AGENT_COLUMNS} FROM agents a LEFT JOIN teams t ON t.id = a.team_id ORDER BY a.id")
    return rows


async def update(conn: asyncpg.Connection, agent_id: int, changes: dict[str, object]) -> None:
    """Apply admin/agent edits; the keys are fixed column names checked by the caller."""
    allowed = ("status", "skills", "languages", "capacity", "chat_capacity")
    columns = [key for key in allowed if key in changes]
    if not columns:
        return
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
    await conn.execute(f"UPDATE agents SET {assignments} WHERE id = $1", agent_id, *(changes[c] for c in columns))


async def add_load(conn: asyncpg.Connection, agent_id: int) -> None:
    """Count a ticket that comes back to its agent (reopened): they own the conversation already,
    so capacity does not refuse it. New assignments go through `agents.assignment`, which checks it."""
    await conn.execute("UPDATE agents SET load = load + 1 WHERE id = $1", agent_id)


async def release_load(conn: asyncpg.Connection, agent_id: int) -> None:
    await conn.execute("UPDATE agents SET load = GREATEST(load - 1, 0) WHERE id = $1", agent_id)


async def log_routing(conn: asyncpg.Connection, ticket_id: int, action: str, reason: str, now: datetime, *,
                      agent_id: int | None = None, actor_id: int | None = None) -> None:
    await conn.execute(
        "INSERT INTO routing_log (ticket_id, action, agent_id, actor_id, reason, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)", ticket_id, action, agent_id, actor_id, reason, now)


def agent_json(row: asyncpg.Record) -> dict[str, object]:
    return {
        "id": row["id"], "email": row["email"], "name": row["name"], "role": row["role"], "team": row["team"],
        "skills": list(row["skills"]), "languages": list(row["languages"]), "capacity": row["capacity"],
        "chat_capacity": row["chat_capacity"], "status": row["status"], "load": row["load"],
        "last_assigned_at": row["last_assigned_at"].isoformat() if row["last_assigned_at"] else None,
    }


async def credentials(conn: asyncpg.Connection, email: str) -> tuple[int, str | None] | None:
    """An active agent's id and password hash, for signing in; None for an unknown or inactive one."""
    row = await conn.fetchrow("SELECT id, password_hash FROM agents WHERE email = $1 AND active", email)
    return (row["id"], row["password_hash"]) if row else None


async def set_preferences(conn: asyncpg.Connection, agent_id: int, ui_language: str | None,
                          timezone: str | None) -> None:
    """An agent's own display choices; None means automatic (Accept-Language, the service timezone)."""
    await conn.execute("UPDATE agents SET ui_language = $2, timezone = $3 WHERE id = $1",
                       agent_id, ui_language, timezone)
