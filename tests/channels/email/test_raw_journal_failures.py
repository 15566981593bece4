"""`RawJournal` under failures: a failed rotation closes only its own descriptors, a failure of any kind
answers its batch's callers (StorageFailed, so SMTP says 451) and leaves the writer alive, and a disk
that stays full does not gather a segment file per failed batch."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest

from router.core.errors import StorageFailed
from router.core.store import attachments
from router.core.store.attachments import RawJournal, read_raw


async def test_a_failed_rotation_does_not_close_a_file_another_thread_opened(tmp_path: Path, monkeypatch) -> None:
    """When the next segment cannot be opened (a full disk, EMFILE), the descriptor number of the full
    one may already belong to another thread's file or socket: it must not be closed again."""
    journal = RawJournal(tmp_path / "raw", segment_bytes=8)
    first = await journal.append(b"fills the first segment")
    victim: list[int] = []
    real_open = os.open

    def open_(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith(".seg") and first.split(":")[1] not in str(path) and not victim:
            # Another thread opens a file right now: it gets the lowest free number.
            victim.append(real_open(tmp_path / "someone-elses-file", os.O_WRONLY | os.O_CREAT, 0o600))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(attachments.os, "open", open_)
    with pytest.raises(StorageFailed):
        await journal.append(b"the mail that triggers the rotation")
    monkeypatch.setattr(attachments.os, "open", real_open)
    assert victim, "the rotation was not reached"
    try:
        os.fstat(victim[0])  # EBADF when the journal closed it
    except OSError as exc:
        pytest.fail(f"the journal closed descriptor {victim[0]}, which another thread had opened: {exc}")
    finally:
        try:
            os.close(victim[0])
        except OSError:
            pass
    later = await journal.append(b"after the failure")
    assert later.split(":")[1] != first.split(":")[1]
    assert read_raw(tmp_path, later) == b"after the failure"


async def test_a_writer_that_dies_of_an_unexpected_error_fails_its_callers(tmp_path: Path, monkeypatch) -> None:
    """Not only a disk error: anything the write raises (a RuntimeError from a default executor that is
    shutting down, a MemoryError...) must answer the batch's callers, or every SMTP session of the
    batch waits for ever holding its connection slot; and the next mail is written again."""
    journal = RawJournal(tmp_path / "raw")
    real_write = journal._write

    def broken(contents: list[bytes]) -> list[str]:
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(journal, "_write", broken)
    try:
        with pytest.raises(StorageFailed):
            await asyncio.wait_for(journal.append(b"a mail"), 2)
    except TimeoutError:
        pytest.fail("append() never returned: the batch's callers are left waiting forever")
    monkeypatch.setattr(journal, "_write", real_write)
    later = await asyncio.wait_for(journal.append(b"the next mail"), 2)
    assert read_raw(tmp_path, later) == b"the next mail"


async def test_a_cancelled_writer_fails_its_batch_and_the_mails_waiting_behind_it(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """At shutdown the loop cancels the writer task: callers of the batch it was writing, and those
    gathered behind it, are answered (451) rather than left waiting."""
    journal = RawJournal(tmp_path / "raw")
    writing, release = threading.Event(), threading.Event()
    real_write = journal._write

    def slow(contents: list[bytes]) -> list[str]:
        writing.set()
        release.wait(5)
        return real_write(contents)

    monkeypatch.setattr(journal, "_write", slow)
    first = asyncio.ensure_future(journal.append(b"in the batch being written"))
    assert await asyncio.to_thread(writing.wait, 5), "the write never started"
    behind = asyncio.ensure_future(journal.append(b"waiting for the next batch"))
    await asyncio.sleep(0)
    assert journal._writer is not None
    journal._writer.cancel()
    try:
        results = await asyncio.wait_for(asyncio.gather(first, behind, return_exceptions=True), 2)
    except TimeoutError:
        pytest.fail("the callers of a cancelled writer were left waiting")
    finally:
        release.set()
    assert [type(result) for result in results] == [StorageFailed, StorageFailed], results


async def test_a_full_disk_does_not_leave_a_new_segment_file_per_failed_batch(tmp_path: Path, monkeypatch) -> None:
    """While the disk stays full, every retrying sender's batch fails: a segment file (and two
    directory fsyncs) each would use up inodes and directory space the database needs to recover.
    Once the disk has room again, mails are kept, and what was kept before is intact."""
    journal = RawJournal(tmp_path / "raw")
    before = await journal.append(b"before the disk filled up")
    real_write_all = attachments._write_all

    def full(fd: int, contents: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(attachments, "_write_all", full)
    for n in range(20):
        with pytest.raises(StorageFailed):
            await journal.append(b"retry %d" % n)
    segments = sorted((tmp_path / "raw").glob("*.seg"))
    assert len(segments) <= 2, f"{len(segments)} segment files after 20 failed batches"
    monkeypatch.setattr(attachments, "_write_all", real_write_all)
    after = await journal.append(b"once there is room again")
    assert (read_raw(tmp_path, before), read_raw(tmp_path, after)) == (b"before the disk filled up",
                                                                       b"once there is room again")
    assert len(list((tmp_path / "raw").glob("*.seg"))) <= 2
