"""The chat widget's frames (JSON text over the WebSocket), parsed and checked without I/O.

Client → server: `hello` (first: the token, the last entry number seen, the language), `message`
(a client id and text; resent with the same id until confirmed), `email` (an address the visitor
types: a claim), `verify` (the one-time code sent to it), `ping`.
Server → client: `welcome`, `entry` (numbered), `sent` (a message is committed), `failed`, `state`
(ticket, due time, agent, typing), `code_sent`, `verified`, `pong`, `error` (`code`, `detail`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from router.core.inbound import Identity, email_identity, storable_text

CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
CODE = re.compile(r"[A-Za-z0-9-]{4,32}")
MAX_FRAME_CHARS_OVERHEAD = 1024
"""Room in a frame for the JSON around the longest message text allowed."""


class BadFrame(Exception):
    """A frame the widget never sends: answered with an `error` frame, the connection stays open."""

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


@dataclass(frozen=True)
class Hello:
    token: str | None
    after: int
    language: str
    name: str | None


@dataclass(frozen=True)
class Message:
    client_id: str
    text: str


@dataclass(frozen=True)
class ClaimEmail:
    identity: Identity


@dataclass(frozen=True)
class Verify:
    code: str


@dataclass(frozen=True)
class Ping:
    pass


Frame = Hello | Message | ClaimEmail | Verify | Ping


def parse(text: str, *, max_message_chars: int) -> Frame:
    """One client frame, or BadFrame naming what is wrong."""
    if len(text) > max_message_chars * 6 + MAX_FRAME_CHARS_OVERHEAD:
        raise BadFrame("too_large", "the frame is larger than any message allowed")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadFrame("bad_frame", "a frame must be a JSON object") from exc
    if not isinstance(data, dict):
        raise BadFrame("bad_frame", "a frame must be a JSON object")
    kind = data.get("type")
    if kind == "hello":
        return _hello(data)
    if kind == "message":
        return _message(data, max_message_chars)
    if kind == "email":
        address = data.get("address")
        identity = email_identity(address) if isinstance(address, str) and len(address) <= 254 else None
        if identity is None:
            raise BadFrame("bad_email", "that is not an email address")
        return ClaimEmail(identity)
    if kind == "verify":
        code = data.get("code")
        if not isinstance(code, str) or not CODE.fullmatch(code.strip()):
            raise BadFrame("bad_code", "the code is 4 to 32 letters or digits")
        return Verify(code.strip())
    if kind == "ping":
        return Ping()
    raise BadFrame("bad_frame", f"unknown frame type {str(kind)[:40]!r}")


def _hello(data: dict[str, Any]) -> Hello:
    token, after, language, name = data.get("token"), data.get("after", 0), data.get("lang", "en"), data.get("name")
    if token is not None and (not isinstance(token, str) or len(token) > 512):
        raise BadFrame("bad_token", "the token is not one we issued")
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < 2**63:
        raise BadFrame("bad_frame", "`after` must be the number of the last entry seen (0 for none)")
    if name is not None and (not isinstance(name, str) or len(name) > 100 or not storable_text(name)):
        raise BadFrame("bad_frame", "`name` must be text of at most 100 characters")
    return Hello(token or None, after, language if language in ("en", "ja") else "en",
                 " ".join(name.split()) or None if name else None)


def _message(data: dict[str, Any], max_chars: int) -> Message:
    client_id = data.get("id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise BadFrame("bad_frame", "`id` must be 8 to 64 letters, digits, '-' or '_'")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadFrame("empty", "the message is empty", client_id)
    if len(text) > max_chars:
        raise BadFrame("too_long", f"a message holds at most {max_chars} characters", client_id)
    if not storable_text(text):
        raise BadFrame("bad_text", "the message contains characters that cannot be stored", client_id)
    return Message(client_id, text)


def encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
