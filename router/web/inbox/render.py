"""Server-rendered pages: one Jinja2 environment (autoescape on) and what every template may use.

Templates get `_` (translate into the page's language), `lang`, `agent` (or None), `csrf_token`,
`static(name)` and the filters `local_time` (in the agent's timezone), `age` ("5m") and `countdown`
("in 1h 05m" / "12m late"). Times are shown in the agent's timezone, else the service's.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.i18n import negotiate, translate

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/inbox/"

# Templates ship with the code and change only with a restart: no `stat` of every template a page
# uses on every request (about 24 on a ticket page).
environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, auto_reload=False)


def page_language(request: Request, agent: SignedIn | None) -> str:
    return negotiate(agent.ui_language if agent else None, request.headers.get("accept-language"))


def page_timezone(request: Request, agent: SignedIn | None) -> ZoneInfo:
    name = (agent.timezone if agent else None) or services(request).config.service.timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def short_duration(seconds: float) -> str:
    """`45s`, `12m`, `3h 05m`, `2d 4h`: compact enough for a list row."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def render(request: Request, agent: SignedIn | None, template: str, context: dict[str, Any] | None = None,
           *, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render `template` for this request: a full page (extending `base.html`) or an htmx fragment."""
    language = page_language(request, agent)
    zone = page_timezone(request, agent)
    now = services(request).clock()

    def _(text: str, **values: object) -> str:
        return translate(language, text, **values)

    def local_time(value: datetime | str | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.astimezone(zone).strftime(pattern)

    def age(value: datetime | str | None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return short_duration((now - value).total_seconds())

    def countdown(value: datetime | str | None) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        remaining = (value - now).total_seconds()
        if remaining >= 0:
            return _("in {duration}", duration=short_duration(remaining))
        return _("{duration} late", duration=short_duration(remaining))

    values = {
        "request": request,
        "agent": agent,
        "lang": language,
        "timezone": zone.key,
        "now": now,
        "csrf_token": agent.csrf_token if agent else "",
        "_": _,
        "local_time": local_time,
        "age": age,
        "countdown": countdown,
        "static": lambda name: STATIC_PREFIX + name,
        **(context or {}),
    }
    body = environment.get_template(template).render(values)
    return HTMLResponse(body, status_code=status, headers=headers)
