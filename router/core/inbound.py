"""The one normalized inbound message every channel adapter produces (ARCHITECTURE: channels → core),
and the value checks every adapter applies to what it hands over."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from router.core.errors import InvalidInput, MalformedBody

MAX_TEXT_CHARS = 200_000
"""The longest message text the pipeline stores; channels that must keep everything (email)
truncate to it and keep the original elsewhere."""

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def storable_text(value: str) -> bool:
    """PostgreSQL text holds valid UTF-8 without NUL: no lone surrogates (e.g. JSON "\\udc9d")."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_value(value: object, name: str, *, limit: int, required: bool = False) -> str | None:
    """A string PostgreSQL can store (no NUL, valid Unicode), at most `limit` characters, or an
    `InvalidInput` naming the field."""
    if value is None or (required and isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"`{name}` is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be a string")
    if len(value) > limit:
        raise InvalidInput(f"`{name}` is longer than {limit} characters")
    if not storable_text(value):
        raise InvalidInput(f"`{name}` contains NUL characters or invalid Unicode")
    return value


_CONTROLS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def json_object(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object, else MalformedBody (400): not JSON, not an object, or nested
    deeper than the parser goes (a RecursionError, otherwise a 500)."""
    try:
        data = json.loads(body)
    except ValueError as exc:  # not JSON, not UTF-8, or an integer longer than Python converts
        raise MalformedBody(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedBody("the body's JSON is nested too deeply") from exc
    if not isinstance(data, dict):
        raise MalformedBody("the body must be a JSON object")
    return data


def single_line(value: str | None) -> str | None:
    """A subject or a name as one line: control characters (CR, LF, tabs…) become one space. They
    never belong there, and in a reply's headers they would start new header lines."""
    return _CONTROLS.sub(" ", value).strip() if value is not None else None


def storable(value: str) -> str:
    """`value` made storable: NULs dropped, lone surrogates replaced. For channels that must keep
    whatever arrives (email) rather than refuse it."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class Identity:
    """One way to reach a customer: (kind, normalized value)."""

    kind: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"


def email_identity(address: str) -> Identity | None:
    """Lower-cased addr-spec, or None when it is not an email address."""
    address = unicodedata.normalize("NFKC", address or "").strip().lower()
    return Identity("email", address) if _EMAIL.match(address) else None


def phone_identity(number: str) -> Identity | None:
    """Digits with a leading + kept; None when fewer than 6 digits remain."""
    number = unicodedata.normalize("NFKC", number or "").strip()
    digits = re.sub(r"\D", "", number)
    if len(digits) < 6:
        return None
    return Identity("phone", ("+" if number.startswith("+") else "") + digits)


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class InboundMessage:
    """What a customer sent, already parsed by its channel.

    `identities` are proved by the platform (a mail's From, a platform user id, an address the
    integration says it verified); `identities[0]` sent the message, and identities proved together
    link to one customer. `claims` are what the sender only typed (an email address in the web form
    or chat, a phone number): they never link, never find another customer's history, never route
    replies to the sender (SPEC §2.4). A sender with claims only (the web form) has no `identities`.
    """

    channel: str
    identities: tuple[Identity, ...]
    text: str
    claims: tuple[Identity, ...] = ()
    external_id: str | None = None
    sender_name: str | None = None
    subject: str | None = None
    html: str | None = None
    quoted_text: str | None = None
    auto_kind: str | None = None
    thread_refs: tuple[str, ...] = ()
    ticket_number_hint: int | None = None
    raw_ref: str | None = None
    attachments: tuple[InboundAttachment, ...] = ()
    received_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """What the pipeline stored for a message: the channel's answer to its platform is made of it."""

    message_id: int | None  # None (with the ticket) only for a redelivery of someone else's message id
    ticket_id: int | None
    ticket_ref: str | None
    duplicate: bool
    new_ticket: bool = False
    reopened: bool = False

    def as_json(self) -> dict[str, object]:
        return {"message_id": self.message_id, "ticket_ref": self.ticket_ref, "duplicate": self.duplicate}
