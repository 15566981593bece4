"""The words of the domain, written once: ticket references, statuses and priorities.

Every module that formats `T-1042`, compares priorities or asks "is this ticket still active"
uses these, so the order of priorities and the shape of a reference cannot drift apart. SQL that
needs the priority order takes `PRIORITIES` as a parameter rather than spelling it out.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
"""Lowest first: `PRIORITIES.index(p)` is a priority's rank."""

Status = Literal["open", "pending", "solved", "closed"]
STATUSES: tuple[Status, ...] = get_args(Status)
ACTIVE_STATUSES: tuple[Status, ...] = ("open", "pending")
"""A customer has at most one active ticket: new messages join it."""

REF_PREFIX = "T-"
REF_PATTERN = re.compile(r"\bT-(\d{1,12})\b")


def ref(number: int) -> str:
    """`1042` → `T-1042`."""
    return f"{REF_PREFIX}{number}"


def parse_ref(text: str | None) -> int | None:
    """`T-1042` (any case, surrounding blanks ignored) → 1042; None when `text` is not a reference."""
    match = REF_PATTERN.fullmatch(text.strip().upper()) if text else None
    return int(match.group(1)) if match else None


def find_ref(text: str) -> int | None:
    """The first reference mentioned in `text` (a mail subject such as `Re: [T-1042] invoice`)."""
    match = REF_PATTERN.search(text.upper())
    return int(match.group(1)) if match else None


def as_status(value: str) -> Status | None:
    """`value` as a `Status`, or None when it is none of them."""
    return next((status for status in STATUSES if status == value), None)


def as_priority(value: str) -> Priority | None:
    """`value` as a `Priority`, or None when it is none of them."""
    return next((priority for priority in PRIORITIES if priority == value), None)


def is_active(status: str) -> bool:
    return status in ACTIVE_STATUSES


def priority_rank(priority: str) -> int:
    """0 for `low`; a ValueError for a word that is not a priority."""
    found = as_priority(priority)
    if found is None:
        raise ValueError(f"unknown priority {priority!r}")
    return PRIORITIES.index(found)


def urgency(priority: str) -> int:
    """0 for the most urgent: the queue's sort key (agents/ knows ranks, not priority names)."""
    return len(PRIORITIES) - 1 - priority_rank(priority)
