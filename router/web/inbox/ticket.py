"""`/inbox/{ref}`: one ticket, its whole cross-channel history and everything an agent does with it.

The page (`ticket_view`), the forms that work the ticket (`ticket_forms`) and the files its messages
carry (`ticket_files`) are modules of their own; this one holds the routes and the two reads a
browser makes: the page, and its live part, fetched again whenever the ticket changes (the page
listens for the `ticket-<ref>` event of `/inbox/live`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from router.web.inbox import ticket_files, ticket_forms
from router.web.inbox.session import require_agent
from router.web.inbox.ticket_view import TicketRoute, page, refresh, ticket_number
from router.web.inbox.ticket_words import DONE


async def ticket_page(request: Request) -> Response:
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    return await page(request, agent, number, flash=DONE.get(request.query_params.get("done", "")),
                      canned=request.query_params.get("canned"))


async def live_part(request: Request) -> Response:
    agent = await require_agent(request)
    return await refresh(request, agent, ticket_number(request.path_params["ref"]))


routes: list[BaseRoute] = [
    TicketRoute("/inbox/{ref}", ticket_page, methods=["GET"]),
    TicketRoute("/inbox/{ref}/timeline", live_part, methods=["GET"]),
    TicketRoute("/inbox/{ref}/reply", ticket_forms.post_reply, methods=["POST"]),
    TicketRoute("/inbox/{ref}/note", ticket_forms.post_note, methods=["POST"]),
    TicketRoute("/inbox/{ref}/status", ticket_forms.post_status, methods=["POST"]),
    TicketRoute("/inbox/{ref}/assign", ticket_forms.post_assign, methods=["POST"]),
    TicketRoute("/inbox/{ref}/take", ticket_forms.post_take, methods=["POST"]),
    TicketRoute("/inbox/{ref}/customer-notes", ticket_forms.post_customer_note, methods=["POST"]),
    TicketRoute("/inbox/{ref}/messages/{message_id:int}/html", ticket_files.message_html, methods=["GET"]),
    TicketRoute("/inbox/{ref}/attachments/{attachment_id:int}", ticket_files.attachment, methods=["GET"]),
]
