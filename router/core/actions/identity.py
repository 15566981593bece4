"""Proving an identity (SPEC §2.4): a one-time code sent to the address a customer claims, and an
agent confirming an identity on a customer's profile.

A claim only becomes a link here. A proved address that another customer owns merges the claimant
INTO that owner (recorded, undoable); otherwise the claim becomes a verified identity. Nothing here
ever tells the requester whether an address belongs to anyone: the answer to a code request is the
same masked address either way, and the code itself is never logged, stored or returned (only an
HMAC of it is kept).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from agents.store import AgentIdentity
from router.core.actions import Context, drain_after_commit
from router.core.errors import Conflict, InvalidInput, RateLimited
from router.core.inbound import Identity, email_identity, phone_identity
from router.core.merge import merge_customers
from router.core.outbound import email_message_id
from router.core.store import customers, events, outbox, proofs, suggestions
from router.core.store.customers import Suggestion

log = logging.getLogger(__name__)

CODE_TTL = timedelta(minutes=15)
MAX_ATTEMPTS = 5
"""Wrong guesses a code survives; then it is locked (a new code must be asked for)."""
CODES_PER_CUSTOMER = (3, timedelta(minutes=15))
"""Codes one claimant may ask for in the window; past it they are told to wait."""
CODES_PER_ADDRESS = ((5, timedelta(hours=1)), (10, timedelta(days=1)))
"""Codes sent to one address (whoever asks) per window. Past a cap the request is answered exactly as
if the code was sent, and nothing is sent: a refusal would tell the asker that someone else asked
for that address recently, and the mailbox's owner is not flooded."""

_TEXTS = {
    "en": ("Your verification code",
           "Your verification code is {code}.\n\nEnter it in the support chat within 15 minutes to confirm this"
           " address is yours, or open this link:\n{link}\n\nIf you did not ask for it, ignore this mail:"
           " nothing changes."),
    "ja": ("確認コードのお知らせ",
           "確認コードは {code} です。\n\n15分以内にサポートチャットに入力するか、次のリンクを開いて、"
           "このメールアドレスがご本人のものであることを確認してください。\n{link}\n\nお心当たりがない場合はこのメールを破棄してください。何も変更されません。"),
}


def mask(identity: Identity) -> str:
    """`hanako@example.net` → `h…@example.net`; a phone keeps its last two digits."""
    if identity.kind == "email":
        local, _, domain = identity.value.partition("@")
        return f"{local[:1]}…@{domain}"
    return f"…{identity.value[-2:]}"


def _digest(ctx: Context, customer_id: int, identity: Identity, code: str) -> bytes:
    """Keyed with the server secret: a copy of the table does not give the codes away."""
    message = f"{customer_id}:{identity.key}:{code}".encode()
    return hmac.new(ctx.config.settings.secret_key.encode(), message, hashlib.sha256).digest()


def link_token(ctx: Context, proof_id: int, code_hash: bytes) -> str:
    """The one-click link's key: an HMAC over the proof and its code's HMAC, so the server can check
    it without keeping it, and nobody without the secret can make one."""
    mac = hmac.new(ctx.config.settings.secret_key.encode(), b"link:%d:" % proof_id + code_hash, hashlib.sha256)
    return f"{proof_id}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"


def _provable(identity: Identity) -> Identity:
    normal = email_identity(identity.value) if identity.kind == "email" else None
    if normal is None:
        raise InvalidInput("only an email address can be proved with a code")
    return normal


async def request_proof(ctx: Context, customer_id: int, identity: Identity, *, channel: str) -> str:
    """Queue a one-time 6-digit code to the claimed address by email (in the customer's language) and
    return the address masked ("h…@example.net"). Rate limited per customer (RateLimited) and per
    address (silently: see `CODES_PER_ADDRESS`)."""
    identity = _provable(identity)
    now = ctx.clock()
    code = f"{secrets.randbelow(1_000_000):06d}"
    async with ctx.pool.acquire() as conn, conn.transaction():
        customer_id = await customers.live_id(conn, customer_id)
        per_customer, *per_address = await proofs.recent_requests(
            conn, customer_id, identity, [now - CODES_PER_CUSTOMER[1], *(now - w for _, w in CODES_PER_ADDRESS)])
        if per_customer >= CODES_PER_CUSTOMER[0]:
            raise RateLimited("too many codes were asked for; wait a few minutes and try again")
        if any(sent >= cap for sent, (cap, _) in zip(per_address, CODES_PER_ADDRESS, strict=True)):
            log.warning("identity proof for customer %s not sent: %s had its codes for now", customer_id,
                        mask(identity))
            return mask(identity)
        code_hash = _digest(ctx, customer_id, identity, code)
        proof_id = await proofs.create(conn, customer_id, identity, channel, code_hash, now, CODE_TTL)
        link = f"{ctx.config.settings.public_url}/verify/{link_token(ctx, proof_id, code_hash)}"
        language = "ja" if await customers.language_of(conn, customer_id) == "ja" else "en"
        subject, text = _TEXTS[language]
        key = f"proof:{proof_id}"
        domain = ctx.config.service.support_address.partition("@")[2]
        payload = {"to": identity.value, "subject": subject, "text": text.format(code=code, link=link),
                   "language": language, "auto_submitted": True,
                   "message_id": email_message_id(key, domain, ctx.config.settings.secret_key)}
        await outbox.enqueue(conn, key=key, kind="identity_proof", channel="email", customer_id=customer_id,
                             payload=payload, now=now)
    log.info("identity proof %s queued for customer %s (%s)", proof_id, customer_id, mask(identity))
    return mask(identity)


