"""Original mails are kept by a group commit (`RawJournal`): concurrent mails share one fdatasync, each
caller gets its reference only once its own bytes are synced, so over SMTP every mail is durable before
the ingest runs and long before its 250; a failed sync fails its whole batch (451), and the next batch
goes to a new segment."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiosmtplib
import pytest

from channels.email.intake import IntakeHandler, start_server
from router.core.errors import StorageFailed
from router.core.inbound import InboundMessage, IngestResult
from router.core.store import attachments
from router.core.store.attachments import RawJournal, read_raw
from tests.conftest import free_port


class SyncSpy:
    """Wraps `os.fdatasync`: how far each segment file was synced, and how many syncs ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, slow: float = 0.05) -> None:
        self.synced: dict[int, int] = {}  # inode -> bytes synced
        self.calls = 0
        self.fail_next = False
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            time.sleep(slow)  # a slow disk: more callers gather while a batch syncs
            if self.fail_next:
                self.fail_next = False
                raise OSError(5, "Input/output error")
            real(fd)
            stat = os.fstat(fd)
            self.synced[stat.st_ino] = stat.st_size
            self.calls += 1

        monkeypatch.setattr(os, "fdatasync", fdatasync)

    def durable(self, data_dir: Path, ref: str) -> bool:
        """Whether the record `ref` names lies within what was synced of its segment."""
        _, segment, offset, length = ref.split(":")
        inode = (data_dir / "raw" / f"{segment}.seg").stat().st_ino
        return self.synced.get(inode, 0) >= int(offset) + int(length)


async def test_concurrent_originals_share_one_sync_and_each_is_durable_when_returned(tmp_path, monkeypatch):
    spy = SyncSpy(monkeypatch)
    journal = RawJournal(tmp_path / "raw")
    contents = [f"mail {i} ".encode() * (50 + i) for i in range(40)]

    async def keep(content: bytes) -> str:
        ref = await journal.append(content)
        assert spy.durable(tmp_path, ref), f"{ref} returned before its bytes were synced"
        return ref

    refs = await asyncio.gather(*(keep(content) for content in contents))
    assert spy.calls == journal.syncs <= 3, spy.calls  # 40 mails, not 40 syncs
    assert [read_raw(tmp_path, ref) for ref in refs] == contents
    later = await keep(b"a lone mail waits for nobody")
    assert read_raw(tmp_path, later) == b"a lone mail waits for nobody"


async def test_every_mail_is_durable_before_the_ingest_and_its_250(config, tmp_path, monkeypatch):
    spy = SyncSpy(monkeypatch)
    checked: list[str] = []

    async def ingest(message: InboundMessage) -> IngestResult:
        assert message.raw_ref is not None and spy.durable(tmp_path, message.raw_ref)
        checked.append(message.raw_ref)
        return IngestResult(message_id=len(checked), ticket_id=1, ticket_ref="T-1", duplicate=False)

    async def store_raw(raw: bytes) -> str:
        return await attachments.store_raw(tmp_path, raw)

    port = free_port()
    server = await start_server(IntakeHandler(config, ingest, store_raw), "127.0.0.1", port, hostname="example.com")
    mails = [(f"From: c{i}@customer.example\r\nTo: support@example.com\r\nSubject: order {i}\r\n"
              f"Message-ID: <journal-{i}@customer.example>\r\n\r\nWhere is order {i}?\r\n").encode() for i in range(16)]

    async def send(raw: bytes) -> int:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as smtp:
            code, _ = await smtp.sendmail("c@customer.example", ["support@example.com"], raw)
            return 250 if not code else 0

    try:
        assert await asyncio.gather(*(send(raw) for raw in mails)) == [250] * len(mails)
    finally:
        server.close()
        await server.wait_closed()
    assert sorted(read_raw(tmp_path, ref) for ref in checked) == sorted(mails)
    assert spy.calls < len(mails)


async def test_a_failed_sync_fails_its_batch_and_the_next_batch_starts_a_new_segment(tmp_path, monkeypatch):
    spy = SyncSpy(monkeypatch, slow=0)
    journal = RawJournal(tmp_path / "raw")
    first = await journal.append(b"before the failure")
    spy.fail_next = True
    failed = await asyncio.gather(*(journal.append(b"lost %d" % i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(result, StorageFailed) for result in failed), failed
    after = await journal.append(b"after the failure")
    assert after.split(":")[1] != first.split(":")[1]
    assert (read_raw(tmp_path, first), read_raw(tmp_path, after)) == (b"before the failure", b"after the failure")


@pytest.mark.parametrize("ref", ["raw:../../etc/passwd:0:10", "raw:0123:0:1", "sha256:abc", "/etc/passwd", ""])
def test_a_malformed_reference_is_refused(tmp_path, ref):
    with pytest.raises(ValueError):
        read_raw(tmp_path, ref)


def test_a_reference_past_the_end_of_its_segment_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / f"{'a' * 32}.seg").write_bytes(b"short")
    with pytest.raises(ValueError):
        read_raw(tmp_path, f"raw:{'a' * 32}:2:10")
