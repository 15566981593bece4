"""`/verify/{token}`: the one-click link of an identity proof mail (public: the signed token is the key).

Opening the link changes nothing (mail scanners and link previews open links too): the page asks
its owner to confirm, and only that POST proves the address, exactly like the right code would.
A forged, used or expired link says so and changes nothing. Japanese or English, by the browser.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from router.core.actions import identity
from router.web.http import limit_client, services
from router.web.inbox.i18n import negotiate

_environment = Environment(loader=FileSystemLoader(Path(__file__).parent / "verify_templates"),
                           autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True)
RATE_PER_MINUTE, BURST = 20, 10
"""Link pages per client address (per app, in memory): a person opens one or two."""
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}
MAX_TOKEN = 80

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Confirm your email address", "ask": "Confirm that {address} is your address.",
        "why": "Support will then recognise you on every channel where you proved it.", "confirm": "Confirm",
        "linked": "Thank you: {address} is confirmed. You can go back to the chat.",
        "used": "This link was used already: nothing more to do.",
        "expired": "This link has expired. Ask for a new code in the chat.",
        "invalid": "This link is not valid. Please use the link from the mail we sent you, unchanged.",
    },
    "ja": {
        "title": "メールアドレスの確認", "ask": "{address} がご自身のメールアドレスであることを確認してください。",
        "why": "確認後は、このアドレスでご連絡いただいたどのチャネルでもお客様を識別できます。", "confirm": "確認する",
        "linked": "{address} を確認しました。チャットにお戻りください。",
        "used": "このリンクは使用済みです。これ以上の操作は不要です。",
        "expired": "このリンクは有効期限が切れています。チャットで新しいコードをご依頼ください。",
        "invalid": "このリンクは無効です。お送りしたメールのリンクをそのままお使いください。",
    },
}



def _page(request: Request, state: str, address: str | None, token: str) -> HTMLResponse:
    language = negotiate(None, request.headers.get("accept-language"))
    body = _environment.get_template("verify.html").render(t=TEXTS[language], lang=language, state=state,
                                                           address=address or "", token=token)
    status = {"invalid": 404, "expired": 410}.get(state, 200)
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


async def verify_page(request: Request) -> Response:
    limit_client(request, "verify", rate_per_minute=RATE_PER_MINUTE, burst=BURST)
    token = request.path_params["token"][:MAX_TOKEN]
    state, address = await identity.describe_link(services(request).actions(), token)
    return _page(request, state, address, token)


async def confirm(request: Request) -> Response:
    limit_client(request, "verify", rate_per_minute=RATE_PER_MINUTE, burst=BURST)
    token = request.path_params["token"][:MAX_TOKEN]
    ctx = services(request).actions()
    state = await identity.verify_link(ctx, token)
    _, address = await identity.describe_link(ctx, token)
    return _page(request, state, address, token)


routes: list[BaseRoute] = [
    Route("/verify/{token}", verify_page, methods=["GET"]),
    Route("/verify/{token}", confirm, methods=["POST"]),
]
