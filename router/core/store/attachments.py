"""Attachment blobs, content-addressed under `$ROUTER_DATA_DIR/attachments`, metadata in PostgreSQL
(the only writer of `attachments` and of the blob files).

Blobs are written (and fsynced) before the transaction that references them commits, so a
committed row never points at a missing file; an orphan blob after a rollback is harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from router.core.errors import StorageFailed
from router.core.inbound import InboundAttachment

log = logging.getLogger(__name__)


def blob_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256


def write_blob(data_dir: Path, content: bytes) -> str:
    """Write `content` durably under its SHA-256 (once); a disk failure is a `StorageFailed`."""
    try:
        return _write_blob(data_dir, content)
    except OSError as exc:
        log.error("cannot write to %s: %r", data_dir / "attachments", exc)
        raise StorageFailed(f"the server could not store the message on disk ({exc.strerror or exc}); retry later"
                            ) from exc


def _write_blob(data_dir: Path, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    path = blob_path(data_dir, digest)
    if path.exists():
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # unique: two writers of one blob never share it
    with open(temp, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return digest


async def store_raw(data_dir: Path, content: bytes) -> str:
    """Keep an original (e.g. the RFC 822 bytes of a mail) durably; returns its reference."""
    return "sha256:" + await asyncio.to_thread(write_blob, data_dir, content)


async def store(conn: asyncpg.Connection, data_dir: Path, message_id: int,
                attachments: Sequence[InboundAttachment]) -> None:
    for attachment in attachments:
        digest = await asyncio.to_thread(write_blob, data_dir, attachment.content)
        await conn.execute(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, content_id, inline)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            message_id, attachment.filename, attachment.content_type, len(attachment.content), digest,
            attachment.content_id, attachment.inline)
