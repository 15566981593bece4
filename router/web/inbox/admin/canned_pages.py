"""`/admin/canned`: canned responses per language. The ones in router.toml are listed read-only;
the ones added here are created, edited and deleted here. A text with a placeholder the reply box
cannot fill comes back with the reason and what was typed."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents import store as agent_store
from router.config import CANNED_FIELDS
from router.core.actions import admin as admin_actions
from router.core.canned import Canned
from router.core.errors import Conflict, InvalidInput, NotFound
from router.core.store import canned
from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.admin.common import done, editor, field, page, path_id, viewer

SECTION = "/admin/canned"
BASE_LANGUAGES = ("en", "ja")


async def _languages(request: Request, *extra: str | None) -> list[str]:
    """Languages to offer: English, Japanese, any language an agent speaks or a response uses."""
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        agents = await agent_store.directory(conn)
    found = {*BASE_LANGUAGES, *(c.language for c in svc.config.canned if c.language)}
    found |= {language for row in agents for language in row["languages"]}
    found |= {language for language in extra if language}
    return sorted(found)


async def canned_page(request: Request) -> Response:
    agent = await viewer(request)
    svc = services(request)
    async with svc.require_pool().acquire() as conn:
        added = await canned.list_all(conn)
    configured = [Canned(None, c.name, c.text, c.language, "config") for c in svc.config.canned]
    return page(request, agent, "admin_canned.html", SECTION, {
        "configured": configured, "added": added, "config_source": svc.config.source})


async def _form_page(request: Request, agent: SignedIn, item_id: int | None, values: dict[str, Any], *,
                     error: str | None = None, status: int = 200) -> Response:
    return page(request, agent, "admin_canned_form.html", SECTION, {
        "item_id": item_id, "values": values, "error": error,
        "languages": await _languages(request, values.get("language")),
        "placeholders": sorted(CANNED_FIELDS)}, status=status)


def _typed(form: FormData) -> dict[str, Any]:
    return {"name": field(form, "name"), "text": field(form, "text"), "language": field(form, "language")}


async def new_canned_page(request: Request) -> Response:
    agent = await viewer(request)
    return await _form_page(request, agent, None, {"name": "", "text": "", "language": ""})


async def create_canned(request: Request) -> Response:
    agent, form = await editor(request)
    values = _typed(form)
    try:
        await admin_actions.create_canned(services(request).actions(), agent.identity, values["name"],
                                          values["text"], values["language"] or None)
    except (InvalidInput, Conflict) as exc:
        return await _form_page(request, agent, None, values, error=exc.detail, status=exc.status)
    return done(SECTION, "canned-created")


async def canned_item_page(request: Request) -> Response:
    agent = await viewer(request)
    item_id = path_id(request, "canned_id")
    async with services(request).require_pool().acquire() as conn:
        item = await canned.get(conn, item_id)
    if item is None:
        raise NotFound(f"no canned response {item_id}")
    return await _form_page(request, agent, item_id, {"name": item.name, "text": item.text,
                                                      "language": item.language or ""})


async def save_canned(request: Request) -> Response:
    agent, form = await editor(request)
    item_id = path_id(request, "canned_id")
    values = _typed(form)
    try:
        await admin_actions.update_canned(services(request).actions(), agent.identity, item_id, values["name"],
                                          values["text"], values["language"] or None)
    except (InvalidInput, Conflict) as exc:
        return await _form_page(request, agent, item_id, values, error=exc.detail, status=exc.status)
    return done(SECTION, "canned-saved")


async def delete_canned(request: Request) -> Response:
    agent, _ = await editor(request)
    await admin_actions.delete_canned(services(request).actions(), agent.identity, path_id(request, "canned_id"))
    return done(SECTION, "canned-deleted")


routes = [
    Route("/admin/canned", canned_page, methods=["GET"]),
    Route("/admin/canned", create_canned, methods=["POST"]),
    Route("/admin/canned/new", new_canned_page, methods=["GET"]),
    Route("/admin/canned/{canned_id:int}", canned_item_page, methods=["GET"]),
    Route("/admin/canned/{canned_id:int}", save_canned, methods=["POST"]),
    Route("/admin/canned/{canned_id:int}/delete", delete_canned, methods=["POST"]),
]
