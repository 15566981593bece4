"""Storage for agents and teams: config sync, credentials, status, load and the routing log.

An agent's `load` (open tickets assigned) is a counter kept next to `capacity`. New assignments take
a slot in `agents.assignment` with one conditional UPDATE, whose row lock keeps two processes from
pushing an agent past capacity; here are only the unconditional changes (`add_load`, `release_load`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from argon2 import PasswordHasher

from agents.config import AgentConfig, AgentRole, Team

log = logging.getLogger(__name__)
_hasher = PasswordHasher()
AGENT_COLUMNS = ("a.id, a.email, a.name, a.role, a.skills, a.languages, a.capacity, a.chat_capacity, a.status,"
                 " a.load, a.last_assigned_at, a.active, t.name AS team")


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


CONFIG_OWNED_FIELDS = ("name", "team", "role", "skills", "languages", "capacity", "chat_capacity", "token")
"""What an `[[agents]]` entry sets on an agent the config owns (`managed_by = 'config'`). An agent created
or edited in the admin UI is owned by the UI (`'admin'`): the sync leaves it alone, so a restart or
SIGHUP never undoes an admin's edit. Passwords, `active` and status are never the sync's business."""

_UPSERT_FROM_CONFIG = (
    "INSERT INTO agents (email, name, team_id, role, skills, languages, capacity, chat_capacity,"
    " status, token_hash)"
    " VALUES ($1, $2, (SELECT id FROM teams WHERE name = $3), $4, $5, $6, $7, $8, 'online', $9)"
    " ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, team_id = EXCLUDED.team_id,"
    " role = EXCLUDED.role, skills = EXCLUDED.skills, languages = EXCLUDED.languages,"
    " capacity = EXCLUDED.capacity, chat_capacity = EXCLUDED.chat_capacity,"
    " token_hash = COALESCE(EXCLUDED.token_hash, agents.token_hash)"
    " WHERE agents.managed_by = 'config'"
    " RETURNING id, password_hash"
)


async def _apply_config_entry(conn: asyncpg.Connection, agent: AgentConfig) -> bool:
    """Create or update one config-owned agent from its `[[agents]]` entry; False (nothing changed)
    when the admin UI owns the agent."""
    row = await conn.fetchrow(
        _UPSERT_FROM_CONFIG, agent.email, agent.name, agent.team, agent.role, list(agent.skills),
        list(agent.languages), agent.capacity, agent.chat_capacity,
        token_digest(agent.token) if agent.token else None)
    if row is None:
        return False
    if agent.password and row["password_hash"] is None:
        await conn.execute("UPDATE agents SET password_hash = $2 WHERE id = $1",
                           row["id"], _hasher.hash(agent.password))
    return True


async def sync_from_config(conn: asyncpg.Connection, teams: Sequence[Team],
                           agents: Sequence[AgentConfig]) -> list[str]:
    """Create teams named in config, and create/update the agents it owns (`CONFIG_OWNED_FIELDS`).
    Passwords are *initial*: set only when the agent has none yet, so a password changed in the app
    is not reset by a restart. Returns the emails of config entries skipped because the admin UI
    owns those agents (logged, so whoever edited router.toml learns why nothing changed)."""
    skipped: list[str] = []
    async with conn.transaction():
        # Existing agent rows first, in id order: the order every multi-agent change locks them in.
        await conn.execute("SELECT 1 FROM agents WHERE email = ANY($1::text[]) ORDER BY id FOR UPDATE",
                           [agent.email for agent in agents])
        for team in teams:
            await conn.execute("INSERT INTO teams (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", team.name)
        for agent in agents:
            if not await _apply_config_entry(conn, agent):
                skipped.append(agent.email)
    if skipped:
        log.warning("config: [[agents]] entries not applied, these agents are managed in the admin UI"
                    " (hand them back to the config file there): %s", ", ".join(skipped))
    return skipped


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
    """Apply admin/agent edits; the keys are fixed column names checked by the caller. An edit of the
    profile (not of the status) makes the admin side own the agent, as an edit in `/admin` does, so
    a config reload keeps it (`CONFIG_OWNED_FIELDS`)."""
    allowed = ("status", "skills", "languages", "capacity", "chat_capacity")
    columns = [key for key in allowed if key in changes]
    if not columns:
        return
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
    if set(columns) - {"status"}:
        assignments += ", managed_by = 'admin'"
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


# -- the admin UI: the agent directory, profiles, activation, passwords, teams ---------------------

@dataclass(frozen=True)
class Profile:
    """What an admin sets on an agent; the rest (status, load) is the agent's working state."""

    name: str
    team_id: int | None
    role: AgentRole
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    capacity: int
    chat_capacity: int


DIRECTORY_COLUMNS = f"{AGENT_COLUMNS}, a.team_id, a.managed_by"


async def directory(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every agent with what the admin pages show: active ones first, then by name."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {DIRECTORY_COLUMNS} FROM agents a LEFT JOIN teams t ON t.id = a.team_id"
        " ORDER BY a.active DESC, lower(a.name), a.id")
    return rows


