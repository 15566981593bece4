"""`/api/v1/tickets…`: thin JSON handlers over the ticket store's reads and the actions."""

from __future__ import annotations

import base64
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.core.actions import assign, notes, replies, status
from router.core.errors import InvalidInput, NotFound
from router.core.inbound import text_value
from router.core.refs import STATUSES, as_status, parse_ref
from router.core.store import tickets
from router.web.api.auth import authenticate
from router.web.http import db_id, read_json_object, services
from sla import clocks

MAX_PAGE = 200


def _encode_cursor(after: tuple[datetime, int]) -> str:
    updated_at, ticket_id = after
    return base64.urlsafe_b64encode(f"{updated_at.isoformat()}|{ticket_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ticket_id = raw.partition("|")
        return datetime.fromisoformat(stamp), db_id(ticket_id, "cursor")
    except (ValueError, UnicodeDecodeError, InvalidInput) as exc:
        raise InvalidInput("`cursor` is not a cursor this API returned") from exc


def _filters(request: Request) -> tuple[tickets.ListFilter, int]:
    query = request.query_params
    for key, value in query.items():
        text_value(value, key, limit=500)
    statuses = None
    if query.get("status"):
        statuses = [as_status(s) for s in query["status"].split(",")]
        if None in statuses:
            raise InvalidInput(f"`status` must be among {', '.join(STATUSES)}")
    assignee = query.get("assignee")
    limit_text = query.get("limit", "50")
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_PAGE:
        raise InvalidInput(f"`limit` must be a number from 1 to {MAX_PAGE}")
    by_id = assignee is not None and assignee.isascii() and assignee.isdigit()
    return tickets.ListFilter(
        statuses=[s for s in statuses if s is not None] if statuses else None,
        unassigned=assignee == "none",
        assignee_id=db_id(assignee, "assignee") if by_id else None,
        assignee_email=assignee.lower() if assignee and assignee != "none" and not by_id else None,
        team=query.get("team") or None,
        after=_decode_cursor(query["cursor"]) if query.get("cursor") else None,
    ), int(limit_text)


async def list_tickets(request: Request) -> Response:
    await authenticate(request)
    filters, limit = _filters(request)
    async with services(request).require_pool().acquire() as conn:
        page, after = await tickets.list_page(conn, filters, limit)
    return JSONResponse({"tickets": page, "next_cursor": _encode_cursor(after) if after else None})


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
