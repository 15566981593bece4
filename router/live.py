"""Live updates for open inbox pages: ONE follower of the `events` table per process, fanned out in memory.

The follower polls `events` by id (a cheap index range read, one statement, so it works through
PgBouncer in transaction mode, where LISTEN would need a session of its own) and hands each batch to
every connected page's bounded in-memory queue. The database therefore sees the same few reads a
second whether no page or a thousand pages are open, and several `router serve` processes on one
database each follow the same rows.

Commits land out of id order. An id is taken when a row is inserted, not when it commits: a
transaction holding id 41 can commit after the one holding 42. Moving the cursor past 42 as soon as
42 is visible would lose 41 for good, so batches go out in id order up to the first missing id, and
rows beyond a gap are held until the gap fills or until they have waited `gap_wait` seconds. A gap
that outlives the wait is most likely permanent (a rolled-back transaction, the ids a crash skips),
and holding everything behind it longer would freeze every page. Ids given up on are still watched
for `LATE_WATCH_SECONDS`: a slow transaction that commits after all is delivered then, as a "late"
batch that carries no resume id (a page's resume point only ever moves forward). Every ingest
transaction takes milliseconds, so in practice the hold costs a page nothing and a late batch is
rare; the price of the wait is paid only behind a rolled-back transaction, once.

A page that cannot keep up (its queue of `queue_limit` items is full) is dropped rather than waited
for, so no page ever slows the others or the follower; it reconnects and catches up from the table
(`catch_up`) from the last event id it saw. A page whose write has hung for `send_timeout` (it reads
nothing and its socket buffers are full) is abandoned by the same loop. Under a stream of events a
page gets a chunk every `batch_seconds` at most, covering everything since the last: the cost of a
page is a write per batch, whatever the rate of events.

Presence (who has a ticket open, who types) is polled the same way, once per process, for the
tickets the connected pages watch (`router.core.store.presence`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any, Final

import asyncpg

from router.core.clock import Clock
from router.core.errors import DATABASE_DOWN_ERRORS, ServiceUnavailable
from router.core.store import events, presence
from router.core.store.events import Seen
from router.core.store.presence import Viewer

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
"""How often the follower looks for new events while none come."""
BATCH_SECONDS = 0.6
"""The least time between two batches: under a stream of events each page gets a chunk covering
everything since the last, not one per event. The chunk is encoded once per batch for all pages; what
is left per page is waking its stream and one socket write: about 50-55 us of server CPU (35 us user,
17 us system; 500 idle pages and a steady stream of events, the server's CPU time divided by the
chunks the pages received). That cost is per batch, whatever the rate of events, so this spacing sets
what 500 open pages cost (500 x 55 us / 0.6 s: about 5 % of a core) against how late an event may
reach them (SPEC §4: p99 <= 1 s; this spacing plus a read, the commit and the fan-out). 0.7 s saved a
sixth of that cost but put the p99 at 1.0-1.1 s on the loaded 2-core machine."""
GAP_WAIT_SECONDS = 1.0
"""How long events are held behind a missing id before it is given up on (see the module docstring)."""
LATE_WATCH_SECONDS = 30.0
LATE_WATCH_MAX = 1000
FOLLOW_LIMIT = 1000
"""Rows per read; a full read is followed by another at once, up to `CATCH_UP_READS` in one batch."""
CATCH_UP_READS = 10
HEARTBEAT_SECONDS = 15.0
"""Pages get a keep-alive this often, so proxies and browsers keep an idle stream open."""
PRESENCE_SECONDS = 1.0
QUEUE_LIMIT = 64
"""Items waiting for one page before it counts as too slow and is dropped (about half a minute of
batches; a healthy page drains its queue in milliseconds)."""
SEND_TIMEOUT_SECONDS = 10.0
"""A write to a page that has not finished within this long (the client reads nothing and its socket
buffers are full): the page is abandoned, its connection closed."""
REPLAY_LIMIT = 10_000
"""Events a reconnecting page may catch up on; further behind, it is told to reload."""
BACKOFF_MAX_SECONDS = 5.0


@dataclass
class Batch:
    """Events that became visible together, in id order. A live batch covers every id in
    (`after`, `last`]; a late one holds rows below the cursor that had been given up on."""

    after: int
    last: int
    rows: tuple[Seen, ...]
    late: bool = False
    encoded: dict[object, bytes] = field(default_factory=dict)
    """What the web edge made of this batch, kept so that every page shares one encoding."""

    @functools.cached_property
    def by_ticket(self) -> dict[int, list[Seen]]:
        """The rows of each ticket, by ticket number (worked out once, whatever the number of pages)."""
        grouped: dict[int, list[Seen]] = {}
        for row in self.rows:
            if row.ticket_number is not None:
                grouped.setdefault(row.ticket_number, []).append(row)
        return grouped


@dataclass(frozen=True)
class PresenceUpdate:
    """Who views ticket `number` now (everyone: each page leaves out its own agent)."""

    number: int
    viewers: tuple[Viewer, ...]


class Heartbeat:
    """Time for a keep-alive."""


HEARTBEAT: Final = Heartbeat()
ABANDONED: Final = "abandoned"
RELOAD: Final = "reload"
"""`catch_up`'s answer to a page too far behind (or from before the database was replaced)."""

