"""Slack's request signing (v0): every request to `/slack/actions` and `/slack/commands` is checked
over the raw body before anything in it is read.

`X-Slack-Signature` is `v0=` + hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{raw body}` keyed
with the app's signing secret. A timestamp more than five minutes away from now is refused, so a
captured request cannot be played back later; within the window, the caller refuses a signature it
has served already (`router.core.store.slack_alerts.first_time_seen`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from router.core.errors import Unauthorized

MAX_AGE_SECONDS = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` Slack sends for `body` at `timestamp`."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> str:
    """Check the request (header names in lower case) at `now` (Unix seconds) and return its
    signature, for the caller's replay check. Raises Unauthorized (401) with the reason."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    given = headers.get("x-slack-signature", "")
    if not timestamp or not given:
        raise Unauthorized("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise Unauthorized("X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        raise Unauthorized("the request is more than 5 minutes old (or from the future): refused as a possible replay")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        raise Unauthorized("the Slack signature does not match the body")
    return given
