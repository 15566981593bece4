"""What every `/admin` page shares: who may see and who may change, form reading, the page frame.

Leads and admins see every admin page; only admins change anything. A lead sees the same pages with
their controls disabled, and every write refuses them (403) before reading the form, so a refusal
never depends on what was sent. Plain agents get a 403 page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from router.core.actions.admin import require_admin
from router.core.errors import Forbidden, InvalidInput, LengthRequired, NotFound, PayloadTooLarge
from router.core.store.sessions import SignedIn
from router.web.http import MAX_DB_ID
from router.web.inbox.render import render
from router.web.inbox.session import require_agent

MAX_FORM_BYTES = 256 * 1024
"""A canned text of 20,000 Japanese characters is ~180 KB once form-encoded."""

SECTIONS = (
    ("/admin/agents", "Agents"),
    ("/admin/teams", "Teams"),
    ("/admin/canned", "Canned responses"),
    ("/admin/sla", "SLA policies and calendars"),
    ("/admin/channels", "Channel status"),
    ("/admin/kb", "Knowledge base"),
)

NOTICES = {
    "agent-created": "The agent was created.",
    "agent-saved": "The agent was saved. The admin UI now owns this agent: router.toml no longer changes them.",
    "agent-handed-back": "The agent is managed by router.toml again; its entry there now applies.",
    "agent-deactivated": "The agent was deactivated: signed out everywhere, and their open tickets went back "
                         "to the queue.",
    "agent-reactivated": "The agent can sign in again. They stay offline until they set their status.",
    "password-reset": "The password was changed and the agent's sessions ended.",
    "team-created": "The team was created.",
    "team-renamed": "The team was renamed.",
    "canned-created": "The canned response was created.",
    "canned-saved": "The canned response was saved.",
    "canned-deleted": "The canned response was deleted.",
    "outbox-retried": "The item is queued again and will be sent shortly.",
}
"""Messages shown after a change (`?done=<key>`): a fixed set, so a link cannot put text on the page."""


async def viewer(request: Request) -> SignedIn:
    """The signed-in lead or admin (redirect to /login when signed out; 403 for plain agents)."""
    agent = await require_agent(request)
    if agent.role not in ("lead", "admin"):
        raise Forbidden("the admin pages are for leads and admins")
    return agent


async def editor(request: Request) -> tuple[SignedIn, FormData]:
    """The signed-in admin sending a change (CSRF checked) and their form; 403 for anyone else. The
    size is checked before anything reads the body (the CSRF check may read the form)."""
    declared = request.headers.get("content-length")
    if declared is None:
        raise LengthRequired("send the form with a Content-Length")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the form is larger than {MAX_FORM_BYTES // 1024} KB")
    agent = await viewer(request)
    require_admin(agent.identity)
    return agent, await request.form(max_files=0, max_fields=200)


def path_id(request: Request, name: str) -> int:
    """A numeric id from the path; one too large to exist is simply not found."""
    value: int = request.path_params[name]
    if value > MAX_DB_ID:
        raise NotFound(f"no such {name.removesuffix('_id')}")
    return value


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def whole_number(form: FormData, name: str, label: str) -> int:
    text = field(form, name).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidInput(f"{label} must be a whole number")
    return int(text)


def optional_id(form: FormData, name: str, label: str) -> int | None:
    text = field(form, name).strip()
    return whole_number(form, name, label) if text else None


def words(text: str) -> list[str]:
    """A list typed as "billing, shipping" (commas, Japanese commas or spaces)."""
    return [word for word in text.replace("、", ",").replace(" ", ",").split(",") if word.strip()]


def done(path: str, notice: str) -> RedirectResponse:
    """After a change: back to a page that says what happened (POST/redirect/GET)."""
    assert notice in NOTICES
    return RedirectResponse(f"{path}?done={notice}", status_code=303)


def page(request: Request, agent: SignedIn, template: str, section: str, context: Mapping[str, Any] | None = None,
         *, status: int = 200) -> HTMLResponse:
    """An admin page: the section navigation, whether controls are live, and the notice to show."""
    notice = NOTICES.get(request.query_params.get("done", ""))
    values = {"sections": SECTIONS, "section": section, "can_edit": agent.role == "admin", "notice": notice,
              **(context or {})}
    return render(request, agent, template, values, status=status)