Item = Batch | PresenceUpdate | Heartbeat


class Subscription:
    """One connected page: a bounded queue the follower fills and the page's stream drains."""

    def __init__(self, watch: frozenset[int], start: int, limit: int, late_pending: frozenset[int]) -> None:
        self.watch = watch
        """Ticket numbers the page shows: it gets their own events and presence."""
        self.start = start
        """The follower's cursor when the page connected: live batches continue after it."""
        self.floor = start
        """Live rows at or below this id are not sent (a page resuming from a more advanced process)."""
        self.late_pending = late_pending
        self.skip_late: frozenset[int] = frozenset()
        """Late ids the page already got in its catch-up."""
        self.ended: str | None = None
        self.writing_since: float | None = None
        """When the stream's current write to the page began, None between writes."""
        self._limit = limit
        self._items: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._consumer: asyncio.Task[Any] | None = None

    def consumed_by(self, task: asyncio.Task[Any] | None) -> None:
        """The task streaming to the page: cancelled if a write to the page gets stuck."""
        self._consumer = task

    def abandon(self) -> None:
        """The page stopped reading: end the stream and break off the write it is stuck in. A
        watchdog instead of a timeout around every write, which would cost a timer per write."""
        self.end(ABANDONED)
        if self._consumer is not None:
            self._consumer.cancel()

    def offer(self, item: Item) -> None:
        if self.ended is not None:
            return
        if len(self._items) >= self._limit:
            self.end("too slow")
            return
        self._items.append(item)
        self._wake.set()

    def end(self, reason: str) -> None:
        """Stop the stream now; items still queued are not sent (the page catches up when it reconnects)."""
        if self.ended is None:
            self.ended = reason
        self._wake.set()

    async def next(self) -> Item | None:
        """The next item for the page, waiting for one; None once the subscription has ended."""
        while not self._items and self.ended is None:
            self._wake.clear()
            await self._wake.wait()
        if self.ended is not None:
            return None
        return self._items.popleft()

    def visible(self, batch: Batch) -> Batch | None:
        """`batch` as this page should get it: without what it already has, None when nothing is left."""
        if batch.late:
            rows = tuple(row for row in batch.rows if row.id not in self.skip_late)
            if len(rows) == len(batch.rows):
                return batch
            return Batch(batch.after, batch.last, rows, late=True) if rows else None
        if batch.after >= self.floor:
            return batch
        if batch.last <= self.floor:
            return None
        return Batch(self.floor, batch.last, tuple(row for row in batch.rows if row.id > self.floor))


