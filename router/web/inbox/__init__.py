"""The agents' web inbox: server-rendered pages (Jinja2 + vendored htmx), one module per page group.

`auth` signs agents in and out; `lists` is `/inbox` (views, filters, search); `ticket` is
`/inbox/{ref}` and working a ticket; `live` streams events to open pages (SSE) and shows who else is
on a ticket; `admin` is `/admin`. Every change goes through `router.core.actions`, like the JSON API.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from router.web.inbox import admin, auth, lists, live, ticket, ticket_identity
from router.web.inbox.render import STATIC, STATIC_PREFIX

routes: list[BaseRoute] = [
    *auth.routes,
    *lists.routes,
    *ticket.routes,
    *ticket_identity.routes,
    *live.routes,
    *admin.routes,
    Mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC), name="inbox-static"),
]
