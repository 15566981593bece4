"""Every change an agent, the inbox, Slack or the API can make, as one function each.

The JSON API, the inbox pages and the Slack buttons call these and nothing else, so all of them
behave alike. Each action checks who may do it, owns its transaction, and runs what follows the
commit (giving freed slots to waiting tickets). Reads for display live in the stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from agents import assignment
from router.config import Config
from router.core.clock import Clock
from router.core.errors import InvalidInput, NotFound
from router.core.refs import PRIORITIES, parse_ref
from router.core.store import tickets
from router.core.store.tickets import Ticket

log = logging.getLogger(__name__)
MOST_URGENT_FIRST = tuple(reversed(PRIORITIES))


@dataclass(frozen=True)
class Context:
    """What every action needs: the database, the configuration in force, and the time."""

    pool: asyncpg.Pool
    config: Config
    clock: Clock


def agent_text(text: str, limit: int, what: str) -> str:
    """What an agent wrote (a reply, a note), trimmed: required, at most `limit` characters."""
    text = text.strip()
    if not text:
        raise InvalidInput("`text` is required")
    if len(text) > limit:
        raise InvalidInput(f"the {what} is longer than {limit} characters")
    return text


async def ticket_for_update(conn: asyncpg.Connection, ref_text: str) -> Ticket:
    """The ticket named `T-n`, locked for this transaction, or NotFound."""
    number = parse_ref(ref_text)
    ticket = await tickets.by_number(conn, number, lock=True) if number is not None else None
    if ticket is None:
        raise NotFound(f"no ticket {ref_text!r}")
    return ticket


async def drain_queue(pool: asyncpg.Pool, now: datetime) -> int:
    """Give waiting tickets to agents who can take them now, most urgent first."""
    return await assignment.drain_queue(pool, now, MOST_URGENT_FIRST)


async def drain_after_commit(ctx: Context, now: datetime) -> None:
    """After a change that may free a slot: the change is committed already, so a failure here is
    logged, not answered as an error; the periodic queue sweep retries."""
    try:
        await drain_queue(ctx.pool, now)
    except Exception:
        log.exception("queue drain after an agent action failed; the periodic sweep will retry")
