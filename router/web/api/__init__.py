"""The agents' JSON API (SPEC §3 HTTP, "Agents"): thin handlers; every change goes through
`router.core.actions`, every endpoint needs an authenticated agent."""

from __future__ import annotations

from starlette.routing import Route

from router.web.api import agents, customers, tickets

routes = [
    Route("/api/v1/tickets", tickets.list_tickets, methods=["GET"]),
    Route("/api/v1/tickets/{ref}", tickets.get_ticket, methods=["GET"]),
    Route("/api/v1/tickets/{ref}", tickets.patch_ticket, methods=["PATCH"]),
    Route("/api/v1/tickets/{ref}/notes", tickets.add_note, methods=["POST"]),
    Route("/api/v1/tickets/{ref}/replies", tickets.post_reply, methods=["POST"]),
    Route("/api/v1/tickets/{ref}/assign", tickets.assign_ticket, methods=["POST"]),
    *customers.routes,
    Route("/api/v1/agents", agents.list_agents, methods=["GET"]),
    Route("/api/v1/agents/{id}", agents.patch_agent, methods=["PATCH"]),
]
