"""The ticket list's query string, read the same way by the `/inbox` page and `GET /api/v1/tickets`:
filters, search and the keyset cursor. Bad values are `InvalidInput` (a 422 problem for the API, a
readable page in the inbox), never a crash and never silently ignored."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime

from router.core.errors import InvalidInput
from router.core.inbound import text_value
from router.core.refs import PRIORITIES, STATUSES, Status, as_priority, as_status
from router.core.search import parse_query
from router.core.store.inbox import Cursor, Listing, View
from router.web.http import db_id

MAX_VALUE_CHARS = 500
FILTERS = ("status", "channel", "priority", "topic", "language", "assignee", "team", "q")
"""The query parameters both the page and the API narrow the list with."""


def encode_cursor(cursor: Cursor) -> str:
    sort_at, ticket_id = cursor
    return base64.urlsafe_b64encode(f"{sort_at.isoformat()}|{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, _, ticket_id = raw.partition("|")
        sort_at = datetime.fromisoformat(stamp)
        if sort_at.tzinfo is None:
            raise ValueError("a cursor's time has a timezone")
        return sort_at, db_id(ticket_id, "cursor")
    except (ValueError, UnicodeDecodeError, InvalidInput) as exc:
        raise InvalidInput("`cursor` is not a cursor this list returned") from exc


def _statuses(value: str) -> list[Status]:
    found = [as_status(part.strip()) for part in value.split(",")]
    statuses = [status for status in found if status is not None]
    if len(statuses) != len(found):
        raise InvalidInput(f"`status` must be among {', '.join(STATUSES)}")
    return statuses


def listing(params: Mapping[str, str], *, view: View, agent_id: int | None) -> Listing:
    """The `Listing` these query parameters ask for, in `view` as `agent_id` sees it."""
    for key, value in params.items():
        text_value(value, key, limit=MAX_VALUE_CHARS)
    given = {key: params[key].strip() for key in FILTERS if params.get(key, "").strip()}
    priority = None
    if "priority" in given:
        priority = as_priority(given["priority"])
        if priority is None:
            raise InvalidInput(f"`priority` must be one of {', '.join(PRIORITIES)}")
    assignee = given.get("assignee")
    by_id = assignee is not None and assignee.isascii() and assignee.isdigit()
    return Listing(
        view=view,
        agent_id=agent_id,
        statuses=_statuses(given["status"]) if "status" in given else (),
        channel=given.get("channel"),
        priority=priority,
        topic=given.get("topic"),
        language=given.get("language"),
        unassigned=assignee == "none",
        assignee_id=db_id(assignee, "assignee") if by_id else None,
        assignee_email=assignee.lower() if assignee and assignee != "none" and not by_id else None,
        team=given.get("team"),
        search=parse_query(given["q"]) if "q" in given else None,
        after=decode_cursor(params["cursor"]) if params.get("cursor") else None,
    )


def page_size(params: Mapping[str, str], *, default: int, maximum: int, name: str = "limit",
              minimum: int = 1) -> int:
    text = params.get(name, str(default))
    if not (text.isascii() and text.isdigit()) or not minimum <= int(text) <= maximum:
        raise InvalidInput(f"`{name}` must be a number from {minimum} to {maximum}")
    return int(text)
