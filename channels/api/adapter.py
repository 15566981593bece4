"""Generic integration channel: `POST /api/v1/messages` JSON → `InboundMessage` (SPEC §3).

The adapter checks the integration token (`ROUTER_API_TOKEN`, constant-time) before it parses
the body: see `channels.base` for the contract. `sender.id` is the sender's id on the integration's
platform (proved: the integration is that platform); `sender.email` and `sender.phone` are claims
unless the integration lists them in `sender.verified` (SPEC §2.4).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from channels.base import RawRequest
from router.core.errors import InvalidInput, Unauthorized
from router.core.inbound import (
    Identity,
    InboundMessage,
    email_identity,
    json_object,
    phone_identity,
    single_line,
    text_value,
)

CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_FIELD_CHARS = 1000
MAX_TEXT_CHARS = 100_000
VERIFIABLE = ("email", "phone")
"""What an integration may state it verified (`sender.verified`); anything else it sends is a claim."""


def _string(data: dict[str, Any], key: str, *, required: bool = False, limit: int = MAX_FIELD_CHARS) -> str | None:
    value = data.get(key)
    if key == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # platform user ids often arrive as numbers
    return text_value(value, key, limit=limit, required=required)


@dataclass(frozen=True)
class ApiSecrets:
    token: str | None  # None: the integration API is disabled


def parse(request: RawRequest, secrets: ApiSecrets) -> Sequence[InboundMessage]:
    """The one message of an integration request, after checking its bearer token."""
    if not secrets.token:
        raise Unauthorized("the integration API is disabled (ROUTER_API_TOKEN is not set)")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), secrets.token.encode()):
        raise Unauthorized("a valid `Authorization: Bearer <ROUTER_API_TOKEN>` header is required")
    return [parse_integration_message(json_object(request.body))]


def parse_integration_message(data: dict[str, Any]) -> InboundMessage:
    channel = _string(data, "channel", required=True) or ""
    if not CHANNEL_NAME.match(channel or ""):
        raise InvalidInput("`channel` must be a short lower-case name like \"api\", \"chat\" or \"telegram\"")
    sender = data.get("sender")
    if not isinstance(sender, dict):
        raise InvalidInput("`sender` must be an object with at least one of id, email, phone")
    verified = sender.get("verified", [])
    if not isinstance(verified, list) or not all(isinstance(v, str) and v in VERIFIABLE for v in verified):
        raise InvalidInput(f"`sender.verified` must be a list of {' and '.join(repr(k) for k in VERIFIABLE)}")
    identities: list[Identity] = []
    claims: list[Identity] = []
    sender_id = (_string(sender, "id") or "").strip()
    if sender_id:  # a blank id is no id: it would make every blank-id sender one customer
        identities.append(Identity(channel, sender_id))
    typed = (("email", email_identity, "an email address"), ("phone", phone_identity, "a phone number"))
    for key, parse, what in typed:
        value = _string(sender, key)
        if value:
            identity = parse(value)
            if identity is None:
                raise InvalidInput(f"`sender.{key}` {value!r} is not {what}")
            (identities if key in verified else claims).append(identity)
    if not identities and not claims:
        raise InvalidInput("`sender` needs at least one of id, email, phone")
    text = _string(data, "text", required=True, limit=MAX_TEXT_CHARS) or ""
    if not text.strip():
        raise InvalidInput("`text` is empty")
    external_id = _string(data, "external_id")
    return InboundMessage(
        channel=channel,
        identities=tuple(identities),
        claims=tuple(claims),
        text=text,
        external_id=external_id.strip() if external_id else None,
        sender_name=single_line(_string(sender, "name")),
        subject=single_line(_string(data, "subject")),
    )
