"""The open chat widgets of this process, and how entries reach them fast.

An entry is stored with a `pg_notify` in its own transaction (`store.chat`); this process LISTENs on
one pooled connection and, when a conversation it serves has a new entry, reads what its widgets
have not seen (one read per conversation, whatever the number of tabs) and sends it. No poll
interval sits between a commit and the widget: the notification arrives at commit, in every process.
A one-second poll of the served conversations backs the notifications up (a listener reconnecting,
PgBouncer in transaction mode where LISTEN is unavailable) and carries what is not an entry: the
ticket's agent ("agent joined"), their typing, the first-reply due time. Every `HEARTBEAT` the
process marks its conversations online, so the delivery worker of any process knows who is here.

The hub runs only while widgets are connected: the first one starts it, the last one stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from starlette.websockets import WebSocket, WebSocketDisconnect

from router import db
from router.core.clock import Clock
from router.core.errors import DATABASE_DOWN_ERRORS
from router.core.store import chat
from router.core.store.chat import Entry, State
from router.ratelimit import RateLimiter

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HEARTBEAT = timedelta(seconds=10)
ONLINE_FOR = timedelta(seconds=30)
"""How long one heartbeat vouches for a conversation: covers two missed beats of a busy process."""
PAGE = 200
SEND_TIMEOUT_SECONDS = 10.0
LISTEN_RETRY_SECONDS = 2.0


def entry_frame(entry: Entry) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "entry", "seq": entry.seq, "from": entry.author, "text": entry.body,
                             "at": entry.created_at.isoformat()}
    if entry.client_id:
        frame["id"] = entry.client_id
    for key in ("ref", "due", "agent", "kind"):
        if key in entry.meta:
            frame[key] = entry.meta[key]
    return frame


def state_frame(state: State) -> dict[str, Any]:
    return {"type": "state", "ref": state.ticket_ref, "agent": state.agent, "typing": state.typing,
            "due": state.first_reply_due.isoformat() if state.first_reply_due else None}


def _set(event: asyncio.Event, connection: object) -> None:
    event.set()


class Socket:
    """One open widget: what it has been sent, serialized writes, its own message rate."""

    def __init__(self, websocket: WebSocket, visitor_id: str, conversation_id: int, after: int, address: str,
                 messages_per_minute: int) -> None:
        self.websocket = websocket
        self.visitor_id = visitor_id
        self.conversation_id = conversation_id
        self.sent = after
        self.address = address
        self.limiter = RateLimiter(rate_per_minute=messages_per_minute, burst=min(10, messages_per_minute),
                                   max_keys=1)
        self.state: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._lock:
            await asyncio.wait_for(self.websocket.send_json(frame), SEND_TIMEOUT_SECONDS)

    async def send_entries(self, entries: list[Entry]) -> None:
        async with self._lock:
            for entry in entries:
                if entry.seq > self.sent:
                    await asyncio.wait_for(self.websocket.send_json(entry_frame(entry)), SEND_TIMEOUT_SECONDS)
                    self.sent = entry.seq

    async def send_state(self, state: State) -> None:
        frame = state_frame(state)
        if frame != self.state:
            self.state = frame
            await self.send(frame)


class ChatHub:
    def __init__(self, pool: asyncpg.Pool, clock: Clock, *, messages_per_minute_per_ip: int,
                 listen_dsn: str | None = None) -> None:
        self.pool = pool
        self.listen_dsn = listen_dsn
        self.clock = clock
        self.conversations: dict[int, set[Socket]] = {}
        self.per_address: Counter[str] = Counter()
        self.address_limiter = RateLimiter(rate_per_minute=messages_per_minute_per_ip,
                                           burst=min(30, messages_per_minute_per_ip))
        self._pushing: set[int] = set()
        self._dirty: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> int:
        return sum(len(sockets) for sockets in self.conversations.values())

    def connections_from(self, address: str) -> int:
        return self.per_address[address]

    @contextlib.contextmanager
    def admitted(self, address: str) -> Iterator[None]:
        """A connection from `address` counts against its limit from accept to close, hello or not."""
        self.per_address[address] += 1
        try:
            yield
        finally:
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def join(self, socket: Socket) -> None:
        self.conversations.setdefault(socket.conversation_id, set()).add(socket)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="chat hub")

    async def leave(self, socket: Socket) -> None:
        sockets = self.conversations.get(socket.conversation_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self.conversations[socket.conversation_id]
        if socket.conversation_id not in self.conversations:
            try:
                async with self.pool.acquire() as conn:
                    await chat.mark_left(conn, socket.conversation_id, self.clock())
            except DATABASE_DOWN_ERRORS as exc:
                log.warning("chat: could not record that a visitor left (%r)", exc)
        if not self.conversations and self._runner is not None:
            self._runner.cancel()
            self._runner = None

    async def push(self, conversation_id: int) -> None:
        """Send the conversation's widgets what they have not seen. Pushes of one conversation run one
        at a time; a notification during a push makes it read once more."""
        if conversation_id in self._pushing:
            self._dirty.add(conversation_id)
            return
        self._pushing.add(conversation_id)
        try:
            while True:
                self._dirty.discard(conversation_id)
                sockets = self.conversations.get(conversation_id)
                if not sockets:
                    return
                after = min(socket.sent for socket in sockets)
                async with self.pool.acquire() as conn:
                    entries = await chat.entries_after(conn, conversation_id, after, PAGE)
                for socket in list(sockets):
                    await self._send_or_drop(socket, socket.send_entries(entries))
                if len(entries) < PAGE and conversation_id not in self._dirty:
                    return
        finally:
            self._pushing.discard(conversation_id)

    async def _send_or_drop(self, socket: Socket, sending: Any) -> None:
        """A widget that cannot take a frame (gone, or not reading for `SEND_TIMEOUT_SECONDS`) is closed;
        it reconnects and resumes, and never holds up the conversation's other widgets."""
        try:
            await sending
        except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect) as exc:
            log.info("chat: dropping a widget that cannot take frames (%r)", exc)
            with contextlib.suppress(Exception):
                await socket.websocket.close(code=1011)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("chat: a push failed (%r); the next poll retries", task.exception())

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        conversation, _, seq = payload.partition(":")
        if not (conversation.isdigit() and seq.isdigit()):
            return
        sockets = self.conversations.get(int(conversation))
        if sockets and any(socket.sent < int(seq) for socket in sockets):
            self._spawn(self.push(int(conversation)))

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._listen())
                    group.create_task(self._poll())
            except Exception:
                log.exception("chat: the hub failed; restarting it")
                await asyncio.sleep(LISTEN_RETRY_SECONDS)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._listening_connection() as conn:
                    lost = asyncio.Event()
                    conn.add_termination_listener(functools.partial(_set, lost))
                    await conn.add_listener(chat.NOTIFY_CHANNEL, self._notified)
                    try:
                        await lost.wait()
                    finally:
                        if not conn.is_closed():
                            await conn.remove_listener(chat.NOTIFY_CHANNEL, self._notified)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("chat: LISTEN connection lost (%r); the poll covers until it is back", exc)
            await asyncio.sleep(LISTEN_RETRY_SECONDS)

    @contextlib.asynccontextmanager
    async def _listening_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection that holds the LISTEN: its own, to `listen_dsn` (`ROUTER_LISTEN_DATABASE_URL`:
        the database itself when the pool goes through PgBouncer in transaction mode), else one of the
        pool's."""
        if self.listen_dsn is None:
            async with self.pool.acquire() as conn:
                yield conn
            return
        conn = await db.connect(self.listen_dsn)
        try:
            yield conn
        finally:
            await conn.close()

    async def _poll(self) -> None:
        beat: datetime | None = None
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if not self.conversations:
                continue
            now = self.clock()
            try:
                async with self.pool.acquire() as conn:
                    found = await chat.states(conn, list(self.conversations), now)
                    if beat is None or now - beat >= HEARTBEAT:
                        await chat.mark_online(conn, list(self.conversations), now + ONLINE_FOR)
                        beat = now
            except DATABASE_DOWN_ERRORS as exc:
                log.warning("chat: state poll failed (%r)", exc)
                continue
            for state in found:
                sockets = self.conversations.get(state.conversation_id, set())
                if any(socket.sent < state.last_seq for socket in sockets):
                    self._spawn(self.push(state.conversation_id))
                for socket in list(sockets):
                    await self._send_or_drop(socket, socket.send_state(state))
