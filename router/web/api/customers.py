"""`/api/v1/customers…`: a customer's profile and history; merging two customers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.core.actions import customers as customer_actions
from router.core.errors import NotFound
from router.core.store import customers
from router.web.api.auth import authenticate
from router.web.http import db_id, read_json_object, services


async def _profile(request: Request, customer_id: int) -> Response:
    async with services(request).require_pool().acquire() as conn:
        found = await customers.profile(conn, customer_id)
    if found is None:
        raise NotFound(f"no customer {customer_id}")
    return JSONResponse(found)


async def get_customer(request: Request) -> Response:
    await authenticate(request)
    return await _profile(request, db_id(request.path_params["id"], "id"))


async def merge_customers(request: Request) -> Response:
    agent = await authenticate(request)
    body = await read_json_object(request)
    other = db_id(body.get("other"), "other")
    survivor = db_id(request.path_params["id"], "id")
    await customer_actions.merge(services(request).actions(), agent, survivor, other)
    return await _profile(request, survivor)
