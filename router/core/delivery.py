"""The port between the outbox and the channels that deliver: an item, a sender, a permanent refusal.

Types only, so a channel's sender can implement the port without depending on the outbox's storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idempotency_key: str
    kind: str
    channel: str
    ticket_id: int | None
    payload: dict[str, Any]
    attempts: int


class PermanentDeliveryError(Exception):
    """The platform refused the item for good (bad address, blocked bot): do not retry."""


class RetryLater(Exception):
    """The platform asked us to wait `after` before trying again (HTTP 429 with `Retry-After`)."""

    def __init__(self, after: timedelta, detail: str):
        super().__init__(detail)
        self.after = after


class Refused(PermanentDeliveryError):
    """A permanent refusal with a short, stable reason code for metrics (`reason`) and a clear
    sentence for people (the message)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class Sender(Protocol):
    async def send(self, item: OutboxItem) -> None:
        """Deliver the item or raise; any exception other than PermanentDeliveryError is retried."""
