"""CPU time of the processes under test, read from /proc: the figure that survives a noisy machine.

Wall-clock rates on a shared 2-core machine swing with whatever else runs; the CPU milliseconds a
process spent per message do not. A process's CPU is `utime + stime` of /proc/<pid>/stat (in clock
ticks, `os.sysconf("SC_CLK_TCK")`). A server is a process TREE: PostgreSQL is a postmaster and its
backends (which come and go), `router serve --workers N` a parent and its workers. The tree's CPU
is the sum over its live members of their own time plus `cutime + cstime`, the time of children
they have already reaped, so a backend that exits between two snapshots still counts.

    before = cpu.snapshot(router=server.pid, postgres=cpu.postmaster_of(data_dir))
    ...  # send the messages
    per_message = cpu.per_message(before, cpu.snapshot(router=..., postgres=...), count)
    # {"router": 3.1, "postgres": 1.9, "total": 5.0} (ms of CPU per message)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Snapshot:
    wall: float  # time.perf_counter() when taken
    cpu_ms: dict[str, float]  # label → CPU ms of that tree so far


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and its reaped children); None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    fields = text[text.rindex(")") + 2:].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, utime + stime + cutime + cstime


def process_cpu_ms(pid: int) -> float:
    """CPU ms of one process (its own time and that of its reaped children)."""
    found = _stat(pid)
    if found is None:
        raise ProcessLookupError(pid)
    return found[1] * TICK_MS


def tree_cpu_ms(root: int) -> float:
    """CPU ms of `root` and every live descendant (plus whatever they reaped)."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = found
    if root not in stats:
        raise ProcessLookupError(root)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += stats[pid][1]
        pending.extend(children.get(pid, ()))
    return total * TICK_MS


def snapshot(**roots: int) -> Snapshot:
    """The CPU so far of each named process tree, e.g. `snapshot(router=pid, postgres=postmaster)`."""
    return Snapshot(time.perf_counter(), {label: tree_cpu_ms(pid) for label, pid in roots.items()})


def per_message(before: Snapshot, after: Snapshot, messages: int) -> dict[str, float]:
    """CPU ms per message of each tree between two snapshots, and their `total`."""
    spent = {label: (after.cpu_ms[label] - before.cpu_ms[label]) / messages for label in before.cpu_ms}
    spent["total"] = sum(spent.values())
    return {label: round(ms, 2) for label, ms in spent.items()}


def busy_share(before: Snapshot, after: Snapshot, label: str) -> float:
    """How many cores' worth the tree used between the snapshots (1.0 = one core all the time)."""
    return (after.cpu_ms[label] - before.cpu_ms[label]) / 1000 / (after.wall - before.wall)


def postmaster_of_data_dir(data_dir: Path) -> int:
    """The postmaster's pid: the first line of `postmaster.pid` in the server's data directory."""
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def postmaster_of_backend(backend_pid: int) -> int:
    """A backend's parent is its postmaster."""
    found = _stat(backend_pid)
    if found is None:
        raise ProcessLookupError(backend_pid)
    return found[0]


async def postmaster_of(dsn: str) -> int:
    """The postmaster of the (local) server `dsn` names: the parent of our own backend."""
    conn = await asyncpg.connect(dsn)
    try:
        return postmaster_of_backend(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()
