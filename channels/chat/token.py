"""The chat visitor's token: the visitor id, signed with ROUTER_SECRET_KEY.

The widget keeps it in a first-party cookie of the page that embeds it and presents it in its first
frame; the server mints it. A visitor id nobody signed (typed, guessed, altered) is refused, so a
conversation is readable only with the token it was started with.
"""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

MAX_AGE_SECONDS = 400 * 24 * 3600
"""Browsers keep a cookie at most 400 days; the widget gets a fresh token on every connection."""


class BadToken(Exception):
    """A token that was not signed by us, was altered, or is too old."""


class VisitorTokens:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="router.chat.visitor")

    def new_visitor(self) -> str:
        return secrets.token_urlsafe(18)

    def sign(self, visitor_id: str) -> str:
        return self._serializer.dumps({"v": visitor_id})

    def visitor_of(self, token: str) -> str:
        """The visitor id inside `token`, or BadToken."""
        try:
            data = self._serializer.loads(token, max_age=MAX_AGE_SECONDS)
        except BadSignature as exc:
            raise BadToken(str(exc)) from exc
        visitor = data.get("v") if isinstance(data, dict) else None
        if not isinstance(visitor, str) or not 16 <= len(visitor) <= 64:
            raise BadToken("the token names no visitor")
        return visitor
