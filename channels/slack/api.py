"""The Slack Web API through slack-sdk's `AsyncWebClient` (base URL `SLACK_API_URL`, so tests reach a
local server): the `ChatPort` the alert delivery uses, plus what the Slack endpoints need (who a
user is, the reassign dialog, replies through `response_url`).

Every failure becomes a `ChatError` with Slack's own error code, classified here because the codes
are Slack's: refusals that retrying cannot fix are `permanent` (the item goes dead with that reason),
HTTP 429 carries its `Retry-After`, everything else is retried with backoff. No retry happens inside
the client: the outbox owns retries, so a slow Slack never holds a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from channels.slack import blocks
from router.core.chat import ChatError, Content, LowScore
from sla.alerts import BurstSummary, Digest, TicketCard

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
"""A Slack call that takes longer fails and is retried later; the outbox never waits longer."""
SLACK_HOOKS = "https://hooks.slack.com/"

PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
    "token_revoked", "token_expired", "no_permission", "missing_scope", "ekm_access_denied", "restricted_action",
    "team_access_not_granted", "org_login_required", "invalid_blocks", "invalid_blocks_format", "msg_too_long",
    "too_many_attachments", "cant_update_message", "edit_window_closed", "message_not_found", "invalid_arguments",
})
"""`ok: false` errors that the same call will meet again: wrong channel, bot not invited, bad or revoked
token, missing scope, a message Slack cannot take. Anything else (`ratelimited`, `internal_error`,
`fatal_error`, `service_unavailable`, `request_timeout`, unknown codes) is retried."""

T = TypeVar("T")


def render(content: Content) -> blocks.Message:
    if isinstance(content, TicketCard):
        return blocks.card(content)
    if isinstance(content, BurstSummary):
        return blocks.summary(content)
    if isinstance(content, Digest):
        return blocks.digest(content)
    if isinstance(content, LowScore):
        return blocks.low_score(content)
    raise TypeError(f"no Slack layout for {type(content).__name__}")


def classify(error: SlackApiError) -> ChatError:
    """What a failed Web API call means for the caller."""
    response = error.response
    status = getattr(response, "status_code", 0)
    data = getattr(response, "data", None)
    error_code = data.get("error") if isinstance(data, dict) else None
    code = error_code if isinstance(error_code, str) and error_code else f"http_{status}"
    if status == 429:
        headers = getattr(response, "headers", {}) or {}
        retry_after = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
        seconds = float(retry_after) if retry_after and str(retry_after).isdigit() else 30.0
        return ChatError(code, f"Slack asked us to wait {seconds:.0f}s (HTTP 429)", retry_after=seconds)
    if code in PERMANENT_ERRORS:
        return ChatError(code, _explain(code), permanent=True)
    return ChatError(code, f"Slack answered {code} (HTTP {status}); retried later")


def _explain(code: str) -> str:
    """The clear reason a person reads on the dead item (admin channel status, /metrics label)."""
    hints = {
        "channel_not_found": "the channel does not exist or the bot cannot see it: check SLACK_ALERT_CHANNEL and"
                             " the teams' slack_channel",
        "not_in_channel": "the bot is not a member of the channel: invite it (/invite @your-app)",
        "is_archived": "the channel is archived",
        "invalid_auth": "SLACK_BOT_TOKEN is not valid",
        "not_authed": "no SLACK_BOT_TOKEN was sent",
        "token_revoked": "SLACK_BOT_TOKEN was revoked: install the app again",
        "missing_scope": "the app lacks a scope: it needs chat:write, users:read, users:read.email, commands",
    }
    return f"Slack refused ({code}): {hints.get(code, 'retrying cannot fix this')}"


class SlackApi:
    """A Slack workspace as the bot token sees it."""

    def __init__(self, token: str, base_url: str):
        self.client = AsyncWebClient(token=token, base_url=base_url, timeout=TIMEOUT_SECONDS, retry_handlers=[])
        parts = urlsplit(self.client.base_url)
        self.api_origin = f"{parts.scheme}://{parts.netloc}/"

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except SlackApiError as exc:
            raise classify(exc) from exc
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChatError("unreachable", f"Slack could not be reached: {exc!r}") from exc

    async def post(self, channel: str, content: Content) -> tuple[str, str]:
        text, layout = render(content)
        response = await self._call(lambda: self.client.chat_postMessage(
            channel=channel, text=text, blocks=layout, unfurl_links=False, unfurl_media=False))
        return str(response["channel"]), str(response["ts"])

    async def update(self, channel_id: str, ts: str, content: Content) -> None:
        text, layout = render(content)
        await self._call(lambda: self.client.chat_update(channel=channel_id, ts=ts, text=text, blocks=layout))

    async def user_by_email(self, email: str) -> str | None:
        try:
            response = await self._call(lambda: self.client.users_lookupByEmail(email=email))
        except ChatError as exc:
            if exc.code == "users_not_found":
                return None
            raise
        return _user_id(response.get("user"))

    async def user_email(self, user_id: str) -> str | None:
        """The email of a Slack user (scope users:read.email), None when Slack shows none."""
        response = await self._call(lambda: self.client.users_info(user=user_id))
        user = response.get("user")
        profile = user.get("profile") if isinstance(user, dict) else None
        email = profile.get("email") if isinstance(profile, dict) else None
        return email.lower() if isinstance(email, str) and "@" in email else None

    async def open_dialog(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call(lambda: self.client.views_open(trigger_id=trigger_id, view=view))

    async def post_ephemeral(self, channel_id: str, user_id: str, message: blocks.Message) -> None:
        text, layout = message
        await self._call(lambda: self.client.chat_postEphemeral(channel=channel_id, user=user_id, text=text,
                                                                blocks=layout))

    def may_respond_to(self, response_url: str) -> bool:
        """Only Slack's own hooks (or the configured API's host, for a local test server) get our
        answers: a response URL is in the payload, and we never post to a URL a request chose."""
        return response_url.startswith((SLACK_HOOKS, self.api_origin))

    async def respond(self, response_url: str, message: blocks.Message, *, replace_original: bool = False) -> None:
        """Answer the person who acted, through the interaction's `response_url` (ephemeral)."""
        if not self.may_respond_to(response_url):
            log.warning("not answering through a response_url outside Slack: %s", response_url[:100])
            return
        text, layout = message
        hook = AsyncWebhookClient(response_url, timeout=TIMEOUT_SECONDS)
        try:
            response = await hook.send(text=text, blocks=layout, response_type="ephemeral",
                                       replace_original=replace_original)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChatError("unreachable", f"Slack's response_url could not be reached: {exc!r}") from exc
        if response.status_code != 200:
            raise ChatError(f"http_{response.status_code}", f"Slack's response_url answered {response.body[:200]}")


def _user_id(user: Any) -> str | None:
    found = user.get("id") if isinstance(user, dict) else None
    return found if isinstance(found, str) and found else None
