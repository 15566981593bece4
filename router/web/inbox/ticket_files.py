"""What a ticket's messages carry, served to signed-in agents only: attachments (always downloaded,
never shown in our origin) and an email's HTML (inside the page's sandboxed frame, under its own CSP).
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from router.core.errors import NotFound
from router.core.store import timeline
from router.core.store.attachments import blob_path
from router.web.http import MAX_DB_ID, services
from router.web.inbox.i18n import translate
from router.web.inbox.render import page_language
from router.web.inbox.session import require_agent
from router.web.inbox.ticket_email_html import INLINE_IMAGE_TYPES, content_id, document
from router.web.inbox.ticket_view import ticket_number

log = logging.getLogger(__name__)

SAFE_TYPES = frozenset({"application/pdf", "text/plain", "text/csv", "image/png", "image/jpeg", "image/gif",
                        "image/webp", "application/zip", "audio/mpeg", "video/mp4"})
"""Types an attachment keeps; anything else (HTML, SVG, scripts, unknown) is sent as bytes."""
MAX_INLINE_IMAGE_BYTES = 2 * 1024 * 1024
PRIVATE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _id(request: Request, name: str) -> int:
    value: int = request.path_params[name]
    if not 0 < value <= MAX_DB_ID:
        raise NotFound(f"no {name.replace('_', ' ')} {value}")
    return value


def safe_filename(name: str) -> str:
    """The last path part, without control characters, at most 150 characters; never empty."""
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return name[:150] or "attachment"


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback and the real name per RFC 5987 / RFC 6266."""
    name = safe_filename(filename)
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _blob(request: Request, sha256: str) -> Path | None:
    """Where the blob lives, or None when the file is not there (logged: our storage lost it)."""
    if not _SHA256.fullmatch(sha256):
        log.error("attachment row with a malformed digest %r", sha256)
        return None
    path = blob_path(services(request).config.settings.data_dir, sha256)
    if not path.is_file():
        log.error("attachment blob %s is missing from %s", sha256, path.parent)
        return None
    return path


async def attachment(request: Request) -> Response:
    """An attachment as a download: `Content-Disposition: attachment`, `nosniff`, a harmless type
    for anything that a browser would render, and a sandboxing CSP should it be opened anyway."""
    await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    attachment_id = _id(request, "attachment_id")
    async with services(request).require_pool().acquire() as conn:
        found = await timeline.attachment(conn, number, attachment_id)
    if found is None:
        raise NotFound(f"no attachment {attachment_id} on this ticket")
    path = _blob(request, found.sha256)
    if path is None:
        raise NotFound("the attachment's file is missing from the server's storage; the problem has been logged")
    declared = found.content_type.split(";")[0].strip().lower()
    return FileResponse(path, media_type=declared if declared in SAFE_TYPES else "application/octet-stream",
                        headers={**PRIVATE, "Content-Disposition": content_disposition(found.filename),
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})


async def message_html(request: Request) -> Response:
    """The HTML of one email, for the `<iframe sandbox>` of the ticket page (`?images=1`: with its
    remote images)."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    message_id = _id(request, "message_id")
    async with services(request).require_pool().acquire() as conn:
        markup = await timeline.message_html(conn, number, message_id)
        parts = await timeline.inline_parts(conn, message_id, MAX_INLINE_IMAGE_BYTES) if markup else []
    if markup is None:
        raise NotFound(f"message {message_id} of this ticket has no formatted (HTML) version")
    images = {}
    for part in parts:
        path = _blob(request, part.sha256) if part.content_type.lower() in INLINE_IMAGE_TYPES else None
        if path is not None and part.content_id:
            images[content_id(part.content_id)] = (part.content_type.lower(), await asyncio.to_thread(path.read_bytes))
    language = page_language(request, agent)
    body, policy = document(markup, inline_images=images, remote_images=request.query_params.get("images") == "1",
                            hidden_notice=translate(language, "Remote images are hidden."), language=language)
    return HTMLResponse(body, headers={**PRIVATE, "Content-Security-Policy": policy,
                                       "X-Frame-Options": "SAMEORIGIN"})
