"""Who is calling the agents' API: an agent token, the integration token, or an inbox session."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from agents import store as agent_store
from agents.store import AgentIdentity
from router.core.errors import Unauthorized
from router.web.http import bearer_token, services
from router.web.inbox.session import SAFE_METHODS, check_csrf, signed_in

INTEGRATION = AgentIdentity(None, "integration", "admin")


async def authenticate(request: Request) -> AgentIdentity:
    """Bearer agent token, the integration token (admin rights), or the inbox session cookie; a
    cookie-authenticated write must also pass the CSRF checks (token and origin)."""
    svc = services(request)
    token = bearer_token(request)
    if token is not None:
        api_token = svc.config.settings.api_token
        if api_token and hmac.compare_digest(token.encode(), api_token.encode()):
            return INTEGRATION
        async with svc.require_pool().acquire() as conn:
            agent = await agent_store.by_token(conn, token)
        if agent is not None:
            return agent
        raise Unauthorized("the bearer token is not valid")
    session = await signed_in(request)
    if session is not None:
        if request.method not in SAFE_METHODS:
            await check_csrf(request, session)
        return session.identity
    raise Unauthorized("sign in, or send `Authorization: Bearer <agent token>`")
