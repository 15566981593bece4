"""`/api/v1/customers…` and `/api/v1/merges…`: a customer's profile and history, identities an agent
confirms, suggested matches (merge or dismiss), merges and their undo."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.core.actions import customers as customer_actions
from router.core.actions import identity as identity_actions
from router.core.errors import InvalidInput, NotFound
from router.core.inbound import text_value
from router.core.store import customers, merges, suggestions
from router.web.api.auth import authenticate
from router.web.http import db_id, read_json_object, services


async def _profile(request: Request, customer_id: int, status: int = 200) -> Response:
    async with services(request).require_pool().acquire() as conn:
        found = await customers.profile(conn, customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id}")
    return JSONResponse(found, status_code=status)


def _reason(body: dict[str, Any]) -> str | None:
    return text_value(body.get("reason"), "reason", limit=customer_actions.MAX_REASON)


async def _optional_body(request: Request) -> dict[str, Any]:
    """A body is optional on these POSTs (just a reason): empty means none."""
    if not (await request.body()).strip():
        return {}
    return await read_json_object(request)


async def get_customer(request: Request) -> Response:
    await authenticate(request)
    return await _profile(request, db_id(request.path_params["id"], "id"))


async def merge_customers(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    other = db_id(body.get("other"), "other")
    survivor = db_id(request.path_params["id"], "id")
    await customer_actions.merge(services(request).actions(), agent, survivor, other, reason=_reason(body))
    return await _profile(request, survivor)


async def add_identity(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    customer_id = db_id(request.path_params["id"], "id")
    identity = identity_actions.parse_identity(body.get("kind"), body.get("value"))
    await identity_actions.confirm_identity(services(request).actions(), agent, customer_id, identity)
    return await _profile(request, customer_id, 201)


async def list_suggestions(request: Request) -> Response:
    await authenticate(request)
    customer_id = db_id(request.path_params["id"], "id")
    status = request.query_params.get("status", "open")
    if status not in ("open", "all"):
        raise InvalidInput("`status` must be open or all")
    async with services(request).require_pool().acquire() as conn:
        if await customers.profile(conn, customer_id) is None:
            raise NotFound(f"no customer {customer_id}")
        found = await suggestions.for_customer(conn, customer_id, only_open=status == "open")
    return JSONResponse({"suggestions": found})


async def merge_suggestion(request: Request) -> Response:
    agent = await authenticate(request)
    body = await _optional_body(request)
    customer_id = db_id(request.path_params["id"], "id")
    merged = await customer_actions.merge_suggestion(
        services(request).actions(), agent, customer_id, db_id(request.path_params["sid"], "sid"),
        reason=_reason(body))
    return JSONResponse({"merge_id": merged.id}, status_code=201)


async def dismiss_suggestion(request: Request) -> Response:
    agent = await authenticate(request)
    body = await _optional_body(request)
    await customer_actions.dismiss_suggestion(
        services(request).actions(), agent, db_id(request.path_params["id"], "id"),
        db_id(request.path_params["sid"], "sid"), reason=_reason(body))
    return Response(status_code=204)


async def list_merges(request: Request) -> Response:
    await authenticate(request)
    customer_id = db_id(request.path_params["id"], "id")
    async with services(request).require_pool().acquire() as conn:
        found = await merges.for_customer(conn, customer_id)
        if not found and await customers.profile(conn, customer_id) is None:
            raise NotFound(f"no customer {customer_id}")
    return JSONResponse({"merges": found})


async def undo_merge(request: Request) -> Response:
    agent = await authenticate(request)
    body = await _optional_body(request)
    done = await customer_actions.undo_merge(services(request).actions(), agent,
                                             db_id(request.path_params["id"], "id"), reason=_reason(body))
    return JSONResponse({"merge_id": done.merge_id, "survivor": done.survivor_id, "merged": done.merged_id,
                         "messages_restored": done.messages_restored,
                         "later_messages_moved": done.later_messages_moved})


routes = [
    Route("/api/v1/customers/{id:int}", get_customer, methods=["GET"]),
    Route("/api/v1/customers/{id:int}/merge", merge_customers, methods=["POST"]),
    Route("/api/v1/customers/{id:int}/identities", add_identity, methods=["POST"]),
    Route("/api/v1/customers/{id:int}/suggestions", list_suggestions, methods=["GET"]),
    Route("/api/v1/customers/{id:int}/suggestions/{sid:int}/merge", merge_suggestion, methods=["POST"]),
    Route("/api/v1/customers/{id:int}/suggestions/{sid:int}/dismiss", dismiss_suggestion, methods=["POST"]),
    Route("/api/v1/customers/{id:int}/merges", list_merges, methods=["GET"]),
    Route("/api/v1/merges/{id:int}/undo", undo_merge, methods=["POST"]),
]