class LiveHub:
    """The process's follower and the pages it feeds. `running` starts it with the app."""

    def __init__(self, *, poll_seconds: float = POLL_SECONDS, batch_seconds: float = BATCH_SECONDS,
                 gap_wait: float = GAP_WAIT_SECONDS, queue_limit: int = QUEUE_LIMIT,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, presence_seconds: float = PRESENCE_SECONDS,
                 send_timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self.batch_seconds = batch_seconds
        self.gap_wait = gap_wait
        self.queue_limit = queue_limit
        self.heartbeat_seconds = heartbeat_seconds
        self.presence_seconds = presence_seconds
        self.send_timeout = send_timeout
        self.cursor: int | None = None
        """Every visible event up to this id has been handed out (or given up on)."""
        self.closing = False
        self.reads = 0
        """Follower reads done so far (tests wait on it instead of sleeping)."""
        self._pool: asyncpg.Pool | None = None
        self._subscriptions: set[Subscription] = set()
        self._watched: Counter[int] = Counter()
        self._presence: dict[int, tuple[Viewer, ...]] = {}
        self._held: dict[int, float] = {}
        self._late: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._presence_due = True

    @property
    def pages(self) -> int:
        return len(self._subscriptions)

    @contextlib.asynccontextmanager
    async def running(self, pool: asyncpg.Pool, clock: Clock) -> AsyncIterator[None]:
        """Follow `events` for the app's lifetime; on the way out, end every page's stream."""
        self._pool = pool
        self.closing = False
        try:
            async with pool.acquire() as conn:
                self.cursor = await events.latest_id(conn)
        except DATABASE_DOWN_ERRORS as exc:
            log.warning("live updates: database unavailable at start (%r); following once it answers", exc)
        task = asyncio.create_task(self._follow(pool, clock), name="live updates follower")
        try:
            with self._ending_streams_on_exit_signals():
                yield
        finally:
            self.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def subscribe(self, watch: Iterable[int]) -> Subscription:
        """A new page. 503 while the follower has no cursor yet (database unreachable) or is stopping."""
        if self.cursor is None or self.closing:
            raise ServiceUnavailable("live updates are not available right now; retry shortly")
        subscription = Subscription(frozenset(watch), self.cursor, self.queue_limit, frozenset(self._late))
        self._subscriptions.add(subscription)
        self._watched.update(subscription.watch)
        for number in subscription.watch:
            viewers = self._presence.get(number)
            if viewers is None:
                self.presence_changed()
            else:
                subscription.offer(PresenceUpdate(number, viewers))
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.end("closed")
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._watched.subtract(subscription.watch)
            for number in subscription.watch:
                if self._watched[number] <= 0:
                    del self._watched[number]
                    self._presence.pop(number, None)

    def presence_changed(self) -> None:
        """Someone's presence changed through this process: poll presence now, not at the next tick."""
        self._presence_due = True
        self._wake.set()

    def close(self) -> None:
        """End every stream and refuse new ones (shutdown)."""
        self.closing = True
        for subscription in list(self._subscriptions):
            subscription.end("server stopping")

    async def catch_up(self, subscription: Subscription, resume: int | None) -> Batch | str | None:
        """What a page that saw every event up to `resume` missed before it subscribed: a batch up to the
        subscription's start, None when nothing, or `RELOAD` when it is too far behind to replay
        (`REPLAY_LIMIT`) or names an event this database never had."""
        start = subscription.start
        if resume is None or resume == start:
            return None
        if self._pool is None:
            raise ServiceUnavailable("live updates are not running")
        async with self._pool.acquire() as conn:
            if resume > start:
                if resume > await events.latest_id(conn):
                    return RELOAD
                subscription.floor = resume  # it came from a process further along: skip what it has
                return None
            rows = await events.between(conn, resume, start, REPLAY_LIMIT + 1)
        if len(rows) > REPLAY_LIMIT:
            return RELOAD
        subscription.skip_late = frozenset(row.id for row in rows) & subscription.late_pending
        return Batch(resume, start, tuple(rows))

    async def _follow(self, pool: asyncpg.Pool, clock: Clock) -> None:
        """The follower loop: read, hand out, rest. A failure (the database down, or refusing us) is logged
        once and retried with backoff while pages keep their streams (heartbeats go on); reading then
        resumes where it was, so pages get what was committed meanwhile."""
        failing = False
        backoff = 0.0
        last_heartbeat = last_presence = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_heartbeat >= self.heartbeat_seconds:
                last_heartbeat = now
                self._abandon_stuck(now)
                self._hand_out(HEARTBEAT)
            delay = self.poll_seconds
            try:
                async with pool.acquire() as conn:
                    if self.cursor is None:
                        self.cursor = await events.latest_id(conn)
                    if await self._follow_events(conn):
                        delay = self.batch_seconds
                    if self._watched and (self._presence_due or now - last_presence >= self.presence_seconds):
                        self._presence_due = False
                        last_presence = now
                        await self._follow_presence(conn, clock())
                if failing:
                    log.info("live updates: database answers again; following from event %s", self.cursor)
                failing, backoff = False, 0.0
            except Exception as exc:
                if not failing:  # once per outage, not on every retry
                    if isinstance(exc, DATABASE_DOWN_ERRORS):
                        log.warning("live updates: database unavailable (%r); retrying with backoff", exc)
                    else:
                        log.exception("live updates: reading events failed; retrying with backoff")
                failing = True
                backoff = delay = min(BACKOFF_MAX_SECONDS, max(0.5, backoff * 2))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _follow_events(self, conn: asyncpg.Connection) -> bool:
        """Read what became visible and hand it out; True when a batch went out."""
        assert self.cursor is not None
        start = self.cursor
        late_ids = self._late_watch()
        ready: list[Seen] = []
        for _ in range(CATCH_UP_READS):
            rows = await events.following(conn, self.cursor, FOLLOW_LIMIT, late_ids)
            self.reads += 1
            if late_ids:
                late = tuple(row for row in rows if row.id <= start)
                for row in late:
                    self._late.pop(row.id, None)
                if late:
                    self._hand_out(Batch(start, start, late, late=True))
                late_ids = []
            fresh = [row for row in rows if row.id > self.cursor]
            in_order = self._in_order(fresh)
            ready.extend(in_order)
            if len(fresh) < FOLLOW_LIMIT or len(in_order) < len(fresh):
                break
        if ready:
            self._hand_out(Batch(start, self.cursor, tuple(ready)))
        return bool(ready)

    def _in_order(self, fresh: list[Seen]) -> list[Seen]:
        """The rows of `fresh` that can go out now, advancing the cursor past them (see the module
        docstring: rows wait behind a missing id for at most `gap_wait` seconds from when first seen)."""
        assert self.cursor is not None
        now = time.monotonic()
        ready: list[Seen] = []
        expected = self.cursor + 1
        for row in fresh:
            if row.id > expected:
                if now - self._held.setdefault(row.id, now) < self.gap_wait:
                    break
                self._give_up(expected, row.id, now)
            ready.append(row)
            expected = row.id + 1
        for row in fresh[len(ready):]:
            self._held.setdefault(row.id, now)
        if ready:
            self.cursor = ready[-1].id
            self._held = {id_: seen for id_, seen in self._held.items() if id_ > self.cursor}
        return ready

    def _give_up(self, first: int, stop: int, now: float) -> None:
        """Ids `first` .. `stop - 1` did not appear in time: watch them for a while in case they do."""
        log.debug("live updates: gave up waiting for event ids %s..%s", first, stop - 1)
        for missing in range(max(first, stop - LATE_WATCH_MAX), stop):
            self._late[missing] = now
        while len(self._late) > LATE_WATCH_MAX:
            del self._late[next(iter(self._late))]

    def _late_watch(self) -> list[int]:
        now = time.monotonic()
        self._late = {id_: since for id_, since in self._late.items() if now - since < LATE_WATCH_SECONDS}
        return list(self._late)

    async def _follow_presence(self, conn: asyncpg.Connection, now: datetime) -> None:
        """Hand the pages watching a ticket its viewers, when they changed since the last look."""
        numbers = list(self._watched)
        found = await presence.on_tickets(conn, numbers, now)
        for number in numbers:
            viewers = found.get(number, ())
            if self._presence.get(number) == viewers:
                continue
            self._presence[number] = viewers
            update = PresenceUpdate(number, viewers)
            for subscription in self._subscriptions:
                if number in subscription.watch:
                    subscription.offer(update)

    def _abandon_stuck(self, now: float) -> None:
        for subscription in list(self._subscriptions):
            since = subscription.writing_since
            if since is not None and now - since > self.send_timeout:
                subscription.abandon()

    def _hand_out(self, item: Item) -> None:
        for subscription in self._subscriptions:
            subscription.offer(item)

    @contextlib.contextmanager
    def _ending_streams_on_exit_signals(self) -> Iterator[None]:
        """On SIGTERM/SIGINT, end the streams first, then let the server's own handler run.

        uvicorn's graceful shutdown waits for every open response to finish before it shuts the app
        down, and an event stream never finishes by itself: without this a stop would hang until every
        browser went away. Ended streams tell browsers to reconnect (elsewhere, or here after the
        restart) and resume from their last event id."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous = {int(signum): signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

        def on_exit_signal(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.close)
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        for signum in previous:
            signal.signal(signum, on_exit_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                if signal.getsignal(signum) is on_exit_signal:
                    signal.signal(signum, handler)
