"""Inbox sessions and failed sign-ins: the only writer of `agent_sessions` and `login_failures`.

A session is found by the SHA-256 of the cookie's random id and only while its agent is active and
the session is younger than the agent's last password change, so deactivation and a new password
end every session at once, in every process, with no cache to invalidate.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from agents.store import AgentIdentity

SESSION_LIFETIME = timedelta(hours=12)
"""Idle sessions end after this; every request within it slides the expiry forward."""
TOUCH_EVERY = timedelta(minutes=1)
"""A session's expiry is written at most this often, not on every request."""


@dataclass(frozen=True)
class SignedIn:
    """The agent behind a session, with what the pages need on every request."""

    agent_id: int
    email: str
    name: str
    role: str
    ui_language: str | None
    timezone: str | None
    csrf_token: str
    session_hash: str

    @property
    def identity(self) -> AgentIdentity:
        """Who acts, as `router.core.actions` take it."""
        return AgentIdentity(self.agent_id, self.email, self.role)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create(conn: asyncpg.Connection, agent_id: int, now: datetime, *, address: str | None,
                 user_agent: str | None) -> str:
    """A new session for `agent_id`; returns the random id for the cookie (never stored as is)."""
    session_id = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO agent_sessions (id_hash, agent_id, csrf_token, created_at, last_seen_at, expires_at,"
        " address, user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
        _digest(session_id), agent_id, secrets.token_urlsafe(32), now, now + SESSION_LIFETIME,
        address, (user_agent or "")[:300] or None)
    return session_id


async def lookup(conn: asyncpg.Connection, session_id: str, now: datetime) -> SignedIn | None:
    """The signed-in agent, sliding the expiry forward (at most once a minute), or None."""
    row = await conn.fetchrow(
        "WITH found AS (SELECT s.id_hash, s.csrf_token, s.last_seen_at, a.id, a.email, a.name, a.role,"
        " a.ui_language, a.timezone FROM agent_sessions s JOIN agents a ON a.id = s.agent_id"
        " WHERE s.id_hash = $1 AND s.expires_at > $2 AND a.active"
        " AND (a.password_changed_at IS NULL OR s.created_at >= a.password_changed_at)),"
        " touched AS (UPDATE agent_sessions s SET last_seen_at = $2, expires_at = $2 + $3::interval"
        " FROM found WHERE s.id_hash = found.id_hash AND found.last_seen_at < $2 - $4::interval)"
        " SELECT * FROM found",
        _digest(session_id), now, SESSION_LIFETIME, TOUCH_EVERY)
    if row is None:
        return None
    return SignedIn(agent_id=row["id"], email=row["email"], name=row["name"], role=row["role"],
                    ui_language=row["ui_language"], timezone=row["timezone"], csrf_token=row["csrf_token"],
                    session_hash=row["id_hash"])


async def end(conn: asyncpg.Connection, session_hash: str) -> None:
    await conn.execute("DELETE FROM agent_sessions WHERE id_hash = $1", session_hash)


async def end_all_for(conn: asyncpg.Connection, agent_id: int) -> None:
    """Deactivation and password resets call this too, so no row outlives its meaning."""
    await conn.execute("DELETE FROM agent_sessions WHERE agent_id = $1", agent_id)


async def purge_expired(conn: asyncpg.Connection, now: datetime) -> None:
    """Drop ended sessions and failure counts whose window and lock are over (both indexed or tiny);
    run at each sign-in, so the tables stay small without a background job."""
    await conn.execute("DELETE FROM agent_sessions WHERE expires_at <= $1", now)
    await conn.execute("DELETE FROM login_failures WHERE window_start < $1 AND (locked_until IS NULL"
                       " OR locked_until < $2)", now - timedelta(days=1), now)


@dataclass(frozen=True)
class Throttle:
    """How many failures a key may have within `window` before it is locked for `lock_for`."""

    failures: int
    window: timedelta
    lock_for: timedelta


async def locked_until(conn: asyncpg.Connection, keys: list[str], now: datetime) -> datetime | None:
    """The latest lock among `keys` still in force, or None."""
    value: datetime | None = await conn.fetchval(
        "SELECT max(locked_until) FROM login_failures WHERE key = ANY($1::text[]) AND locked_until > $2",
        keys, now)
    return value


async def record_failure(conn: asyncpg.Connection, key: str, throttle: Throttle, now: datetime) -> None:
    """Count a failure for `key` in its window; reaching the limit locks the key. One statement, so
    concurrent failures in several processes are all counted."""
    await conn.execute(
        "INSERT INTO login_failures AS f (key, failures, window_start) VALUES ($1, 1, $2)"
        " ON CONFLICT (key) DO UPDATE SET"
        " failures = CASE WHEN f.window_start <= $2 - $3::interval THEN 1 ELSE f.failures + 1 END,"
        " window_start = CASE WHEN f.window_start <= $2 - $3::interval THEN $2 ELSE f.window_start END,"
        " locked_until = CASE WHEN f.window_start > $2 - $3::interval AND f.failures + 1 >= $4"
        "   THEN $2 + $5::interval ELSE f.locked_until END",
        key, now, throttle.window, throttle.failures, throttle.lock_for)


async def clear_failures(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("DELETE FROM login_failures WHERE key = $1", key)
