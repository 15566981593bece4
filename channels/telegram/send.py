"""Outbound Telegram messages through the Bot API's `sendMessage` (`TELEGRAM_API_URL`).

The customer's identity is their user id, which is also the id of their private chat with the bot:
that is the `chat_id`. Telegram's answers decide the outcome: `ok` is delivered; flood control (429,
with the wait Telegram asks for kept in the error), 5xx and network failures are retried by the
outbox; any other 4xx (the customer blocked the bot, the chat is gone) is a permanent refusal with
Telegram's own description, shown on the ticket. The bot token is part of the URL path, so no URL
ever goes into an error message.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from router.core.channel_rules import too_long
from router.core.delivery import OutboxItem, PermanentDeliveryError, RetryLater

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class TelegramUnavailable(Exception):
    """Telegram could not take the message now (network, 5xx, flood control): the outbox retries."""


class TelegramSender:
    def __init__(self, api_url: str, bot_token: str):
        self.url = f"{api_url.rstrip('/')}/bot{bot_token}/sendMessage"
        self.client = httpx.AsyncClient(timeout=TIMEOUT)  # one connection pool for every item

    async def send(self, item: OutboxItem) -> None:
        text = item.payload["text"]
        if problem := too_long("telegram", text):
            raise PermanentDeliveryError(problem)
        try:
            response = await self.client.post(self.url, json={"chat_id": item.payload["to"], "text": text})
        except httpx.TransportError as exc:
            raise TelegramUnavailable(f"the Telegram Bot API is unreachable: {type(exc).__name__}") from exc
        _check(response)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _check(response: httpx.Response) -> None:
    """Raise unless Telegram accepted the message."""
    try:
        answer = _dict(response.json())
    except ValueError:
        answer = {}
    if response.is_success and answer.get("ok") is True:
        return
    code = response.status_code
    description = str(answer.get("description") or response.reason_phrase)[:300]
    if code == 429:
        wait = _dict(answer.get("parameters")).get("retry_after")
        if isinstance(wait, int) and not isinstance(wait, bool) and 0 < wait <= 24 * 3600:
            raise RetryLater(timedelta(seconds=wait), f"Telegram flood control (retry after {wait} s): {description}")
        raise TelegramUnavailable(f"Telegram flood control: {description}")
    if code >= 500 or code < 400:
        raise TelegramUnavailable(f"Telegram answered {code}: {description}")
    raise PermanentDeliveryError(f"Telegram refused the message ({code}): {description}")
