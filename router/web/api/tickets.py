"""The agents' JSON API (SPEC §3 HTTP, "Agents"). Every endpoint needs an authenticated agent."""

from __future__ import annotations

import base64
import hmac
import logging
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents import assignment
from agents import store as agent_store
from agents.store import AgentIdentity
from router.core.actions import replies
from router.core.store import customers, events, tickets
from router.config import PRIORITIES
from router.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from router.web.http import db_id, read_json_object, text_value

log = logging.getLogger(__name__)

STATUSES = ("open", "pending", "solved", "closed")
MAX_PAGE = 200


def _services(request: Request):
    return request.app.state.services


async def authenticate(request: Request) -> AgentIdentity:
    """Bearer agent token, the integration token (admin rights), or the inbox session cookie."""
    svc = _services(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        api_token = svc.config.settings.api_token
        if api_token and hmac.compare_digest(token.encode(), api_token.encode()):
            return AgentIdentity(None, "integration", "admin")
        async with svc.require_pool().acquire() as conn:
            agent = await agent_store.by_token(conn, token)
        if agent is not None:
            return agent
        raise Unauthorized("the bearer token is not valid")
    agent_id = request.session.get("agent_id") if "session" in request.scope else None
    if isinstance(agent_id, int):
        async with svc.require_pool().acquire() as conn:
            agent = await agent_store.by_id(conn, agent_id)
        if agent is not None:
            return agent
    raise Unauthorized("sign in, or send `Authorization: Bearer <agent token>`")


async def _drain_after_commit(svc: Any, now: datetime) -> None:
    """Give waiting tickets to agents who just got a free slot. The caller's change is committed
    already, so a failure here is logged, not answered as an error: the queue sweep retries."""
    try:
        await assignment.drain_queue(svc.require_pool(), now)
    except Exception:
        log.exception("queue drain after an agent API change failed; the periodic sweep will retry")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _encode_cursor(updated_at: datetime, ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"{updated_at.isoformat()}|{ticket_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ticket_id = raw.partition("|")
        return datetime.fromisoformat(stamp), db_id(ticket_id, "cursor")
    except (ValueError, UnicodeDecodeError, InvalidInput) as exc:
        raise InvalidInput("`cursor` is not a cursor this API returned") from exc


def ticket_summary(row: Any) -> dict[str, Any]:
    return {
        "ref": tickets.ref(row["number"]),
        "status": row["status"],
        "priority": row["priority"],
        "channel": row["channel"],
        "subject": row["subject"],
        "topic": row["topic"],
        "language": row["language"],
        "customer_id": row["customer_id"],
        "customer_name": row["customer_name"],
        "team": row["team"],
        "assignee": row["assignee"],
        "first_response_due": _iso(row["first_response_due"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


async def list_tickets(request: Request) -> Response:
    await authenticate(request)
    query = request.query_params
    for key, value in query.items():
        text_value(value, key, limit=500)
    conditions: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    status = query.get("status")
    if status:
        wanted = status.split(",")
        if not set(wanted) <= set(STATUSES):
            raise InvalidInput(f"`status` must be among {', '.join(STATUSES)}")
        conditions.append(f"t.status = ANY({arg(wanted)}::text[])")
    assignee = query.get("assignee")
    if assignee == "none":
        conditions.append("t.assignee_id IS NULL")
    elif assignee:
        if assignee.isascii() and assignee.isdigit():
            conditions.append(f"a.id = {arg(db_id(assignee, 'assignee'))}")
        else:
            conditions.append(f"a.email = {arg(assignee.lower())}")
    team = query.get("team")
    if team:
        conditions.append(f"tm.name = {arg(team)}")
    limit_text = query.get("limit", "50")
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_PAGE:
        raise InvalidInput(f"`limit` must be a number from 1 to {MAX_PAGE}")
    limit = int(limit_text)
    cursor = query.get("cursor")
    if cursor:
        updated_at, ticket_id = _decode_cursor(cursor)
        conditions.append(f"(t.updated_at, t.id) < ({arg(updated_at)}, {arg(ticket_id)})")
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    sql = (
        "SELECT t.id, t.number, t.status, t.priority, t.channel, t.subject, t.topic, t.language,"
        " t.customer_id, c.name AS customer_name, tm.name AS team, a.email AS assignee,"
        " s.due_at AS first_response_due, t.created_at, t.updated_at"
        " FROM tickets t JOIN customers c ON c.id = t.customer_id"
        " LEFT JOIN sla_targets s ON s.ticket_id = t.id AND s.target = 'first_response' AND s.met_at IS NULL"
        " LEFT JOIN agents a ON a.id = t.assignee_id LEFT JOIN teams tm ON tm.id = t.team_id"
        f" {where} ORDER BY t.updated_at DESC, t.id DESC LIMIT {arg(limit + 1)}"
    )
    async with _services(request).require_pool().acquire() as conn:
        rows = await conn.fetch(sql, *args)
    page = rows[:limit]
    next_cursor = _encode_cursor(page[-1]["updated_at"], page[-1]["id"]) if len(rows) > limit else None
    return JSONResponse({"tickets": [ticket_summary(r) for r in page], "next_cursor": next_cursor})


async def _ticket_or_404(conn: Any, ref_text: str, *, lock: bool = False) -> Any:
    number = tickets.parse_ref(ref_text)
    row = None
    if number is not None:
        row = await conn.fetchrow(
            f"SELECT {tickets.TICKET_COLUMNS} FROM tickets WHERE number = $1{' FOR UPDATE' if lock else ''}",
            number)
    if row is None:
        raise NotFound(f"no ticket {ref_text!r}")
    return row


async def get_ticket(request: Request) -> Response:
    await authenticate(request)
    async with _services(request).require_pool().acquire() as conn:
        ticket = await _ticket_or_404(conn, request.path_params["ref"])
        detail = await tickets.detail(conn, ticket)
    return JSONResponse(detail)


async def patch_ticket(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    status, priority = body.get("status"), body.get("priority")
    if status is None and priority is None:
        raise InvalidInput("send `status` and/or `priority`")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"`status` must be one of {', '.join(STATUSES)}")
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput(f"`priority` must be one of {', '.join(PRIORITIES)}")
    svc = _services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn, conn.transaction():
        ticket = await _ticket_or_404(conn, request.path_params["ref"], lock=True)
        await tickets.update(conn, svc.config, ticket, status=status, priority=priority, now=now, actor_id=agent.id)
    if status in ("solved", "closed"):
        await _drain_after_commit(svc, now)  # the assignee has a free slot now
    async with svc.require_pool().acquire() as conn:
        detail = await tickets.detail(conn, await _ticket_or_404(conn, request.path_params["ref"]))
    return JSONResponse(detail)


async def add_note(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    text = text_value(body.get("text"), "text", limit=50_000, required=True)
    svc = _services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn, conn.transaction():
        ticket = await _ticket_or_404(conn, request.path_params["ref"], lock=True)
        inserted = await tickets.insert_message(
            conn, ticket_id=ticket["id"], customer_id=None, channel="note", direction="note",
            external_id=f"note:{uuid.uuid4().hex}",
            body_text=text.strip(), now=now, author_agent_id=agent.id, sender_name=agent.email,
            events=[("note.added", {})])
        await conn.execute("UPDATE tickets SET updated_at = $2 WHERE id = $1", ticket["id"], now)
    return JSONResponse({"message_id": inserted.message_id}, status_code=201)


async def post_reply(request: Request) -> Response:
    """Reply to the customer; it goes out on their latest channel unless `channel` is given."""
    agent = await authenticate(request)
    body = await read_json_object(request)
    text = text_value(body.get("text"), "text", limit=50_000, required=True)
    channel = text_value(body.get("channel"), "channel", limit=32)
    key = text_value(request.headers.get("idempotency-key"), "Idempotency-Key", limit=200)
    svc = _services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn, conn.transaction():
        ticket = await _ticket_or_404(conn, request.path_params["ref"], lock=True)
        message_id = await replies.send_reply(conn, svc.config, ticket, text=text.strip(), channel=channel,
                                              agent_id=agent.id, now=now, idempotency_key=key)
    return JSONResponse({"message_id": message_id}, status_code=201)


async def get_customer(request: Request) -> Response:
    await authenticate(request)
    customer_id = db_id(request.path_params["id"], "id")
    async with _services(request).require_pool().acquire() as conn:
        found = await customers.profile(conn, customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id}")
    return JSONResponse(found)


async def merge_customers(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    other = db_id(body.get("other"), "other")
    survivor = db_id(request.path_params["id"], "id")
    svc = _services(request)
    async with svc.require_pool().acquire() as conn, conn.transaction():
        await customers.merge(conn, svc.config, survivor, other, svc.clock(), reason=f"merged by {agent.email}",
                              actor_id=agent.id)
        result = await customers.profile(conn, survivor)
    return JSONResponse(result)


async def list_agents(request: Request) -> Response:
    await authenticate(request)
    async with _services(request).require_pool().acquire() as conn:
        rows = await agent_store.list_all(conn)
    return JSONResponse({"agents": [agent_store.agent_json(r) for r in rows]})


async def assign_ticket(request: Request) -> Response:
    """Transfer to another agent (`{agent, reason}`), or back to the queue with `agent: null`."""
    actor = await authenticate(request)
    body = await read_json_object(request)
    if "agent" not in body:
        raise InvalidInput("`agent` (id or email, or null for the queue) is required")
    target, reason = body["agent"], text_value(body.get("reason"), "reason", limit=500)
    svc = _services(request)
    now = svc.clock()
    async with svc.require_pool().acquire() as conn, conn.transaction():
        ticket = await _ticket_or_404(conn, request.path_params["ref"], lock=True)
        if not actor.is_lead and ticket["assignee_id"] not in (None, actor.id):
            raise Forbidden("agents may transfer their own or unassigned tickets; ask a lead for the others")
        agent_id = None
        if target is not None:
            key = str(db_id(target, "agent")) if isinstance(target, int) else text_value(target, "agent", limit=320)
            row = await agent_store.find(conn, key)
            if row is None:
                raise InvalidInput(f"no agent {target!r}")
            if row["role"] == "lead" and not actor.is_lead:
                raise Forbidden("only leads and admins can hand a ticket to a lead")
            agent_id = row["id"]
        default = f"transferred by {actor.email}" if agent_id else f"returned to the queue by {actor.email}"
        await assignment.transfer(conn, ticket, agent_id, reason.strip() if reason else default, now, actor.id)
    if agent_id is None:
        await _drain_after_commit(svc, now)
    async with svc.require_pool().acquire() as conn:
        detail = await tickets.detail(conn, await _ticket_or_404(conn, request.path_params["ref"]))
    return JSONResponse(detail)


AGENT_STATUSES = ("online", "away", "offline")


def _agent_key(value: str) -> str:
    """An agent path segment: a numeric id (in range) or an email address."""
    if value.isascii() and value.isdigit():
        return str(db_id(value, "id"))
    return text_value(value, "id", limit=320, required=True)


async def patch_agent(request: Request) -> Response:
    """Agents set their own status, leads anyone's; admins also edit skills, languages, capacity."""
    actor = await authenticate(request)
    body = await read_json_object(request)
    svc = _services(request)
    now = svc.clock()
    editable = {"status", "skills", "languages", "capacity", "chat_capacity"}
    if not body or not set(body) <= editable:
        raise InvalidInput(f"send some of: {', '.join(sorted(editable))}")
    if set(body) - {"status"} and not actor.is_admin:
        raise Forbidden("only admins can change skills, languages or capacity")
    status = body.get("status")
    if status is not None and status not in AGENT_STATUSES:
        raise InvalidInput(f"`status` must be one of {', '.join(AGENT_STATUSES)}")
    for key in ("skills", "languages"):
        if key in body:
            if not isinstance(body[key], list) or len(body[key]) > 100:
                raise InvalidInput(f"`{key}` must be a list of strings")
            for value in body[key]:
                text_value(value, key, limit=100, required=True)
    for key in ("capacity", "chat_capacity"):
        value = body.get(key)
        if key in body and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000):
            raise InvalidInput(f"`{key}` must be a whole number from 0 to 1000")
    async with svc.require_pool().acquire() as conn, conn.transaction():
        row = await agent_store.find(conn, _agent_key(request.path_params["id"]))
        if row is None:
            raise NotFound(f"no agent {request.path_params['id']!r}")
        if not actor.is_lead and actor.id != row["id"]:
            raise Forbidden("agents may change only their own status")
        if status == "offline" and svc.config.service.release_on_offline:
            # Tickets first, then the agent row: the lock order every other change uses.
            await assignment.release_unstarted(conn, row["id"], now)
        await agent_store.update(conn, row["id"], {k: body[k] for k in editable if k in body})
        await events.record(conn, None, "agent.updated", {"agent_id": row["id"], **body}, now)
    await _drain_after_commit(svc, now)
    async with svc.require_pool().acquire() as conn:
        row = await agent_store.find(conn, str(row["id"]))
    return JSONResponse(agent_store.agent_json(row))


routes = [
    Route("/api/v1/tickets", list_tickets, methods=["GET"]),
    Route("/api/v1/tickets/{ref}", get_ticket, methods=["GET"]),
    Route("/api/v1/tickets/{ref}", patch_ticket, methods=["PATCH"]),
    Route("/api/v1/tickets/{ref}/notes", add_note, methods=["POST"]),
    Route("/api/v1/tickets/{ref}/replies", post_reply, methods=["POST"]),
    Route("/api/v1/customers/{id:int}", get_customer, methods=["GET"]),
    Route("/api/v1/customers/{id:int}/merge", merge_customers, methods=["POST"]),
    Route("/api/v1/tickets/{ref}/assign", assign_ticket, methods=["POST"]),
    Route("/api/v1/agents", list_agents, methods=["GET"]),
    Route("/api/v1/agents/{id}", patch_agent, methods=["PATCH"]),
]