async def verify_proof(ctx: Context, customer_id: int, identity: Identity, code: str) -> bool:
    """Check a code (constant time; at most `MAX_ATTEMPTS` guesses per code, within `CODE_TTL`). On
    success the address is the customer's: merged INTO its verified owner when there is one
    (recorded as an undoable merge), else their claim becomes a verified identity."""
    identity = _provable(identity)
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        customer_id = await customers.live_id(conn, customer_id)
        proof = await proofs.latest_for_update(conn, customer_id, identity)
        if proof is None or proof.expires_at <= now or proof.attempts >= MAX_ATTEMPTS:
            return False
        right = hmac.compare_digest(_digest(ctx, customer_id, identity, code.strip()), proof.code_hash)
        if not right:
            await proofs.count_attempt(conn, proof.id)
            return False
        await proofs.spend(conn, proof.id, now)
        await _link(conn, ctx, customer_id, identity, reason="proved email by code", actor=None)
    await drain_after_commit(ctx, now)
    return True


async def _link(conn: asyncpg.Connection, ctx: Context, customer_id: int, identity: Identity, *, reason: str,
                actor: AgentIdentity | None) -> None:
    """`identity` is proved to be `customer_id`'s: join its verified owner, or verify it here."""
    now = ctx.clock()
    held = await customers.holding(conn, customer_id, identity)
    actor_id = actor.id if actor is not None else None
    if held.owner_id is not None and held.owner_id != customer_id:
        await merge_customers(conn, ctx.config.sla, held.owner_id, customer_id, now, reason=reason, actor_id=actor_id)
        await suggestions.close_between(conn, held.owner_id, customer_id, "merged", actor_id, reason, now)
        return
    await customers.mark_verified(conn, customer_id, identity, now)
    ticket_id = await customers.latest_ticket_id(conn, customer_id)
    await events.record(conn, ticket_id, "customer.identity_verified",
                        {"customer_id": customer_id, "identity": identity.key, "reason": reason, "actor_id": actor_id},
                        now)


LinkState = Literal["open", "linked", "used", "expired", "invalid"]


async def _linked_proof(conn: asyncpg.Connection, ctx: Context, token: str, now: datetime) -> tuple[
        proofs.Proof | None, LinkState]:
    number, _, _ = token.partition(".")
    numeric = number.isascii() and number.isdigit() and len(number) < 19  # "²" is a digit int() refuses
    proof = await proofs.by_id(conn, int(number), lock=True) if numeric else None
    if proof is None or not hmac.compare_digest(link_token(ctx, proof.id, proof.code_hash).encode(), token.encode()):
        return None, "invalid"
    if proof.used:
        return proof, "used"
    if proof.expires_at <= now or proof.attempts >= MAX_ATTEMPTS:
        return proof, "expired"
    return proof, "open"


async def describe_link(ctx: Context, token: str) -> tuple[LinkState, str | None]:
    """What the one-click link would do, without doing it (mail scanners open links): its state and
    the masked address it proves."""
    async with ctx.pool.acquire() as conn:
        proof, state = await _linked_proof(conn, ctx, token, ctx.clock())
    return state, mask(proof.identity) if proof is not None else None


async def verify_link(ctx: Context, token: str) -> LinkState:
    """The one-click link, confirmed by its owner: like the right code ("linked"), or why not."""
    now = ctx.clock()
    async with ctx.pool.acquire() as conn, conn.transaction():
        proof, state = await _linked_proof(conn, ctx, token, now)
        if proof is None or state != "open":
            return state
        await proofs.spend(conn, proof.id, now)
        customer_id = await customers.live_id(conn, proof.customer_id)
        await _link(conn, ctx, customer_id, proof.identity, reason=f"proved {proof.identity.kind} by link", actor=None)
    await drain_after_commit(ctx, now)
    return "linked"


MAX_TYPED = {"email": 320, "phone": 32}
"""Longest value an agent may type per kind (RFC 5321's address limit; a phone number with spacing)."""


def parse_identity(kind: object, value: object) -> Identity:
    """What an agent typed into the profile: an email address or a phone number, normalized."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("`value` is required")
    if kind not in ("email", "phone"):
        raise InvalidInput("`kind` must be email or phone")
    if len(value) > MAX_TYPED[str(kind)]:
        raise InvalidInput(f"`value` is longer than {MAX_TYPED[str(kind)]} characters, too long for a {kind}")
    parsed = email_identity(value) if kind == "email" else phone_identity(value)
    if parsed is None:
        raise InvalidInput(f"{value!r} is not a valid {kind}")
    return parsed


async def confirm_identity(ctx: Context, actor: AgentIdentity, customer_id: int, identity: Identity) -> None:
    """An agent confirms (or adds) an identity on a customer's profile: it becomes verified. When
    another customer holds it verified, that is a Conflict naming them, and a suggestion to merge
    the two is kept for whoever may merge them."""
    now = ctx.clock()
    conflict: int | None = None
    async with ctx.pool.acquire() as conn, conn.transaction():
        customer_id = await customers.live_id(conn, customer_id)
        held = await customers.holding(conn, customer_id, identity)
        if held.owner_id is not None and held.owner_id != customer_id:
            conflict = held.owner_id
            reason = f"{actor.email} tried to add {identity.kind} {identity.value}, which customer {conflict} uses"
            await suggestions.record(conn, customer_id, [Suggestion(conflict, identity, reason, 0.9)],
                                     await customers.latest_ticket_id(conn, customer_id), now)
        elif not held.held_verified:
            await _link(conn, ctx, customer_id, identity, reason=f"confirmed by {actor.email}", actor=actor)
    if conflict is not None:
        raise Conflict(f"customer {conflict} already holds {identity.kind} {identity.value} (verified):"
                       f" merge the two customers instead")
