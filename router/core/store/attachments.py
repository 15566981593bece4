"""Files kept beside the database, under `$ROUTER_DATA_DIR` (the only writer of them and of the
`attachments` table):

- attachment blobs, content-addressed under `attachments/`, metadata in PostgreSQL. Each is written
  and fsynced before the transaction that references it commits, so a committed row never points
  at a missing file; an orphan blob after a rollback is harmless.
- originals (the RFC 822 bytes of every mail), appended to journal segments under `raw/` by a
  group commit: see `RawJournal`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from weakref import WeakKeyDictionary

import asyncpg

from router.core.errors import StorageFailed
from router.core.inbound import InboundAttachment

log = logging.getLogger(__name__)

SEGMENT_BYTES = 64 * 1024 * 1024
"""A journal segment is closed once it holds this much; a new one is started (per process)."""
_RAW_REF = re.compile(r"raw:([0-9a-f]{32}):(\d{1,15}):(\d{1,15})")
_BLOB_REF = re.compile(r"sha256:([0-9a-f]{64})")


def blob_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "attachments" / sha256[:2] / sha256


def write_blob(data_dir: Path, content: bytes) -> str:
    """Write `content` durably under its SHA-256 (once); a disk failure is a `StorageFailed`."""
    try:
        return _write_blob(data_dir, content)
    except OSError as exc:
        raise _storage_failed(data_dir / "attachments", exc) from exc


def _storage_failed(where: Path, exc: Exception) -> StorageFailed:
    if isinstance(exc, OSError):
        log.error("cannot write to %s: %r", where, exc)
        reason = exc.strerror or exc
    else:  # not the disk: a bug, or the executor shutting down
        log.error("cannot write to %s", where, exc_info=exc)
        reason = type(exc).__name__
    return StorageFailed(f"the server could not store the message on disk ({reason}); retry later")


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


async def store(conn: asyncpg.Connection, data_dir: Path, message_id: int,
                attachments: Sequence[InboundAttachment]) -> None:
    for attachment in attachments:
        digest = await asyncio.to_thread(write_blob, data_dir, attachment.content)
        await conn.execute(
            "INSERT INTO attachments (message_id, filename, content_type, size, sha256, content_id, inline)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            message_id, attachment.filename, attachment.content_type, len(attachment.content), digest,
            attachment.content_id, attachment.inline)


# --- originals: the raw-mail journal ------------------------------------------------------------------


class RawJournal:
    """Append-only segments of original mails, made durable by a GROUP COMMIT.

    The database commit is the durability point of a message: its raw bytes must be on disk before
    the ingest commits (and so before the `250`). A file per mail with its own fsync cost 0.5–0.8 ms
    of CPU per message here (file creation, rename, fsync) plus a thread hop, while appending a batch
    and syncing it once costs ~0.02 ms per mail. Storing the bytes in the ingest transaction would bloat the
    messages table and its WAL with mail that is read almost never. So: one writer per process appends
    every waiting mail to its segment with one `writev` and ONE `fdatasync` per batch, in one thread
    hop, and only then resolves each caller's reference. While a batch syncs, the next one gathers,
    so under load many mails share one sync, and a lone mail waits for nobody.

    A reference is `raw:<segment>:<offset>:<length>`. A crash mid-batch leaves at most an unreferenced
    tail (its callers never got a reference, so nothing committed points at it); offsets are taken
    from the file's real size, so later appends stay correct. Each process writes its own segments
    (random names), so several `router serve` processes share a data dir safely.

    Any failure (of the disk, or of the thread hop itself) fails its whole batch with `StorageFailed`
    (SMTP then answers 451) and never the writer: callers left without an answer would hold their
    SMTP sessions for ever.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.segment = uuid.uuid4().hex
        self.syncs = 0  # batches made durable (one fdatasync each)
        self._waiting: list[tuple[bytes, asyncio.Future[str]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._directory_synced = False
        self._synced_bytes = 0  # the current segment's size at its last successful fdatasync

    async def append(self, content: bytes) -> str:
        """Keep `content` durably; returns its reference once its batch is synced."""
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append((content, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        return await done

    async def _write_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                refs = await asyncio.to_thread(self._write, [content for content, _ in batch])
            except asyncio.CancelledError:  # the loop is shutting down: nobody will write these
                batch, self._waiting = [*batch, *self._waiting], []
                _fail(batch, StorageFailed("the server is shutting down; retry later"))
                raise
            except Exception as exc:
                _fail(batch, _storage_failed(self.directory, exc))
                continue
            for (_, done), ref in zip(batch, refs, strict=True):
                if not done.done():  # a caller that went away (connection lost) is not told
                    done.set_result(ref)

    def _write(self, contents: list[bytes]) -> list[str]:
        """In the writer's thread: append the batch, sync it, return the references."""
        if self._synced_bytes >= self.segment_bytes:  # full: this batch starts the next segment
            self._start_segment()
        if not self._directory_synced:
            self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.segment}.seg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            offset = os.fstat(fd).st_size
            refs = []
            for content in contents:
                refs.append(f"raw:{self.segment}:{offset}:{len(content)}")
                offset += len(content)
            try:
                _write_all(fd, contents)
                os.fdatasync(fd)
            except BaseException:
                self._give_up_segment(path)
                raise
            self._synced_bytes = offset
        finally:
            os.close(fd)
        if not self._directory_synced:  # a new segment's name must survive a crash too
            _fsync_directory(self.directory)
            _fsync_directory(self.directory.parent)
            self._directory_synced = True
        self.syncs += 1
        return refs

    def _start_segment(self) -> None:
        self.segment, self._synced_bytes, self._directory_synced = uuid.uuid4().hex, 0, False

    def _give_up_segment(self, path: Path) -> None:
        """After a failed write or sync the file's state is unknown (a later fsync may not report the
        lost pages again): later batches go to a new segment. A segment no reference points into yet
        (its name was never synced, see `_write`) is removed and its name kept instead, so a disk that
        stays full does not gather an empty or torn segment per failed batch (hundreds a second from
        retrying senders)."""
        if not self._directory_synced:
            try:
                os.unlink(path)
                self._synced_bytes = 0
                return
            except OSError as exc:
                log.error("cannot remove the failed journal segment %s: %r", path, exc)
        self._start_segment()


def _fail(batch: list[tuple[bytes, asyncio.Future[str]]], failure: Exception) -> None:
    for _, done in batch:
        if not done.done():
            done.set_exception(failure)


def _write_all(fd: int, contents: list[bytes]) -> None:
    """`writev` the batch (no copy into one buffer), resuming after short writes."""
    views = [memoryview(c) for c in contents if c]
    while views:
        written = os.writev(fd, views[:512])  # under IOV_MAX
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_journals: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, RawJournal]] = WeakKeyDictionary()


def raw_journal(data_dir: Path) -> RawJournal:
    """This event loop's journal for `data_dir` (one writer per process and data dir)."""
    by_dir = _journals.setdefault(asyncio.get_running_loop(), {})
    directory = data_dir / "raw"
    if directory not in by_dir:
        by_dir[directory] = RawJournal(directory)
    return by_dir[directory]


async def store_raw(data_dir: Path, content: bytes) -> str:
    """Keep an original (e.g. the RFC 822 bytes of a mail) durably; returns its reference."""
    return await raw_journal(data_dir).append(content)


def read_raw(data_dir: Path, ref: str) -> bytes:
    """The original a reference names: a journal record, or a whole blob (references from before the
    journal). `FileNotFoundError` / `ValueError` for a missing file or a malformed reference."""
    if found := _RAW_REF.fullmatch(ref):
        segment, offset, length = found.group(1), int(found.group(2)), int(found.group(3))
        with open(data_dir / "raw" / f"{segment}.seg", "rb") as handle:
            handle.seek(offset)
            content = handle.read(length)
        if len(content) != length:
            raise ValueError(f"{ref} reaches past the end of its segment")
        return content
    if found := _BLOB_REF.fullmatch(ref):
        return blob_path(data_dir, found.group(1)).read_bytes()
    raise ValueError(f"not a reference to an original: {ref!r}")
