"""The identity panel of `/inbox/{ref}`: "possibly the same customer as X" with Merge and Dismiss,
the customer's identities with a form to confirm or add one, and recent merges with Undo (leads).

The ticket page includes `ticket_identity.html`, which loads this panel with htmx
(`GET /inbox/{ref}/identity`), so the ticket page's own read stays as it is. Without JavaScript the
same URL is a page of its own, and every form works as a plain POST that answers with that page.
Every change goes through `router.core.actions.customers` / `.identity`, like the JSON API.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from router.core.actions import customers as customer_actions
from router.core.actions import identity as identity_actions
from router.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from router.core.refs import ref
from router.core.store import customers, merges, suggestions, tickets
from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.i18n import register
from router.web.inbox.render import render
from router.web.inbox.session import require_agent
from router.web.inbox.ticket_view import TicketRoute, ticket_number

MAX_FIELDS = 10
RECOVERABLE = (InvalidInput, Forbidden, Conflict, NotFound)
"""What an agent can put right (or should read): shown in the panel, never an error page."""

DONE = {
    "merged": "Merged. The merge can be undone from this panel.",
    "dismissed": "Dismissed: this suggestion will not come back.",
    "undone": "The merge was undone: every message, identity and ticket is back where it came from.",
    "identity": "The identity is confirmed.",
}

register({
    "Identity": "本人確認",
    "Possibly the same customer as {name}": "{name} と同一の顧客の可能性があります",
    "customer #{id}": "顧客 #{id}",
    "Reason: {reason}. Confidence {confidence}%.": "理由: {reason}。確度 {confidence}%。",
    "Why (optional)": "理由（任意）",
    "Merge": "統合",
    "Dismiss": "却下",
    "No possible matches.": "同一の可能性がある顧客はいません。",
    "Identities": "連絡先",
    "verified": "確認済み",
    "typed, not proved": "入力のみ（未確認）",
    "Confirm or add an identity": "連絡先を確認・追加",
    "Kind": "種類",
    "Email": "メールアドレス",
    "Phone": "電話番号",
    "Value": "値",
    "Confirm": "確認",
    "Recent merges": "最近の統合",
    "#{merged} into #{survivor}, by {actor}: {reason}": "#{merged} を #{survivor} に統合（{actor}）: {reason}",
    "the system": "システム",
    "undone": "取り消し済み",
    "Undo": "取り消す",
    "Why undo": "取り消す理由",
    "Loading the customer's identity…": "顧客の本人確認情報を読み込み中…",
    "Open identity and merges": "本人確認と統合を開く",
    "Back to the ticket": "チケットに戻る",
    DONE["merged"]: "統合しました。このパネルから取り消せます。",
    DONE["dismissed"]: "却下しました。この候補は再表示されません。",
    DONE["undone"]: "統合を取り消しました。すべてのメッセージ・連絡先・チケットが元に戻りました。",
    DONE["identity"]: "連絡先を確認しました。",
})


async def _panel_context(request: Request, number: int) -> dict[str, Any]:
    async with services(request).require_pool().acquire() as conn:
        ticket = await tickets.by_number(conn, number)
        if ticket is None:
            raise NotFound(f"no ticket {ref(number)}")
        profile = await customers.profile(conn, ticket.customer_id)
        found = await suggestions.for_customer(conn, ticket.customer_id, only_open=True)
        history = await merges.for_customer(conn, ticket.customer_id, limit=10)
    for suggestion in found:
        suggestion["match"] = (suggestion["other"] if suggestion["claimant"]["id"] == ticket.customer_id
                               else suggestion["claimant"])
    return {"identity_panel": True, "ref": ref(number), "customer_id": ticket.customer_id,
            "identity_suggestions": found, "identity_merges": history,
            "identity_list": profile["identities"] if profile else []}


async def _answer(request: Request, agent: SignedIn, number: int, *, flash: str | None = None,
                  error: str | None = None, status: int = 200, values: dict[str, str] | None = None) -> Response:
    htmx = request.headers.get("hx-request") == "true"
    context = await _panel_context(request, number)
    context.update(identity_flash=flash, identity_error=error, identity_values=values or {}, standalone=not htmx)
    # htmx swaps only successful answers: a refusal to show comes back as 200 with its message.
    return render(request, agent, "ticket_identity.html", context, status=200 if htmx else status)


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FIELDS)


def _text(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _customer_of(request: Request, number: int) -> int:
    async with services(request).require_pool().acquire() as conn:
        ticket = await tickets.by_number(conn, number)
    if ticket is None:
        raise NotFound(f"no ticket {ref(number)}")
    return ticket.customer_id


async def _act(request: Request, agent: SignedIn, number: int, done: str, action: Any,
               values: dict[str, str] | None = None) -> Response:
    try:
        await action()
    except RECOVERABLE as exc:
        return await _answer(request, agent, number, error=exc.detail, status=exc.status, values=values)
    if request.headers.get("hx-request") == "true":
        return await _answer(request, agent, number, flash=DONE[done])
    return RedirectResponse(f"/inbox/{ref(number)}/identity?done={done}", status_code=303)


async def merge_suggestion(request: Request) -> Response:
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    reason = _text(await _form(request), "reason", customer_actions.MAX_REASON)
    suggestion_id = int(request.path_params["sid"])

    async def act() -> None:
        await customer_actions.merge_suggestion(services(request).actions(), agent.identity,
                                                await _customer_of(request, number), suggestion_id,
                                                reason=reason or None)

    return await _act(request, agent, number, "merged", act)


async def dismiss_suggestion(request: Request) -> Response:
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    reason = _text(await _form(request), "reason", customer_actions.MAX_REASON)
    suggestion_id = int(request.path_params["sid"])

    async def act() -> None:
        await customer_actions.dismiss_suggestion(services(request).actions(), agent.identity,
                                                  await _customer_of(request, number), suggestion_id,
                                                  reason=reason or None)

    return await _act(request, agent, number, "dismissed", act)


async def undo_merge(request: Request) -> Response:
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    reason = _text(await _form(request), "reason", customer_actions.MAX_REASON)
    merge_id = int(request.path_params["mid"])

    async def act() -> None:
        await customer_actions.undo_merge(services(request).actions(), agent.identity, merge_id,
                                          reason=reason or None)

    return await _act(request, agent, number, "undone", act)


async def add_identity(request: Request) -> Response:
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    form = await _form(request)
    kind, value = _text(form, "kind", 16), _text(form, "value", 320)

    async def act() -> None:
        identity = identity_actions.parse_identity(kind, value)
        await identity_actions.confirm_identity(services(request).actions(), agent.identity,
                                                await _customer_of(request, number), identity)

    return await _act(request, agent, number, "identity", act, {"kind": kind, "value": value})


async def panel_page(request: Request) -> Response:
    """The panel as a page of its own (no JavaScript), with the outcome of the last form."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    return await _answer(request, agent, number, flash=DONE.get(request.query_params.get("done", "")))


routes: list[BaseRoute] = [
    TicketRoute("/inbox/{ref}/identity", panel_page, methods=["GET"]),
    TicketRoute("/inbox/{ref}/identity/suggestions/{sid:int}/merge", merge_suggestion, methods=["POST"]),
    TicketRoute("/inbox/{ref}/identity/suggestions/{sid:int}/dismiss", dismiss_suggestion, methods=["POST"]),
    TicketRoute("/inbox/{ref}/identity/merges/{mid:int}/undo", undo_merge, methods=["POST"]),
    TicketRoute("/inbox/{ref}/identity/identities", add_identity, methods=["POST"]),
]
