"""`/api/v1/tickets…`: thin JSON handlers over the ticket store's reads and the actions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.core.actions import assign, notes, replies, status
from router.core.errors import InvalidInput, NotFound
from router.core.inbound import text_value
from router.core.refs import parse_ref
from router.core.store import inbox, tickets
from router.core.store.tickets import iso
from router.web import listing
from router.web.api.auth import authenticate
from router.web.http import db_id, read_json_object, services
from sla import clocks

MAX_PAGE = 200


def summary(row: inbox.Row) -> dict[str, Any]:
    """A list row as the API answers it (`TicketSummary` in the OpenAPI document)."""
    return {
        "ref": row.ref, "status": row.status, "priority": row.priority, "channel": row.channel,
        "subject": row.subject, "topic": row.topic, "language": row.language, "customer_id": row.customer_id,
        "customer_name": row.customer_name, "team": row.team, "assignee": row.assignee,
        "first_response_due": iso(row.first_response_due),
        "sla": {"target": row.sla_target, "due_at": iso(row.sla_due_at), "warn_at": iso(row.sla_warn_at),
                "paused": row.sla_paused} if row.sla_target else None,
        "last_customer_message_at": iso(row.last_customer_message_at),
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
    }


async def list_tickets(request: Request) -> Response:
    """Tickets newest activity first, narrowed by the same filters and search as the inbox page."""
    agent = await authenticate(request)
    query = request.query_params
    found = listing.listing(query, view="all", agent_id=agent.id)
    limit = listing.page_size(query, default=50, maximum=MAX_PAGE)
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        page = await inbox.page(conn, found, svc.clock(), limit)
    return JSONResponse({"tickets": [summary(row) for row in page.rows],
                         "next_cursor": listing.encode_cursor(page.next_cursor) if page.next_cursor else None})


async def ticket_detail(request: Request) -> Response:
    """The ticket as it is now, with its messages, clocks and routing log."""
    ref_text = request.path_params["ref"]
    number = parse_ref(ref_text)
    async with services(request).require_pool().acquire() as conn:
        ticket = await tickets.by_number(conn, number) if number is not None else None
        if ticket is None:
            raise NotFound(f"no ticket {ref_text!r}")
        detail = await tickets.detail(conn, ticket, await clocks.clocks_json(conn, ticket.id))
    return JSONResponse(detail)


async def get_ticket(request: Request) -> Response:
    await authenticate(request)
    return await ticket_detail(request)


async def patch_ticket(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    new_status, priority = body.get("status"), body.get("priority")
    for key, value in (("status", new_status), ("priority", priority)):
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"`{key}` must be a string")
    await status.update(services(request).actions(), agent, request.path_params["ref"], status=new_status,
                        priority=priority)
    return await ticket_detail(request)


async def add_note(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    text = text_value(body.get("text"), "text", limit=notes.MAX_NOTE_CHARS, required=True) or ""
    message_id = await notes.add_note(services(request).actions(), agent, request.path_params["ref"], text)
    return JSONResponse({"message_id": message_id}, status_code=201)


async def post_reply(request: Request) -> Response:
    """Reply to the customer; it goes out on their latest channel unless `channel` is given."""
    agent = await authenticate(request)
    body = await read_json_object(request)
    text = text_value(body.get("text"), "text", limit=replies.MAX_REPLY_CHARS, required=True) or ""
    channel = text_value(body.get("channel"), "channel", limit=32)
    key = text_value(request.headers.get("idempotency-key"), "Idempotency-Key", limit=200)
    message_id = await replies.reply(services(request).actions(), agent, request.path_params["ref"], text,
                                     channel=channel, idempotency_key=key)
    return JSONResponse({"message_id": message_id}, status_code=201)


async def assign_ticket(request: Request) -> Response:
    """Transfer to another agent (`{agent, reason}`), or back to the queue with `agent: null`."""
    actor = await authenticate(request)
    body = await read_json_object(request)
    if "agent" not in body:
        raise InvalidInput("`agent` (id or email, or null for the queue) is required")
    target = body["agent"]
    key = None
    if target is not None:
        key = str(db_id(target, "agent")) if isinstance(target, int) else text_value(target, "agent", limit=320)
    reason = text_value(body.get("reason"), "reason", limit=500)
    await assign.transfer(services(request).actions(), actor, request.path_params["ref"], key, reason)
    return await ticket_detail(request)
