"""The port between the core and the chat platform team leads read (Slack): what the alert delivery
asks of it, and how it reports failure.

Types only, with no storage behind them, so `channels.slack` implements the port without reaching
into the core's tables, and the core never imports Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sla.alerts import BurstSummary, Digest, TicketCard


@dataclass(frozen=True)
class LowScore:
    """A customer rated a ticket 1 or 2 of 5: the team hears at once, with a link to the ticket."""

    ref: str
    score: int
    customer: str
    url: str


Content = TicketCard | BurstSummary | Digest | LowScore


class ChatError(Exception):
    """A call the platform refused or that failed on the way.

    `code` is short and stable ("channel_not_found", "ratelimited", "http_503", "unreachable"): it
    labels metrics. `permanent`: retrying cannot help (a channel that does not exist, a revoked
    token). `retry_after`: seconds the platform asked us to wait (HTTP 429 `Retry-After`)."""

    def __init__(self, code: str, detail: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.permanent = permanent
        self.retry_after = retry_after


class ChatPort(Protocol):
    async def post(self, channel: str, content: Content) -> tuple[str, str]:
        """Post `content` to `channel` (a name or an ID); returns the channel ID and the message's
        timestamp, which identify it for `update`. Raises `ChatError`."""
        ...

    async def update(self, channel_id: str, ts: str, content: Content) -> None:
        """Replace the message `ts` in place. Raises `ChatError`."""
        ...

    async def user_by_email(self, email: str) -> str | None:
        """The platform user with this email, None when there is none. Raises `ChatError`."""
        ...
