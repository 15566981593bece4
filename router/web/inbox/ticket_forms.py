"""Working a ticket from its page: each form calls the same action the JSON API calls.

Without JavaScript a form posts, and a success answers `303` back to the ticket (with a message);
with htmx the form's own box comes back, with the refreshed timeline and panels out of band, so
what the agent is typing elsewhere on the page stays. A refusal the agent can act on (an empty
reply, a channel the customer lacks, a transfer they may not make) is shown in the form, with what
they typed kept; the CSRF check (`require_agent`) comes before anything else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from router.core.actions import assign, notes, replies, status
from router.core.actions.customer_notes import add_customer_note
from router.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from router.core.refs import ref
from router.core.store import timeline
from router.core.store.sessions import SignedIn
from router.web.http import services
from router.web.inbox.session import require_agent
from router.web.inbox.ticket_view import after_form, page, ticket_number
from router.web.inbox.ticket_words import DONE

RECOVERABLE = (InvalidInput, Forbidden, Conflict)
"""Refusals shown in the form, for the agent to correct; anything else is the app's error page."""
BOXES = {"reply": "_ticket_reply.html", "note": "_ticket_note.html", "actions": "_ticket_actions.html",
         "customer_note": "_ticket_customer_note.html"}
MAX_FIELDS = 20


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FIELDS)


def field(form: FormData, name: str, limit: int) -> str:
    """A text field ("" when absent), line endings as `\\n`, at most `limit` characters."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be text")
    if len(value) > limit:
        raise InvalidInput(f"`{name}` is longer than {limit} characters")
    return value.replace("\r\n", "\n")


async def _submit(request: Request, agent: SignedIn, number: int, box: str, act: Callable[[], Awaitable[str]],
                  values: dict[str, str], *, anchor: str, also: tuple[str, ...] = ()) -> Response:
    """Run `act` (which answers a `DONE` key) and answer as the module docstring says."""
    htmx = request.headers.get("hx-request") == "true"
    try:
        done = await act()
    except RECOVERABLE as exc:
        errors = {box: exc.detail}
        if htmx:  # 200: htmx swaps only successful answers, and this one is a form to show
            return await after_form(request, agent, number, BOXES[box], changed=False, values=values, errors=errors)
        return await page(request, agent, number, values=values, errors=errors, status=exc.status)
    if htmx:
        return await after_form(request, agent, number, BOXES[box], changed=True, flash=DONE[done], also=also)
    return RedirectResponse(f"/inbox/{ref(number)}?done={done}#{anchor}", status_code=303)


async def post_reply(request: Request) -> Response:
    """Reply on the channel chosen (empty: the customer's latest), optionally setting the ticket pending."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    form = await _form(request)
    text = field(form, "text", replies.MAX_REPLY_CHARS * 2)
    channel = field(form, "channel", 32) or None
    key = field(form, "idempotency_key", 200) or None
    then_pending = field(form, "then", 16) == "pending"
    ctx = services(request).actions()

    async def act() -> str:
        message_id = await replies.reply(ctx, agent.identity, ref(number), text, channel=channel, idempotency_key=key)
        if message_id is None:
            return "reply_again"
        if then_pending:
            await status.update(ctx, agent.identity, ref(number), status="pending")
            return "reply_pending"
        return "reply"

    return await _submit(request, agent, number, "reply", act, {"reply_text": text, "reply_channel": channel or ""},
                         anchor="timeline-end", also=("_ticket_actions.html",) if then_pending else ())


async def post_note(request: Request) -> Response:
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    text = field(await _form(request), "text", notes.MAX_NOTE_CHARS * 2)
    ctx = services(request).actions()

    async def act() -> str:
        await notes.add_note(ctx, agent.identity, ref(number), text)
        return "note"

    return await _submit(request, agent, number, "note", act, {"note_text": text}, anchor="timeline-end")


async def post_status(request: Request) -> Response:
    """Status and/or priority. The form says what it showed (`was_status`, `was_priority`): only what
    the agent changed is sent, so a colleague's change since the page was drawn is not undone."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    form = await _form(request)
    new_status, priority = field(form, "status", 16) or None, field(form, "priority", 16) or None
    if new_status is not None and new_status == field(form, "was_status", 16):
        new_status = None
    if priority is not None and priority == field(form, "was_priority", 16):
        priority = None
    ctx = services(request).actions()

    async def act() -> str:
        if new_status is None and priority is None:
            return "unchanged"
        await status.update(ctx, agent.identity, ref(number), status=new_status, priority=priority)
        return "status"

    return await _submit(request, agent, number, "actions", act,
                         {"status": new_status or "", "priority": priority or ""}, anchor="ticket-actions")


async def post_assign(request: Request) -> Response:
    """Transfer to an agent (their id) or back to the queue (`queue`), with a reason."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    form = await _form(request)
    target = field(form, "agent", 320).strip()
    reason = field(form, "reason", 500)
    ctx = services(request).actions()

    async def act() -> str:
        await assign.transfer(ctx, agent.identity, ref(number), None if target in ("", "queue") else target,
                              reason or None)
        return "transfer"

    return await _submit(request, agent, number, "actions", act, {"agent": target, "reason": reason},
                         anchor="ticket-actions")


async def post_take(request: Request) -> Response:
    """"Take it": the signed-in agent assigns the waiting ticket to themself. A ticket someone took
    since the page was drawn is refused (409) rather than taken over."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    svc = services(request)

    async def act() -> str:
        async with svc.require_pool().acquire() as conn:
            found = await timeline.header(conn, number)
        if found is None:
            raise NotFound(f"no ticket {ref(number)}")
        if found.ticket.assignee_id == agent.agent_id:
            return "take"
        if found.ticket.assignee_id is not None:
            raise Conflict(f"{found.assignee_name} has this ticket already")
        await assign.transfer(svc.actions(), agent.identity, ref(number), str(agent.agent_id),
                              f"taken from the queue by {agent.email}")
        return "take"

    return await _submit(request, agent, number, "actions", act, {}, anchor="ticket-actions")


async def post_customer_note(request: Request) -> Response:
    """A note about the ticket's customer (shown on every ticket of theirs)."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    text = field(await _form(request), "text", 10_000)
    svc = services(request)

    async def act() -> str:
        async with svc.require_pool().acquire() as conn:
            found = await timeline.header(conn, number)
        if found is None:
            raise NotFound(f"no ticket {ref(number)}")
        await add_customer_note(svc.actions(), agent.identity, found.ticket.customer_id, text)
        return "customer_note"

    return await _submit(request, agent, number, "customer_note", act, {"customer_note_text": text},
                         anchor="customer-panel")
