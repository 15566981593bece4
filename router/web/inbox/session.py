"""Who is signed in to the inbox, and the CSRF checks on what they send.

The cookie holds a random session id (`HttpOnly`, `SameSite=Lax`, `Secure` when the public URL is
https); the session itself is a row (`router.core.store.sessions`). Every cookie-authenticated write,
pages and `/api/v1` alike, must carry the session's CSRF token (form field `csrf_token` or header
`X-CSRF-Token`) and come from our own origin (`Origin`, else `Referer`). Bearer calls do not use the
cookie, so they need neither.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from router.core.actions import sessions as session_actions
from router.core.errors import Forbidden, LengthRequired, MalformedBody, PayloadTooLarge, RouterError
from router.core.store.sessions import SESSION_LIFETIME, SignedIn
from router.web.http import services

COOKIE = "router_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_PAGE_FORM_BYTES = 1024 * 1024
"""A page's form (a reply, a note, an admin edit) is text: a 50,000-character Japanese reply is ~450 KB
URL-encoded. The declared length is required and checked before anything is read, and uvicorn never
delivers more than it declares."""


class SignInRequired(RouterError):
    """A page was asked for without a session: the app answers with a redirect to `/login`."""

    status = 401
    code = "unauthorized"


async def signed_in(request: Request) -> SignedIn | None:
    """The agent of this request's session cookie, looked up once per request."""
    if "signed_in" in request.scope:
        found: SignedIn | None = request.scope["signed_in"]
        return found
    session_id = request.cookies.get(COOKIE)
    agent = None
    if session_id and len(session_id) < 200:
        agent = await session_actions.current(services(request).actions(), session_id)
    request.scope["signed_in"] = agent
    return agent


async def require_agent(request: Request) -> SignedIn:
    """The signed-in agent of a page request, else `SignInRequired` (→ redirect to /login).
    Writes (anything but GET/HEAD/OPTIONS) must also pass the CSRF checks."""
    agent = await signed_in(request)
    if agent is None:
        raise SignInRequired("sign in to use the inbox")
    if request.method not in SAFE_METHODS:
        check_form_size(request, MAX_PAGE_FORM_BYTES)
        await check_csrf(request, agent)
    return agent


def check_form_size(request: Request, limit: int) -> None:
    """411 without a Content-Length, 413 above `limit`: a chunked body of unbounded size is never read
    into a form."""
    declared = request.headers.get("content-length")
    if declared is None:
        raise LengthRequired("this form needs a Content-Length header")
    if not (declared.isascii() and declared.isdigit()):
        raise MalformedBody("Content-Length is not a number")
    if int(declared) > limit:
        raise PayloadTooLarge(f"the form is larger than {limit} bytes")


async def check_csrf(request: Request, agent: SignedIn) -> None:
    """403 unless the request carries this session's token and comes from our own origin."""
    if not same_origin(request):
        raise Forbidden("cross-origin request refused: Origin or Referer must be this site")
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # Starlette caches it: the handler reads the same form
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not token or not hmac.compare_digest(token.encode(), agent.csrf_token.encode()):
        raise Forbidden("the form has expired or was not sent from the inbox (CSRF token missing or wrong)")


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request) -> bool:
    """`Origin` (else `Referer`) names this site: the public URL, or the host the request was sent to."""
    claimed = request.headers.get("origin")
    if claimed is None or claimed == "null":
        referer = request.headers.get("referer")
        claimed = _origin_of(referer) if referer else None
    if not claimed:
        return False
    allowed = {_origin_of(services(request).config.settings.public_url),
               f"{request.url.scheme}://{request.headers.get('host', '')}".lower()}
    return claimed.lower().rstrip("/") in allowed


def cookie_is_secure(request: Request) -> bool:
    return services(request).config.settings.public_url.lower().startswith("https://")


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(COOKIE, session_id, max_age=int(SESSION_LIFETIME.total_seconds()), path="/",
                        httponly=True, samesite="lax", secure=cookie_is_secure(request))


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_is_secure(request))


def login_url(request: Request) -> str:
    """`/login?next=<this page>` so that signing in comes back here."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


def safe_next(value: str | None) -> str:
    """Only a path on this site (never `//evil` or `https://evil`): no open redirect after sign-in."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/inbox"
