"""Signing in and out of the inbox, with throttling per account and per client address.

Every refusal reads the same whether the account exists or not (no account enumeration), and an
unknown address costs the same argon2 work as a wrong password, so timing does not tell either.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agents import store as agent_store
from router.core.actions import Context
from router.core.errors import RateLimited, Unauthorized
from router.core.store import sessions
from router.core.store.sessions import Throttle

PER_ACCOUNT = Throttle(failures=5, window=timedelta(minutes=15), lock_for=timedelta(minutes=15))
PER_ADDRESS = Throttle(failures=20, window=timedelta(minutes=15), lock_for=timedelta(minutes=15))
WRONG_CREDENTIALS = "The email address or the password is not right."

_hasher = PasswordHasher()
_UNKNOWN_ACCOUNT_HASH = _hasher.hash("an account that does not exist")


class SignInThrottled(RateLimited):
    """Too many failures for the account or the address: try again after `until`."""

    def __init__(self, until: datetime, now: datetime):
        minutes = max(1, int((until - now).total_seconds() + 59) // 60)
        super().__init__(f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}.")
        self.until = until


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def sign_in(ctx: Context, email: str, password: str, *, address: str, user_agent: str | None) -> str:
    """A new session id for the agent with these credentials; `Unauthorized` or `SignInThrottled`."""
    now = ctx.clock()
    email = email.strip().lower()[:320]
    keys = [f"account:{email}", f"address:{address}"]
    async with ctx.pool.acquire() as conn:
        until = await sessions.locked_until(conn, keys, now)
        if until is not None:
            raise SignInThrottled(until, now)
        found = await agent_store.credentials(conn, email)
    agent_id, password_hash = found if found is not None else (None, None)
    stored_hash = password_hash or _UNKNOWN_ACCOUNT_HASH
    # argon2 takes tens of milliseconds of CPU: off the event loop, so other requests keep flowing.
    matches = await asyncio.to_thread(_verify, stored_hash, password[:1024])
    async with ctx.pool.acquire() as conn:
        if agent_id is None or not password_hash or not matches:
            await sessions.record_failure(conn, keys[0], PER_ACCOUNT, now)
            await sessions.record_failure(conn, keys[1], PER_ADDRESS, now)
            raise Unauthorized(WRONG_CREDENTIALS)
        await sessions.clear_failures(conn, keys[0])
        await sessions.purge_expired(conn, now)
        return await sessions.create(conn, agent_id, now, address=address, user_agent=user_agent)


async def sign_out(ctx: Context, session_hash: str) -> None:
    async with ctx.pool.acquire() as conn:
        await sessions.end(conn, session_hash)


async def current(ctx: Context, session_id: str) -> sessions.SignedIn | None:
    async with ctx.pool.acquire() as conn:
        return await sessions.lookup(conn, session_id, ctx.clock())


async def set_preferences(ctx: Context, agent_id: int, ui_language: str | None, timezone: str | None) -> None:
    """An agent's own display choices; None means automatic (Accept-Language, the service timezone)."""
    async with ctx.pool.acquire() as conn:
        await agent_store.set_preferences(conn, agent_id, ui_language, timezone)
