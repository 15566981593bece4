"""Canned responses: reply texts agents insert, from `[[canned]]` in router.toml or added in `/admin`.

Pure: the type both sources share and the filling of placeholders. Texts are checked when they are
saved (`check_text`, the same rule the config loader applies), yet `fill` never raises whatever it
is given, so one odd text can never break the reply box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from router.config import CANNED_FIELDS, _template_problem

CannedSource = Literal["config", "admin"]
NAME_LIMIT = 200
TEXT_LIMIT = 20_000

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
"""`{{`, `}}` (literal braces, as in the config's texts) or one `{field}` / `{field:spec}` / `{field!r}`."""


@dataclass(frozen=True)
class Canned:
    """One response as the reply box offers it; `id` is None for the ones from router.toml, which are
    read-only in the UI. `language` None offers it whatever the ticket's language."""

    id: int | None
    name: str
    text: str
    language: str | None
    source: CannedSource


def check_text(text: str) -> str | None:
    """Why `text` cannot be saved as a canned response (unknown placeholder, stray brace), or None."""
    return _template_problem(text, CANNED_FIELDS)


def fill(text: str, *, customer_name: str, ref: str, agent_name: str, subject: str) -> str:
    """`text` with its placeholders filled in. `{{`/`}}` become single braces; anything else in braces
    (an unknown field, a lone brace) stays as written. Values are inserted once, never re-read, so a
    customer named "{ref}" stays "{ref}"."""
    values = {"customer_name": customer_name, "ref": ref, "agent_name": agent_name, "subject": subject}

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        field = re.split(r"[!:]", match.group(1), maxsplit=1)[0].strip()
        return values.get(field, token)

    return _TOKEN.sub(replace, text)