async def directory_entry(conn: asyncpg.Connection, agent_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {DIRECTORY_COLUMNS} FROM agents a LEFT JOIN teams t ON t.id = a.team_id WHERE a.id = $1"
        f"{' FOR UPDATE OF a' if lock else ''}", agent_id)
    return row


def hash_password(password: str) -> str:
    """An argon2 hash; tens of milliseconds of CPU, so async callers run it in a thread."""
    return _hasher.hash(password)


async def create(conn: asyncpg.Connection, email: str, profile: Profile, password_hash: str) -> int | None:
    """An agent created in the admin UI (owned by it), offline until they sign in and set their
    status. None when the email is taken."""
    agent_id: int | None = await conn.fetchval(
        "INSERT INTO agents (email, name, team_id, role, skills, languages, capacity, chat_capacity, status,"
        " password_hash, managed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'offline', $9, 'admin')"
        " ON CONFLICT (email) DO NOTHING RETURNING id",
        email, profile.name, profile.team_id, profile.role, list(profile.skills), list(profile.languages),
        profile.capacity, profile.chat_capacity, password_hash)
    return agent_id


async def set_profile(conn: asyncpg.Connection, agent_id: int, profile: Profile) -> None:
    """An admin's edit; from now on the admin UI owns the agent, so a config reload keeps it."""
    await conn.execute(
        "UPDATE agents SET name = $2, team_id = $3, role = $4, skills = $5, languages = $6, capacity = $7,"
        " chat_capacity = $8, managed_by = 'admin' WHERE id = $1",
        agent_id, profile.name, profile.team_id, profile.role, list(profile.skills), list(profile.languages),
        profile.capacity, profile.chat_capacity)


async def hand_back_to_config(conn: asyncpg.Connection, agent: AgentConfig) -> bool:
    """The config owns `agent` again and its `[[agents]]` entry applies now. False when no such agent."""
    found = await conn.fetchval("UPDATE agents SET managed_by = 'config' WHERE email = $1 RETURNING id", agent.email)
    if found is None:
        return False
    await _apply_config_entry(conn, agent)
    return True


@dataclass(frozen=True)
class HeldTicket:
    """A ticket an agent holds, as `agents.assignment.transfer` takes it."""

    id: int
    status: str
    assignee_id: int | None


async def open_assignments(conn: asyncpg.Connection, agent_id: int) -> list[HeldTicket]:
    """The agent's open and pending tickets, locked, in id order: tickets are locked before agent
    rows, the order every other change takes them in."""
    rows = await conn.fetch(
        "SELECT id, status, assignee_id FROM tickets WHERE assignee_id = $1 AND status IN ('open', 'pending')"
        " ORDER BY id FOR UPDATE", agent_id)
    return [HeldTicket(row["id"], row["status"], row["assignee_id"]) for row in rows]


async def deactivate(conn: asyncpg.Connection, agent_id: int) -> None:
    """No more sign-in, token or routed work (`active`, status offline). Call after their tickets
    were released: they then hold none, so their load is zero."""
    await conn.execute("UPDATE agents SET active = false, status = 'offline', load = 0 WHERE id = $1", agent_id)


async def reactivate(conn: asyncpg.Connection, agent_id: int) -> None:
    """They may sign in again; they stay offline until they set their status."""
    await conn.execute("UPDATE agents SET active = true WHERE id = $1", agent_id)


async def set_password(conn: asyncpg.Connection, agent_id: int, password_hash: str, now: datetime) -> None:
    """A new password; sessions created before `now` end (`router.core.store.sessions.lookup`)."""
    await conn.execute("UPDATE agents SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
                       agent_id, password_hash, now)


async def teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every team with how many active agents it has, by name."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT t.id, t.name, count(a.id) FILTER (WHERE a.active) AS members FROM teams t"
        " LEFT JOIN agents a ON a.team_id = t.id GROUP BY t.id ORDER BY lower(t.name), t.id")
    return rows


async def team(conn: asyncpg.Connection, team_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT id, name FROM teams WHERE id = $1{' FOR UPDATE' if lock else ''}", team_id)
    return row


async def create_team(conn: asyncpg.Connection, name: str) -> int | None:
    """The new team's id, or None when the name is taken (ignoring case: "Support" is "support")."""
    team_id: int | None = await conn.fetchval(
        "INSERT INTO teams (name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM teams WHERE lower(name) = lower($1))"
        " ON CONFLICT (name) DO NOTHING RETURNING id", name)
    return team_id


async def rename_team(conn: asyncpg.Connection, team_id: int, name: str) -> bool:
    """False, and nothing changed, when another team has that name (ignoring case)."""
    if await conn.fetchval("SELECT 1 FROM teams WHERE lower(name) = lower($2) AND id <> $1", team_id, name):
        return False
    try:
        async with conn.transaction():  # a savepoint: the clash is answered, the caller's work goes on
            await conn.execute("UPDATE teams SET name = $2 WHERE id = $1", team_id, name)
    except asyncpg.UniqueViolationError:
        return False
    return True
