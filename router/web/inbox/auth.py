"""`/login`, `/logout` and the agent's own preferences (UI language, timezone)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from router.core.actions import sessions as session_actions
from router.core.actions.sessions import SignInThrottled
from router.core.errors import InvalidInput, Unauthorized
from router.web.http import client_address, services
from router.web.inbox.i18n import LANGUAGES
from router.web.inbox.render import render
from router.web.inbox.session import (
    check_form_size,
    clear_session_cookie,
    require_agent,
    safe_next,
    same_origin,
    set_session_cookie,
    signed_in,
)

MAX_LOGIN_FORM_BYTES = 8 * 1024


async def login_page(request: Request) -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return render(request, None, "login.html", {"next": safe_next(request.query_params.get("next")),
                                               "email": "", "error": None})


async def login(request: Request) -> Response:
    """Check the credentials; on success set the session cookie and go where the agent was going.
    Login is the one form without a CSRF token (there is no session yet): `SameSite=Lax` and the
    origin check keep another site from signing a browser in."""
    check_form_size(request, MAX_LOGIN_FORM_BYTES)
    form = await request.form(max_files=0, max_fields=10)
    email = str(form.get("email") or "")
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    context = {"next": target, "email": email[:320]}
    if not same_origin(request):
        return render(request, None, "login.html", {**context, "error": "cross-origin sign-in refused"}, status=403)
    svc = services(request)
    try:
        session_id = await session_actions.sign_in(svc.actions(), email, password, address=client_address(request),
                                                   user_agent=request.headers.get("user-agent"))
    except SignInThrottled as exc:
        minutes = max(1, int((exc.until - svc.clock()).total_seconds() + 59) // 60)
        return render(request, None, "login.html", {**context, "error": "throttled", "minutes": minutes},
                      status=429, headers={"Retry-After": str(minutes * 60)})
    except Unauthorized:
        return render(request, None, "login.html", {**context, "error": "credentials"}, status=401,
                      headers={"WWW-Authenticate": 'Cookie realm="inbox"'})
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, session_id)
    return response


async def logout(request: Request) -> Response:
    agent = await require_agent(request)
    await session_actions.sign_out(services(request).actions(), agent.session_hash)
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(request, response)
    return response


async def preferences_page(request: Request) -> Response:
    agent = await require_agent(request)
    return render(request, agent, "preferences.html", {"languages": LANGUAGES, "next": "/inbox"})


async def preferences(request: Request) -> Response:
    """The agent's UI language and timezone (empty: automatic)."""
    agent = await require_agent(request)
    form = await request.form(max_files=0, max_fields=10)
    language = str(form.get("ui_language") or "") or None
    zone = str(form.get("timezone") or "").strip() or None
    if language is not None and language not in LANGUAGES:
        raise InvalidInput(f"unknown language {language!r}")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"unknown timezone {zone!r}") from exc
    await session_actions.set_preferences(services(request).actions(), agent.agent_id, language, zone)
    return RedirectResponse(safe_next(str(form.get("next") or "")), status_code=303)


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/preferences", preferences_page, methods=["GET"]),
    Route("/preferences", preferences, methods=["POST"]),
]
