"""The channel contract: how a channel hands messages to the core, and how the core hands
messages back to a channel.

Inbound: an adapter is a pure function from what the platform sent — the request's headers and
raw body — and the channel's secrets to verified `InboundMessage`s. It checks the signature (or
token) itself, over the raw bytes, before parsing anything, and does no I/O, so every adapter is
unit-tested from the fixtures beside its tests (`tests/channels/<name>/fixtures/`). The HTTP edge
only reads the body (bounded), calls the adapter and gives the messages to the pipeline.
SMTP is the one transport without HTTP headers: its adapter is `channels.email.intake.to_inbound`
over the parsed mail and the envelope; the web form's fields arrive already parsed by the form
reader, so its adapter takes those (`channels.webform.form.parse_submission`).

Outbound: a sender implements `Sender` (one `send(item)` per outbox item) and raises
`PermanentDeliveryError` for refusals that retrying cannot fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from router.core.delivery import OutboxItem, PermanentDeliveryError, Refused, RetryLater, Sender
from router.core.inbound import InboundMessage

__all__ = ["InboundAdapter", "OutboxItem", "PermanentDeliveryError", "RawRequest", "Refused", "RetryLater", "Sender"]

SecretsT_contra = TypeVar("SecretsT_contra", contravariant=True)


@dataclass(frozen=True)
class RawRequest:
    """What a platform sent: header names in lower case, the body exactly as received."""

    headers: Mapping[str, str]
    body: bytes


class InboundAdapter(Protocol[SecretsT_contra]):
    def __call__(self, request: RawRequest, secrets: SecretsT_contra, /) -> Sequence[InboundMessage]:
        """Verified messages from `request`, or a `RouterError` (401/403 for a bad signature or
        token, 400/422 for a body that is not what the platform sends)."""
        ...
