"""Presence on a ticket (the inbox's collision warning): an open page says it is there, whether its
agent is typing, and that it has gone.

A page repeats its state every `HEARTBEAT` while open; `VIEWING_FOR` covers a couple of missed
heartbeats (a background tab's timers are slowed to once a minute) before a page that vanished
without saying so stops counting, and `TYPING_FOR` does the same for a typist whose page fell silent.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from agents.store import AgentIdentity
from router.core.actions import Context
from router.core.errors import Forbidden, InvalidInput, NotFound
from router.core.refs import parse_ref
from router.core.store import presence, tickets

State = Literal["viewing", "typing", "left"]
STATES: tuple[State, ...] = ("viewing", "typing", "left")
HEARTBEAT = timedelta(seconds=20)
VIEWING_FOR = timedelta(seconds=75)
TYPING_FOR = timedelta(seconds=10)
PAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
"""A page names itself with a random id, so that two tabs of one agent are two pages."""


async def report(ctx: Context, agent: AgentIdentity, ref_text: str, page: str, state: str) -> None:
    """Record that `agent`'s page `page` shows ticket `ref_text` (`viewing`), with a reply being
    written (`typing`), or was closed (`left`)."""
    if state not in STATES:
        raise InvalidInput(f"`state` must be one of {', '.join(STATES)}")
    if not PAGE_ID.fullmatch(page):
        raise InvalidInput("`page` must be 8 to 64 letters, digits, '-' or '_'")
    if agent.id is None:
        raise Forbidden("presence is shown for agents, not for the integration token")
    number = parse_ref(ref_text)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn:
        ticket = await tickets.by_number(conn, number) if number is not None else None
        if ticket is None:
            raise NotFound(f"no ticket {ref_text!r}")
        if state == "left":
            await presence.leave(conn, ticket.id, agent.id, page)
        else:
            await presence.mark(conn, ticket.id, agent.id, page, typing=state == "typing", now=now,
                                expires_at=now + VIEWING_FOR, typing_until=now + TYPING_FOR)
