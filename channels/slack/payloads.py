"""What Slack posts to us, parsed into plain types: button presses and the reassign dialog
(`/slack/actions`, a form field `payload` holding JSON) and slash commands (`/slack/commands`, a form).

Only what we act on is kept; anything else Slack may send (a closed dialog, a new interaction type)
parses to None and is acknowledged without effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import parse_qs

from router.core.errors import MalformedBody

Button = Literal["take", "reassign", "escalate", "snooze"]
BUTTONS: tuple[Button, ...] = get_args(Button)
ACTION_PREFIX = "sla_"
"""Button action ids are `sla_take`, `sla_reassign`, …; their value is the ticket reference."""
REASSIGN_CALLBACK = "sla_reassign"
AGENT_BLOCK, AGENT_ACTION = "agent", "agent"
REASON_BLOCK, REASON_ACTION = "reason", "reason"


@dataclass(frozen=True)
class ButtonPress:
    button: Button
    ref: str
    user_id: str
    action_ts: str  # unique per press: an idempotency key
    response_url: str | None
    trigger_id: str | None
    channel_id: str | None
    message_ts: str | None
    ephemeral: bool


@dataclass(frozen=True)
class ReassignSubmission:
    ref: str
    user_id: str
    agent_id: str | None
    reason: str
    channel_id: str | None
    view_id: str


@dataclass(frozen=True)
class SlashCommand:
    command: str
    text: str
    user_id: str
    response_url: str | None
    channel_id: str | None


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedBody("the body is not a URL-encoded form") from exc
    return {key: values[-1] for key, values in fields.items()}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_interaction(body: bytes) -> ButtonPress | ReassignSubmission | None:
    """A verified `/slack/actions` body: a press on one of our buttons, the reassign dialog sent, or
    None for anything else. MalformedBody (400) for a body that is not what Slack sends."""
    raw = _form(body).get("payload")
    if raw is None:
        raise MalformedBody("no `payload` field")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody("`payload` is not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedBody("`payload` is not a JSON object")
    user_id = _text(_dict(payload.get("user")).get("id"))
    if user_id is None:
        raise MalformedBody("the payload names no user")
    if payload.get("type") == "block_actions":
        return _button(payload, user_id)
    if payload.get("type") == "view_submission":
        return _submission(payload, user_id)
    return None


def _button(payload: dict[str, Any], user_id: str) -> ButtonPress | None:
    actions = payload.get("actions")
    action = _dict(actions[0]) if isinstance(actions, list) and actions else {}
    name = (_text(action.get("action_id")) or "").removeprefix(ACTION_PREFIX)
    ref = _text(action.get("value"))
    button = next((b for b in BUTTONS if b == name), None)
    if button is None or ref is None:
        return None
    container = _dict(payload.get("container"))
    return ButtonPress(
        button=button, ref=ref, user_id=user_id, action_ts=_text(action.get("action_ts")) or "",
        response_url=_text(payload.get("response_url")), trigger_id=_text(payload.get("trigger_id")),
        channel_id=_text(container.get("channel_id")) or _text(_dict(payload.get("channel")).get("id")),
        message_ts=_text(container.get("message_ts")), ephemeral=container.get("is_ephemeral") is True)


def _submission(payload: dict[str, Any], user_id: str) -> ReassignSubmission | None:
    view = _dict(payload.get("view"))
    if view.get("callback_id") != REASSIGN_CALLBACK:
        return None
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError as exc:
        raise MalformedBody("the dialog's private_metadata is not JSON") from exc
    ref = _text(_dict(meta).get("ref"))
    if ref is None:
        raise MalformedBody("the dialog names no ticket")
    values = _dict(_dict(view.get("state")).get("values"))
    agent = _dict(_dict(values.get(AGENT_BLOCK)).get(AGENT_ACTION))
    reason = _dict(_dict(values.get(REASON_BLOCK)).get(REASON_ACTION))
    return ReassignSubmission(
        ref=ref, user_id=user_id, agent_id=_text(_dict(agent.get("selected_option")).get("value")),
        reason=(_text(reason.get("value")) or "").strip(), channel_id=_text(_dict(meta).get("channel")),
        view_id=_text(view.get("id")) or "")


def parse_command(body: bytes) -> SlashCommand:
    """A verified `/slack/commands` body."""
    form = _form(body)
    user_id, command = form.get("user_id"), form.get("command")
    if not user_id or not command:
        raise MalformedBody("a slash command needs `command` and `user_id`")
    return SlashCommand(command=command, text=form.get("text", "").strip(), user_id=user_id,
                        response_url=form.get("response_url") or None, channel_id=form.get("channel_id") or None)
