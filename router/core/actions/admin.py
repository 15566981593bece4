"""What admins change in `/admin`: agents, teams, canned responses, dead outbox items.

Only admins (the integration token counts as one) may call these; leads see the admin pages but
every change here refuses them. Each action validates its input, owns its transaction and records
an event naming who did it, so the JSON API can call the same functions later.

Ownership (README "Config file or admin UI"): what an admin saves here is never undone by a config
reload. An agent created or edited here is owned by the UI (`agents.managed_by`); teams named in
router.toml and the `[[canned]]` responses stay the config file's, read-only here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from agents import assignment
from agents import store as agent_store
from agents.config import AGENT_ROLES, AgentRole
from agents.store import AgentIdentity, Profile
from router.core.actions import Context, drain_after_commit
from router.core.canned import NAME_LIMIT, TEXT_LIMIT, check_text
from router.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from router.core.inbound import single_line, text_value
from router.core.store import canned, events, outbox, sessions

PASSWORD_MIN = 10
PASSWORD_MAX = 1024
MAX_CAPACITY = 1000
MAX_LIST = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_SKILL = re.compile(r"^[\w.-]{1,100}$")


def require_admin(actor: AgentIdentity) -> None:
    if not actor.is_admin:
        raise Forbidden("only admins can change these settings; leads see them read-only")


def _name(value: object, what: str, limit: int = NAME_LIMIT) -> str:
    text = single_line(text_value(value, what, limit=limit, required=True)) or ""
    if not text:
        raise InvalidInput(f"`{what}` is required")
    return text


def language_tag(value: object, what: str = "language") -> str:
    """A language like `ja`, `en` or `pt-br`, lower-case."""
    tag = (text_value(value, what, limit=35, required=True) or "").strip().lower()
    if not _LANGUAGE.match(tag):
        raise InvalidInput(f"`{what}`: {tag!r} is not a language code like \"ja\" or \"en\"")
    return tag


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def agent_role(value: object) -> AgentRole:
    for role in AGENT_ROLES:
        if value == role:
            return role
    raise InvalidInput(f"`role` must be one of {', '.join(AGENT_ROLES)}")


def checked_profile(profile: Profile) -> Profile:
    """`profile` with its texts trimmed, or InvalidInput naming the first field that is wrong."""
    agent_role(profile.role)
    if len(profile.skills) > MAX_LIST or len(profile.languages) > MAX_LIST:
        raise InvalidInput(f"an agent has at most {MAX_LIST} skills and {MAX_LIST} languages")
    skills = _unique([(text_value(s, "skills", limit=100, required=True) or "").strip() for s in profile.skills])
    for skill in skills:
        if not _SKILL.match(skill):
            raise InvalidInput(f"`skills`: {skill!r} is not a skill name (letters, digits, - _ . only)")
    languages = _unique([language_tag(language, "languages") for language in profile.languages])
    for what, value in (("capacity", profile.capacity), ("chat_capacity", profile.chat_capacity)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPACITY:
            raise InvalidInput(f"`{what}` must be a whole number from 0 to {MAX_CAPACITY}")
    return Profile(name=_name(profile.name, "name"), team_id=profile.team_id, role=profile.role, skills=skills,
                   languages=languages, capacity=profile.capacity, chat_capacity=profile.chat_capacity)


def _password(value: object) -> str:
    password = text_value(value, "password", limit=PASSWORD_MAX, required=True) or ""
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(f"the password must have at least {PASSWORD_MIN} characters")
    return password


async def _team_exists(conn: asyncpg.Connection, team_id: int | None) -> None:
    if team_id is not None and await agent_store.team(conn, team_id) is None:
        raise InvalidInput(f"no team {team_id}")


async def _agent(conn: asyncpg.Connection, agent_id: int) -> asyncpg.Record:
    row = await agent_store.directory_entry(conn, agent_id, lock=True)
    if row is None:
        raise NotFound(f"no agent {agent_id}")
    return row


def _changes(before: asyncpg.Record, after: Profile) -> dict[str, Any]:
    """The fields an edit changed, for the event (and so the history says what happened)."""
    old = {"name": before["name"], "team_id": before["team_id"], "role": before["role"],
           "skills": list(before["skills"]), "languages": list(before["languages"]),
           "capacity": before["capacity"], "chat_capacity": before["chat_capacity"]}
    new = {"name": after.name, "team_id": after.team_id, "role": after.role, "skills": list(after.skills),
           "languages": list(after.languages), "capacity": after.capacity, "chat_capacity": after.chat_capacity}
    return {key: value for key, value in new.items() if old[key] != value}


# -- agents -----------------------------------------------------------------------------------------

async def create_agent(ctx: Context, actor: AgentIdentity, email: str, profile: Profile, password: str) -> int:
    """A new agent, owned by the admin UI, signing in with `password`; returns their id."""
    require_admin(actor)
    address = (text_value(email, "email", limit=320, required=True) or "").strip().lower()
    if not _EMAIL.match(address):
        raise InvalidInput(f"{address!r} is not an email address")
    profile = checked_profile(profile)
    password_hash = await asyncio.to_thread(agent_store.hash_password, _password(password))
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _team_exists(conn, profile.team_id)
        agent_id = await agent_store.create(conn, address, profile, password_hash)
        if agent_id is None:
            raise Conflict(f"there is already an agent {address}")
        await events.record(conn, None, "agent.created", {"agent_id": agent_id, "by": actor.email}, now)
    return agent_id


async def edit_agent(ctx: Context, actor: AgentIdentity, agent_id: int, profile: Profile) -> None:
    """Change an agent's profile. From then on the admin UI owns the agent: router.toml no longer
    changes them (an admin can hand them back). Admins cannot change their own role, so nobody
    locks the last admin out by accident."""
    require_admin(actor)
    profile = checked_profile(profile)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await _agent(conn, agent_id)
        if actor.id == agent_id and profile.role != before["role"]:
            raise Conflict("you cannot change your own role; ask another admin")
        await _team_exists(conn, profile.team_id)
        await agent_store.set_profile(conn, agent_id, profile)
        await events.record(conn, None, "agent.updated",
                            {"agent_id": agent_id, "by": actor.email, **_changes(before, profile)}, now)
    await drain_after_commit(ctx, now)  # more capacity or new skills may fit waiting tickets


async def hand_back_to_config(ctx: Context, actor: AgentIdentity, agent_id: int) -> None:
    """Give an agent back to router.toml: their `[[agents]]` entry applies now and on every reload."""
    require_admin(actor)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _agent(conn, agent_id)
        entry = next((a for a in ctx.config.agents if a.email == row["email"]), None)
        if entry is None:
            raise Conflict(f"{row['email']} is not in {ctx.config.source}: there is nothing to hand back to")
        await agent_store.hand_back_to_config(conn, entry)
        await events.record(conn, None, "agent.updated",
                            {"agent_id": agent_id, "by": actor.email, "managed_by": "config"}, now)
    await drain_after_commit(ctx, now)


async def _release_all(conn: asyncpg.Connection, agent_id: int, reason: str, now: datetime,
                       actor: AgentIdentity) -> int:
    """Every open or pending ticket of the agent back to its team queue, each with `reason` in its
    routing log; `assignment.transfer` gives back one unit of load per ticket, so the counter stays true."""
    held = await agent_store.open_assignments(conn, agent_id)
    for ticket in held:
        await assignment.transfer(conn, ticket, None, reason, now, actor.id)
    return len(held)


async def deactivate_agent(ctx: Context, actor: AgentIdentity, agent_id: int) -> int:
    """The agent can no longer sign in or use their token, their sessions end at once, they go
    offline, and their open tickets go back to the team queue (then to whoever fits). Their history
    stays. Returns how many tickets were released."""
    require_admin(actor)
    if actor.id == agent_id:
        raise Conflict("you cannot deactivate yourself; ask another admin")
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await agent_store.directory_entry(conn, agent_id)
        if row is None:
            raise NotFound(f"no agent {agent_id}")
        if not row["active"]:
            raise Conflict(f"{row['name']} is already deactivated")
        reason = f"{row['name']} was deactivated by {actor.email}: back to the team queue"
        # Tickets first, then the agent row (the lock order of every change). Offline stops new routed
        # work; the second pass catches a ticket routed to them between the first pass and that.
        released = await _release_all(conn, agent_id, reason, now, actor)
        await agent_store.deactivate(conn, agent_id)
        released += await _release_all(conn, agent_id, reason, now, actor)
        await sessions.end_all_for(conn, agent_id)
        await events.record(conn, None, "agent.deactivated",
                            {"agent_id": agent_id, "by": actor.email, "released": released}, now)
    await drain_after_commit(ctx, now)
    return released


async def reactivate_agent(ctx: Context, actor: AgentIdentity, agent_id: int) -> None:
    """They may sign in and use their token again; they stay offline until they set their status."""
    require_admin(actor)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _agent(conn, agent_id)
        if row["active"]:
            raise Conflict(f"{row['name']} is active already")
        await agent_store.reactivate(conn, agent_id)
        await events.record(conn, None, "agent.reactivated", {"agent_id": agent_id, "by": actor.email}, now)


async def reset_password(ctx: Context, actor: AgentIdentity, agent_id: int, password: str) -> None:
    """Set a new password (argon2) and end every session of the agent, this admin's own included
    when it is their own password."""
    require_admin(actor)
    password_hash = await asyncio.to_thread(agent_store.hash_password, _password(password))
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _agent(conn, agent_id)
        await agent_store.set_password(conn, agent_id, password_hash, now)
        await sessions.end_all_for(conn, agent_id)
        await events.record(conn, None, "agent.password_reset", {"agent_id": agent_id, "by": actor.email}, now)


# -- teams ------------------------------------------------------------------------------------------

def _team_name(value: object) -> str:
    return _name(value, "team name", limit=100)


async def create_team(ctx: Context, actor: AgentIdentity, name: str) -> int:
    require_admin(actor)
    name = _team_name(name)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        team_id = await agent_store.create_team(conn, name)
        if team_id is None:
            raise Conflict(f"there is already a team named {name!r}")
        await events.record(conn, None, "team.created", {"team_id": team_id, "name": name, "by": actor.email}, now)
    return team_id


def config_team_names(ctx: Context) -> frozenset[str]:
    """Teams router.toml names: its topics and agents refer to them by name, so they are renamed there."""
    return frozenset(team.name for team in ctx.config.teams)


async def rename_team(ctx: Context, actor: AgentIdentity, team_id: int, name: str) -> None:
    require_admin(actor)
    name = _team_name(name)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await agent_store.team(conn, team_id, lock=True)
        if row is None:
            raise NotFound(f"no team {team_id}")
        if row["name"] in config_team_names(ctx):
            raise Conflict(f"the team {row['name']!r} is named in {ctx.config.source}; rename it there")
        if row["name"] == name:
            return
        if not await agent_store.rename_team(conn, team_id, name):
            raise Conflict(f"there is already a team named {name!r}")
        await events.record(conn, None, "team.renamed",
                            {"team_id": team_id, "from": row["name"], "to": name, "by": actor.email}, now)


# -- canned responses -------------------------------------------------------------------------------

def _canned_fields(ctx: Context, name: str, text: str, language: str | None) -> tuple[str, str, str | None]:
    """Trimmed name, text with plain line ends, language or None (any): else InvalidInput saying why,
    placeholder problems included (the rule router.toml's `[[canned]]` follows)."""
    name = _name(name, "name")
    body = (text_value(text, "text", limit=TEXT_LIMIT, required=True) or "").replace("\r\n", "\n").strip()
    problem = check_text(body)
    if problem:
        raise InvalidInput(f"check the text: {problem}")
    tag = language_tag(language) if language not in (None, "") else None
    clash = next((c for c in ctx.config.canned if c.name.casefold() == name.casefold() and c.language == tag), None)
    if clash is not None:
        raise Conflict(f"{ctx.config.source} already has a canned response {clash.name!r} for "
                       f"{tag or 'any language'}; choose another name")
    return name, body, tag


def _canned_taken(name: str, language: str | None) -> Conflict:
    return Conflict(f"there is already a canned response {name!r} for {language or 'any language'}")


async def create_canned(ctx: Context, actor: AgentIdentity, name: str, text: str, language: str | None) -> int:
    require_admin(actor)
    name, text, language = _canned_fields(ctx, name, text, language)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        canned_id = await canned.create(conn, name=name, text=text, language=language, actor_id=actor.id, now=now)
        if canned_id is None:
            raise _canned_taken(name, language)
        await events.record(conn, None, "canned.created", {"canned_id": canned_id, "by": actor.email}, now)
    return canned_id


async def update_canned(ctx: Context, actor: AgentIdentity, canned_id: int, name: str, text: str,
                        language: str | None) -> None:
    require_admin(actor)
    name, text, language = _canned_fields(ctx, name, text, language)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await canned.get(conn, canned_id, lock=True) is None:
            raise NotFound(f"no canned response {canned_id}")
        if not await canned.update(conn, canned_id, name=name, text=text, language=language, actor_id=actor.id,
                                   now=now):
            raise _canned_taken(name, language)
        await events.record(conn, None, "canned.updated", {"canned_id": canned_id, "by": actor.email}, now)


async def delete_canned(ctx: Context, actor: AgentIdentity, canned_id: int) -> None:
    require_admin(actor)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await canned.delete(conn, canned_id):
            raise NotFound(f"no canned response {canned_id}")
        await events.record(conn, None, "canned.deleted", {"canned_id": canned_id, "by": actor.email}, now)


# -- outbox -----------------------------------------------------------------------------------------

async def retry_outbox_item(ctx: Context, actor: AgentIdentity, item_id: int) -> None:
    """Send a dead item again (due now, a fresh run of attempts). One that died "interrupted" may
    have arrived already, so this may deliver it twice: the page says so before the button."""
    require_admin(actor)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        item = await outbox.retry_dead(conn, item_id, now)
        if item is None:
            raise Conflict(f"outbox item {item_id} is not dead (already retried, or sent)")
        await events.record(conn, item["ticket_id"], "outbox.retried",
                            {"id": item_id, "kind": item["kind"], "by": actor.email}, now)
