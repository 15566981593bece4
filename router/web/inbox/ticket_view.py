"""What the ticket page shows, read in one place: the live part (header, timeline, SLA clocks, customer
panel, routing log), refreshed on every change, and the forms' choices (reply channels, canned
responses, transfer targets), read only when a form is drawn.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from router.config import Config
from router.core.canned import Canned, fill
from router.core.errors import NotFound
from router.core.refs import parse_ref, ref
from router.core.store import canned as canned_store
from router.core.store import customer_notes, reads, timeline
from router.core.store.customer_notes import CustomerNote
from router.core.store.sessions import SignedIn
from router.core.store.timeline import Header, PageFacts, ReplyChoices, SystemEntry, TimelineEntry
from router.web.http import services
from router.web.inbox.render import page_language, page_timezone, render
from router.web.inbox.ticket_messages import MessageHtml, runs, time_tag
from router.web.inbox.ticket_words import WORDS, Named, names

ClockState = Literal["running", "warned", "late", "paused", "met", "met_late"]


class TicketRoute(Route):
    """A route under `/inbox/{ref}` that matches only ticket references, so the other inbox paths
    (`/inbox/live`, a list's sub-paths) stay theirs whatever order the routes are listed in."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and parse_ref(child["path_params"].get("ref")) is None:
            return Match.NONE, {}
        return match, child


def ticket_number(ref_text: str) -> int:
    number = parse_ref(ref_text)
    if number is None:
        raise NotFound(f"no ticket {ref_text!r}")
    return number


@dataclass(frozen=True)
class Clock:
    """An SLA clock as the page shows it."""

    target: str
    cycle: int
    state: ClockState
    due_at: datetime
    since: datetime | None  # paused or met at


def clock_view(row: dict[str, Any], now: datetime) -> Clock:
    def at(key: str) -> datetime | None:
        value = row[key]
        return datetime.fromisoformat(value) if value else None

    due_at, warn_at, paused_at, met_at = at("due_at"), at("warn_at"), at("paused_at"), at("met_at")
    assert due_at is not None and warn_at is not None
    state: ClockState
    since = None
    if met_at is not None:
        state, since = ("met" if met_at <= due_at else "met_late"), met_at
    elif paused_at is not None:
        state, since = "paused", paused_at
    elif now >= due_at:
        state = "late"
    elif now >= warn_at:
        state = "warned"
    else:
        state = "running"
    return Clock(row["target"], row["cycle"], state, due_at, since)


@dataclass(frozen=True)
class LivePart:
    """Everything on the page that changes when the ticket does (refreshed over SSE)."""

    facts: PageFacts
    entries: list[TimelineEntry]
    routing: list[SystemEntry]
    clocks: list[Clock]
    notes: list[CustomerNote]

    @property
    def header(self) -> Header:
        return self.facts.header

    @property
    def customer(self) -> dict[str, Any]:
        return self.facts.customer

    @property
    def ref(self) -> str:
        return self.facts.header.ticket.ref


async def load_live(conn: asyncpg.Connection, number: int, agent_id: int, now: datetime) -> LivePart:
    facts = await timeline.page_facts(conn, number, agent_id)
    if facts is None:
        raise NotFound(f"no ticket {ref(number)}")
    entries = await timeline.timeline(conn, facts.header.ticket.id)
    return LivePart(
        facts=facts,
        entries=entries,
        routing=[e for e in entries if isinstance(e, SystemEntry) and e.source == "routing"],
        clocks=[clock_view(row, now) for row in facts.clocks],
        notes=await customer_notes.for_customer(conn, facts.customer["id"]),
    )


@dataclass(frozen=True)
class CannedChoice:
    key: str
    name: str
    text: str  # placeholders filled for this ticket and agent


@dataclass(frozen=True)
class TransferTarget:
    key: str  # what the form posts: the agent's id
    name: str
    status: str
    load: int
    capacity: int
    refusal: str | None  # why this agent may not take the ticket from this actor


@dataclass(frozen=True)
class FormChoices:
    reply: ReplyChoices
    canned: list[CannedChoice]
    targets: list[TransferTarget]
    may_transfer: bool  # agents move their own or unassigned tickets; leads and admins any


def canned_key(item: Canned) -> str:
    return f"admin:{item.id}" if item.id is not None else f"config:{item.language or ''}:{item.name}"


async def load_choices(conn: asyncpg.Connection, config: Config, live: LivePart, agent: SignedIn,
                       now: datetime) -> FormChoices:
    ticket = live.header.ticket
    identities = [(i["kind"], i["value"], i["verified"]) for i in live.customer["identities"]]
    addresses = await timeline.reply_addresses(conn, ticket.customer_id, identities)
    reply = timeline.reply_choices(addresses, live.facts.last_inbound, live.facts.latest_channel, config.settings,
                                   now, whatsapp_template=bool(config.whatsapp.reply_templates))
    available = await canned_store.available(conn, config.canned, ticket.language)
    values = {"customer_name": live.customer["name"] or "", "ref": ticket.ref, "agent_name": agent.name,
              "subject": ticket.subject or ""}
    canned = [CannedChoice(canned_key(item), item.name, fill(item.text, **values)) for item in available]
    is_lead = agent.identity.is_lead
    targets = [TransferTarget(str(row["id"]), row["name"], row["status"], row["load"], row["capacity"],
                              "lead" if row["role"] == "lead" and not is_lead else None)
               for row in await timeline.transfer_targets(conn)]
    may_transfer = is_lead or ticket.assignee_id in (None, agent.agent_id)
    return FormChoices(reply, canned, targets, may_transfer)


# --- drawing the page and its parts ------------------------------------------------------------------


def _customer_now(customer: dict[str, Any], now: datetime) -> str | None:
    """The customer's local time (HH:MM) when their timezone is known and valid."""
    try:
        return now.astimezone(ZoneInfo(customer["timezone"])).strftime("%H:%M") if customer["timezone"] else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _live_context(request: Request, agent: SignedIn, live: LivePart) -> dict[str, Any]:
    language = page_language(request, agent)
    return {
        "live": live,
        "ref": live.ref,
        "words": WORDS,
        "names": names(language),
        "named": Named(language),
        "when": functools.partial(time_tag, zone=page_timezone(request, agent)),
        "message_html": MessageHtml,
        "message_runs": runs,
        "message_count": sum(1 for e in live.entries if e.entry == "message"),
        "customer_now": _customer_now(live.customer, services(request).clock()),
        "oob": False,
        "timeline_oob": False,
    }


def _forms_context(request: Request, forms: FormChoices, values: Mapping[str, str] | None,
                   errors: Mapping[str, str] | None) -> dict[str, Any]:
    usable = [o for o in forms.reply.options if o.usable]
    return {
        "forms": forms,
        "settings": services(request).config.settings,
        "values": values or {},
        "errors": errors or {},
        "first_usable": usable[0] if usable else None,
        "any_usable": bool(usable),
        "idempotency_key": secrets.token_urlsafe(16),  # a new one per drawn form: a double submit sends once
    }


async def _load(request: Request, agent: SignedIn, number: int, *, with_forms: bool,
                mark_read: bool) -> tuple[LivePart, FormChoices | None]:
    svc = services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn:
        live = await load_live(conn, number, agent.agent_id, now)
        forms = await load_choices(conn, svc.config, live, agent, now) if with_forms else None
        if mark_read and live.facts.unread:  # a write (and its commit) only when there is news to mark
            await reads.mark_read(conn, agent.agent_id, live.header.ticket.id, now)
    return live, forms


async def page(request: Request, agent: SignedIn, number: int, *, values: Mapping[str, str] | None = None,
               errors: Mapping[str, str] | None = None, flash: str | None = None,
               canned: str | None = None, status: int = 200) -> Response:
    """The whole ticket page; opening it marks the ticket read for this agent. `canned` (a canned
    response's key) fills the reply box with that response: inserting one without JavaScript."""
    live, forms = await _load(request, agent, number, with_forms=True, mark_read=status == 200)
    assert forms is not None
    values = dict(values or {})
    chosen = next((c for c in forms.canned if c.key == canned), None) if canned else None
    if chosen is not None:
        values["reply_text"] = chosen.text
    return render(request, agent, "ticket.html", {
        **_live_context(request, agent, live), **_forms_context(request, forms, values, errors), "flash": flash,
    }, status=status)


async def refresh(request: Request, agent: SignedIn, number: int) -> Response:
    """The live part alone (timeline, and the panels out of band): what a page fetches on each change."""
    live, _ = await _load(request, agent, number, with_forms=False, mark_read=True)
    return render(request, agent, "_ticket_refresh.html", _live_context(request, agent, live))


async def after_form(request: Request, agent: SignedIn, number: int, box: str, *, changed: bool,
                     flash: str | None = None, values: Mapping[str, str] | None = None,
                     errors: Mapping[str, str] | None = None, also: tuple[str, ...] = ()) -> Response:
    """An htmx form's answer: its `box` (`_ticket_reply.html`, …) drawn again — fresh after a change,
    else with the error and what was typed — and after a change the live part and `flash`, plus the
    boxes in `also`, out of band."""
    live, forms = await _load(request, agent, number, with_forms=True, mark_read=changed)
    assert forms is not None
    return render(request, agent, "_ticket_after_form.html", {
        **_live_context(request, agent, live), **_forms_context(request, forms, values, errors),
        "box": box, "changed": changed, "flash": flash, "also": also})
