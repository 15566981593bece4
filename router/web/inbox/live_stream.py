"""The Server-Sent Events wire format and the response that streams one page's subscription.

Hand-written rather than a library's streaming response because of what it must do besides writing
frames: end the stream the moment the follower drops the page (too slow) or the server stops, let
the follower break off a write a client stopped reading (`Subscription.abandon`), and notice a
browser that went away (uvicorn reports it through `receive`, not through `send`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from router.live import ABANDONED, HEARTBEAT, Item, LiveHub, Subscription

log = logging.getLogger(__name__)

RETRY_MILLISECONDS = 3000
"""How long a browser waits before reconnecting a stream that ended."""
KEEPALIVE = b": keep-alive\n\n"
STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # a reverse proxy such as nginx must pass each chunk on at once
}


def frame(event: str, data: str, event_id: int | None = None) -> bytes:
    """One SSE message; `event_id` moves the browser's resume point (`Last-Event-ID`)."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def json_frame(event: str, data: object, event_id: int | None = None) -> bytes:
    return frame(event, json.dumps(data, ensure_ascii=False, separators=(",", ":")), event_id)


def retry_hint() -> bytes:
    return f"retry: {RETRY_MILLISECONDS}\n\n".encode()


class EventStream(Response):
    """Streams `subscription` to one page: `opening` first (catch-up, resume point), then each item the
    follower hands out as `encode` renders it, until the page goes, is dropped, or the server stops.
    `still_allowed` is asked now and then (every `recheck_every` heartbeats) whether the agent may
    still watch: an ended session ends the stream."""

    media_type = "text/event-stream"

    def __init__(self, hub: LiveHub, subscription: Subscription, opening: bytes,
                 encode: Callable[[Item], bytes], still_allowed: Callable[[], Awaitable[bool]],
                 recheck_every: int = 20) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(STREAM_HEADERS)
        self.hub = hub
        self.subscription = subscription
        self.opening = opening
        self.encode = encode
        self.still_allowed = still_allowed
        self.recheck_every = recheck_every

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscription = self.subscription
        subscription.consumed_by(asyncio.current_task())
        watcher = asyncio.create_task(self._end_on_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await self._send(send, self.opening)
            heartbeats = 0
            while (item := await subscription.next()) is not None:
                if item is HEARTBEAT:
                    heartbeats += 1
                    if heartbeats % self.recheck_every == 0 and not await self.still_allowed():
                        break
                    chunk = KEEPALIVE
                else:
                    chunk = self.encode(item)
                if chunk:
                    await self._send(send, chunk)
            if subscription.ended == "too slow":
                log.info("live updates: dropped a page that could not keep up; it will reconnect and catch up")
            await self._send(send, b"", more_body=False)
        except asyncio.CancelledError:
            if subscription.ended != ABANDONED:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel was the follower's watchdog, not a shutdown: finish normally
            log.info("live updates: a page took no data for %ss; closing its connection", self.hub.send_timeout)
        except OSError as exc:  # a server that reports a vanished client by raising (ASGI spec 2.4)
            log.debug("live updates: a page went away: %r", exc)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.hub.unsubscribe(subscription)

    async def _send(self, send: Send, body: bytes, *, more_body: bool = True) -> None:
        self.subscription.writing_since = time.monotonic()
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
        self.subscription.writing_since = None

    async def _end_on_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.subscription.end("disconnected")
