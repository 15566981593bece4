"""Generic integration channel: `POST /api/v1/messages` JSON → `InboundMessage` (SPEC §3)."""

from __future__ import annotations

import re
from typing import Any

from router.core.errors import InvalidInput
from router.core.inbound import Identity, InboundMessage, email_identity, phone_identity, text_value

CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_FIELD_CHARS = 1000
MAX_TEXT_CHARS = 100_000


def _string(data: dict[str, Any], key: str, *, required: bool = False, limit: int = MAX_FIELD_CHARS) -> str | None:
    value = data.get(key)
    if key == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # platform user ids often arrive as numbers
    return text_value(value, key, limit=limit, required=required)


def parse_integration_message(data: dict[str, Any]) -> InboundMessage:
    channel = _string(data, "channel", required=True)
    if not CHANNEL_NAME.match(channel or ""):
        raise InvalidInput("`channel` must be a short lower-case name like \"api\", \"chat\" or \"telegram\"")
    sender = data.get("sender")
    if not isinstance(sender, dict):
        raise InvalidInput("`sender` must be an object with at least one of id, email, phone")
    identities: list[Identity] = []
    sender_id = _string(sender, "id")
    if sender_id:
        identities.append(Identity(channel, sender_id.strip()))
    proofs = (("email", email_identity, "an email address"), ("phone", phone_identity, "a phone number"))
    for key, parse, what in proofs:
        value = _string(sender, key)
        if value:
            identity = parse(value)
            if identity is None:
                raise InvalidInput(f"`sender.{key}` {value!r} is not {what}")
            identities.append(identity)
    if not identities:
        raise InvalidInput("`sender` needs at least one of id, email, phone")
    text = _string(data, "text", required=True, limit=MAX_TEXT_CHARS) or ""
    if not text.strip():
        raise InvalidInput("`text` is empty")
    external_id = _string(data, "external_id")
    return InboundMessage(
        channel=channel,
        identities=tuple(identities),
        text=text,
        external_id=external_id.strip() if external_id else None,
        sender_name=_string(sender, "name"),
        subject=_string(data, "subject"),
    )
