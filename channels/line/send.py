"""Outbound LINE messages (`LINE_API_URL`): the free reply API while the reply token is valid, else push.

LINE gives each customer message a one-time reply token, valid about a minute after the webhook;
replies with it do not count against the plan's message quota. The reply action and the ack put
the token of the customer's latest LINE message and the time we received it in the outbox item
(`core.channel_rules.reply_context`); this sender, at send time, uses it when it is younger than
`REPLY_TOKEN_TTL` (a margin under LINE's minute) and this is the item's first attempt, and pushes
otherwise — also when LINE says the token is no longer valid (another reply used it first).

Push requests carry `X-Line-Retry-Key`, derived from the outbox item's idempotency key, so a push
retried after a lost answer is accepted once: LINE answers the repeat 409, which means delivered.
429 and 5xx are retried by the outbox; any other 4xx is a permanent refusal with LINE's reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from router.core.channel_rules import too_long
from router.core.clock import Clock, system_clock
from router.core.delivery import OutboxItem, PermanentDeliveryError

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
REPLY_TOKEN_TTL = timedelta(seconds=50)
RETRY_KEY_NAMESPACE = uuid.UUID("4f0b7e52-0c55-4a4b-9d55-6d2b1d0c4e11")


class LineUnavailable(Exception):
    """LINE could not take the message now (network, 429, 5xx): the outbox retries."""


class LineSender:
    def __init__(self, api_url: str, channel_token: str, clock: Clock = system_clock):
        self.api_url = api_url.rstrip("/")
        self.clock = clock
        self.client = httpx.AsyncClient(timeout=TIMEOUT, headers={"Authorization": f"Bearer {channel_token}"})

    async def send(self, item: OutboxItem) -> None:
        text = item.payload["text"]
        if problem := too_long("line", text):
            raise PermanentDeliveryError(problem)
        messages = [{"type": "text", "text": text}]
        token = self.usable_reply_token(item)
        if token is not None:
            response = await self._post("/v2/bot/message/reply", {"replyToken": token, "messages": messages})
            if not _invalid_reply_token(response):
                _check(response)
                return
        retry_key = str(uuid.uuid5(RETRY_KEY_NAMESPACE, item.idempotency_key))
        response = await self._post("/v2/bot/message/push", {"to": item.payload["to"], "messages": messages},
                                    headers={"X-Line-Retry-Key": retry_key})
        if response.status_code == 409 and response.headers.get("x-line-accepted-request-id"):
            return  # this retry key was accepted before: the message went out
        _check(response)

    def usable_reply_token(self, item: OutboxItem) -> str | None:
        """The item's reply token if it is still fresh and this is the first try (a retry may follow
        an attempt that used it up without our hearing the answer)."""
        token, received = item.payload.get("reply_token"), item.payload.get("reply_token_at")
        if not isinstance(token, str) or not isinstance(received, str) or item.attempts > 1:
            return None
        try:
            age = self.clock() - datetime.fromisoformat(received)
        except (ValueError, TypeError):
            return None
        return token if timedelta(0) <= age < REPLY_TOKEN_TTL else None

    async def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        try:
            return await self.client.post(self.api_url + path, json=body, headers=headers)
        except httpx.TransportError as exc:
            raise LineUnavailable(f"the LINE Messaging API is unreachable: {exc!r}") from exc


def _reason(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return response.reason_phrase
    if not isinstance(answer, dict):
        return response.reason_phrase
    details = "; ".join(f"{d.get('property', '')}: {d.get('message', '')}".strip(": ")
                        for d in answer.get("details") or [] if isinstance(d, dict))
    return (str(answer.get("message") or response.reason_phrase) + (f" ({details})" if details else ""))[:300]


def _invalid_reply_token(response: httpx.Response) -> bool:
    return response.status_code == 400 and "reply token" in _reason(response).lower()


def _check(response: httpx.Response) -> None:
    code = response.status_code
    if response.is_success:
        return
    if code == 429 or code >= 500:
        raise LineUnavailable(f"LINE answered {code}: {_reason(response)}")
    raise PermanentDeliveryError(f"LINE refused the message ({code}): {_reason(response)}")
