"""Public web form channel: `GET /support` (Japanese or English page) and `POST /support`.

Accepts a browser form (multipart, with attachments) or JSON. A hidden honeypot field catches
bots: they get the normal thank-you answer, but nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import UploadFile
from starlette.requests import Request

from router.core.errors import InvalidInput, PayloadTooLarge
from router.core.inbound import InboundAttachment, InboundMessage, email_identity, single_line, text_value

HONEYPOT_FIELD = "website"
MAX_NAME = 200
MAX_SUBJECT = 300
MAX_MESSAGE = 20_000

_templates = Environment(loader=PackageLoader("channels.webform", "templates"), autoescape=select_autoescape())

TEXTS = {
    "en": {
        "title": "Contact support", "intro": "Tell us what happened. We reply by email.",
        "name": "Your name", "email": "Email", "subject": "Subject", "message": "Message",
        "attachments": "Attachments (optional)", "send": "Send",
        "thanks": "Thank you — we received your request.",
        "reference": "We have sent the reference of your request, and when we will reply, to your email address.",
        "keep": "Answer that email to add to the same request.",
        "error": "Please check the form",
    },
    "ja": {
        "title": "お問い合わせ", "intro": "内容をご記入ください。メールでご返信いたします。",
        "name": "お名前", "email": "メールアドレス", "subject": "件名", "message": "お問い合わせ内容",
        "attachments": "添付ファイル（任意）", "send": "送信",
        "thanks": "お問い合わせを受け付けました。",
        "reference": "受付番号と回答予定時刻をご入力のメールアドレスにお送りしました。",
        "keep": "そのメールにご返信いただくと、同じお問い合わせに追加されます。",
        "error": "入力内容をご確認ください",
    },
}


def stylesheet() -> bytes:
    """The form's stylesheet (a file of its own: the CSP refuses inline styles)."""
    return resources.files("channels.webform").joinpath("static/support.css").read_bytes()


def page_language(request: Request) -> str:
    """`ja` when the browser prefers Japanese over English (Accept-Language order/q-values), else `en`."""
    best, best_q = "en", -1.0
    for position, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        language = tag.strip().lower().split("-")[0]
        score = q - position * 1e-3
        if language in TEXTS and score > best_q:
            best, best_q = language, score
    return best


def render_form(language: str, *, error: str | None = None, values: dict[str, str] | None = None,
                sent: bool = False) -> str:
    """The form, or (`sent`) the thank-you page. The thank-you page never shows a ticket reference:
    whoever typed the address may not own it (SPEC §2.4); the reference goes to the address."""
    return _templates.get_template("support.html").render(
        t=TEXTS[language], lang=language, error=error, values=values or {}, sent=sent,
        honeypot=HONEYPOT_FIELD)


@dataclass(frozen=True)
class FormSubmission:
    message: InboundMessage | None  # None when the honeypot caught a bot
    values: dict[str, str]


def _field(values: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = text_value(values.get(key), key, limit=limit, required=required)
    return value.strip() if value else ""


async def parse_submission(values: dict[str, Any], uploads: list[UploadFile], *, max_attachments: int,
                           max_attachment_bytes: int) -> FormSubmission:
    shown = {k: v for k, v in values.items() if isinstance(v, str) and k != HONEYPOT_FIELD}
    if str(values.get(HONEYPOT_FIELD) or "").strip():
        return FormSubmission(None, shown)
    name = _field(values, "name", MAX_NAME, required=False)
    address = _field(values, "email", 320)
    identity = email_identity(address)
    if identity is None:
        raise InvalidInput(f"`email` {address!r} is not an email address")
    subject = _field(values, "subject", MAX_SUBJECT, required=False)
    text = _field(values, "message", MAX_MESSAGE)
    uploads = [u for u in uploads if u.filename]
    if len(uploads) > max_attachments:
        raise InvalidInput(f"at most {max_attachments} attachments")
    attachments = []
    for upload in uploads:
        content = await upload.read(max_attachment_bytes + 1)
        if len(content) > max_attachment_bytes:
            raise PayloadTooLarge(f"attachment {upload.filename!r} is larger than {max_attachment_bytes} bytes")
        filename = (upload.filename or "attachment").replace("/", "_").replace("\\", "_")[:200]
        attachments.append(InboundAttachment(filename, upload.content_type or "application/octet-stream", content))
    message = InboundMessage(
        channel="web", identities=(), claims=(identity,), text=text, sender_name=single_line(name) or None,
        subject=single_line(subject) or None, attachments=tuple(attachments))
    return FormSubmission(message, shown)
