"""`/inbox/live`: events reach open pages over real sockets, resume without loss or duplicates, keep id
order across out-of-order commits, and a slow page never holds up the others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx
import pytest
import uvicorn

import router.live
from router import db
from router.live import Batch, LiveHub
from router.web.inbox import live_stream
from tests.conftest import free_port, post_message, sign_in


@dataclass
class Message:
    event: str
    data: str
    id: str | None

    def json(self) -> dict:
        return json.loads(self.data)


class Stream:
    """An EventSource over a real socket: the messages of one `/inbox/live` response, parsed by a
    reader task (so that waiting with a timeout never cuts a message in half)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.retry: int | None = None
        self.messages: asyncio.Queue[Message | None] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        event, data, event_id = "message", [], None
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        self.messages.put_nowait(Message(event, "\n".join(data), event_id))
                    event, data, event_id = "message", [], None
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    event_id = value
                elif name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "retry":
                    self.retry = int(value)
        except httpx.TransportError:
            pass
        finally:
            self.messages.put_nowait(None)

    async def next(self, seconds: float = 10) -> Message:
        message = await asyncio.wait_for(self.messages.get(), seconds)
        if message is None:
            self.messages.put_nowait(None)
            raise EOFError("the stream ended")
        return message

    async def until(self, event: str, seconds: float = 10) -> Message:
        """The next message named `event`, skipping others."""
        async def wait() -> Message:
            while (message := await self.next(seconds)).event != event:
                pass
            return message
        return await asyncio.wait_for(wait(), seconds)

    async def nothing_within(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            message = await self.next(seconds)
            raise AssertionError(f"expected nothing, got {message}")

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


@pytest.fixture
async def server(app) -> AsyncIterator[str]:
    """The test app served by a real uvicorn on a free port (lifespan on: the follower runs)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    for _ in range(500):
        if served.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert served.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    app.state.services.live.close()  # end the open streams, as SIGTERM does
    served.should_exit = True
    await asyncio.wait_for(task, 15)


@pytest.fixture
def hub(app) -> LiveHub:
    return app.state.services.live


@pytest.fixture
async def pages(server: str, client: httpx.AsyncClient) -> AsyncIterator[Pages]:
    async with Pages(server, client) as opened:
        yield opened


class Pages:
    """Signed-in agents' streams on the real server; every stream is closed at the end."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self.client = client  # the ASGI client on the same app and database, for signing in
        self.stack = contextlib.AsyncExitStack()
        self.cookies: dict[str, str] = {}

    async def __aenter__(self) -> Pages:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    async def cookie(self, email: str) -> str:
        if email not in self.cookies:
            async with httpx.AsyncClient(transport=self.client._transport, base_url="http://router.test") as fresh:
                await sign_in(fresh, email)
                self.cookies[email] = fresh.cookies["router_session"]
        return self.cookies[email]

    async def open(self, email: str = "aiko@example.com", *, watch: tuple[str, ...] = (),
                   last_event_id: str | None = None, after: str | None = None, language: str = "en",
                   hello: bool = True) -> Stream:
        """A stream as `email`'s page opens it; with `hello`, its `live` message is read already."""
        headers = {"Accept": "text/event-stream", "Accept-Language": language,
                   "Cookie": f"router_session={await self.cookie(email)}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        params = [("watch", ref) for ref in watch] + ([("after", after)] if after else [])
        http = await self.stack.enter_async_context(httpx.AsyncClient(base_url=self.base_url, timeout=30))
        response = await self.stack.enter_async_context(http.stream("GET", "/inbox/live", headers=headers,
                                                                    params=params))
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        self.stack.push_async_callback(stream.close)
        if hello:
            stream.hello = await stream.until("live")  # type: ignore[attr-defined]
        return stream


async def max_event_id(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT coalesce(max(id), 0) FROM events")


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 15) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds}s: {what}")


async def followed(hub: LiveHub, pool: asyncpg.Pool) -> None:
    """Until the follower has handed out every event committed so far."""
    latest = await max_event_id(pool)
    await eventually(lambda: hub.cursor is not None and hub.cursor >= latest, "the follower caught up")


async def ticket_id(pool: asyncpg.Pool, ref: str) -> int:
    return await pool.fetchval("SELECT id FROM tickets WHERE number = $1", int(ref.removeprefix("T-")))


async def test_signed_out_page_gets_401_not_a_stream(client: httpx.AsyncClient) -> None:
    response = await client.get("/inbox/live", headers={"Accept": "text/event-stream"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert not response.headers["content-type"].startswith("text/event-stream")


async def test_an_event_written_through_an_action_reaches_connected_pages(pages: Pages, client, auth, pool) -> None:
    aiko = await pages.open("aiko@example.com")
    assert aiko.retry == 3000
    assert aiko.hello.id == str(await max_event_id(pool))

    ref = await post_message(client, auth, "My invoice is wrong, please refund", email="kim@customer.test")
    inbox = await aiko.until("inbox")
    assert ref in inbox.json()["refs"]
    assert "ticket.created" in inbox.json()["kinds"]
    assert inbox.id == str(await max_event_id(pool))

    watcher = await pages.open("ben@example.com", watch=(ref,))
    response = await client.post(f"/api/v1/tickets/{ref}/notes", json={"text": "customer called"}, headers=auth)
    assert response.status_code in (200, 201), response.text
    ticket = await watcher.next()
    assert ticket.event == f"ticket-{ref}"
    assert ticket.json()["kind"] == "note.added" and ticket.json()["ref"] == ref
    assert ticket.id is None  # only a batch's last message moves the resume point
    inbox = await watcher.next()
    assert inbox.event == "inbox" and inbox.id == str(await max_event_id(pool))
    # aiko does not watch that ticket: she gets the list refresh only
    assert (await aiko.next()).event == "inbox"

    away = await client.patch("/api/v1/agents/ben@example.com", json={"status": "away"}, headers=auth)
    assert away.status_code == 200, away.text
    agents = await aiko.until("agents")
    assert agents.json()["id"] == await pool.fetchval("SELECT max(id) FROM events WHERE kind = 'agent.updated'")


async def test_reconnecting_with_last_event_id_replays_exactly_what_was_missed(pages: Pages, hub: LiveHub, client,
                                                                               auth, pool) -> None:
    first = await pages.open()
    seen = first.hello.id
    missed = [await post_message(client, auth, f"question {i}", email=f"c{i}@customer.test") for i in range(3)]
    await followed(hub, pool)  # (else the last ones would come live after the catch-up, which is right too)
    missed_events = await pool.fetchval("SELECT count(*) FROM events WHERE id > $1", int(seen))
    latest = await max_event_id(pool)

    again = await pages.open(watch=tuple(missed), last_event_id=seen, hello=False)
    replayed = [await again.next() for _ in range(len(missed) + 2)]
    assert [m.event for m in replayed] == [*(f"ticket-{ref}" for ref in missed), "inbox", "live"]
    catch_up = replayed[-2].json()
    assert (catch_up["after"], catch_up["id"], catch_up["events"]) == (int(seen), latest, missed_events)
    assert sorted(catch_up["refs"]) == sorted(missed)
    assert [m.id for m in replayed] == [None] * (len(missed) + 1) + [str(latest)]

    later = await post_message(client, auth, "one more", email="later@customer.test")
    live = await again.until("inbox")
    assert live.json()["after"] == latest and live.json()["refs"] == [later]  # nothing twice

    # a stream the page had to open anew (no Last-Event-ID) resumes from `after` the same way
    fresh = await pages.open(after=str(latest), hello=False)
    assert (await fresh.next()).json()["refs"] == [later]
    assert (await fresh.next()).event == "live"


async def test_a_page_too_far_behind_or_from_another_database_is_told_to_reload(pages: Pages, hub: LiveHub, client,
                                                                                auth, pool, monkeypatch) -> None:
    first = await pages.open()
    for i in range(3):
        await post_message(client, auth, f"question {i}", email=f"c{i}@customer.test")
    await followed(hub, pool)
    monkeypatch.setattr(router.live, "REPLAY_LIMIT", 2)
    behind = await pages.open(last_event_id=first.hello.id, hello=False)
    reload = await behind.next()
    assert reload.event == "reload" and "data-live-reload" in reload.data
    assert (await behind.next()).event == "live"

    unknown = await pages.open(last_event_id=str(await max_event_id(pool) + 1000), hello=False)
    assert (await unknown.next()).event == "reload"


async def test_an_id_committed_after_a_larger_one_is_delivered_once_and_in_order(pages: Pages, hub: LiveHub, client,
                                                                                  auth, pool, database) -> None:
    hub.gap_wait = 60  # the hold must not run out during this test
    ref = await post_message(client, auth, "a ticket to hang events on", email="kim@customer.test")
    await followed(hub, pool)
    page = await pages.open(watch=(ref,))
    ticket = await ticket_id(pool, ref)
    slow = await asyncpg.connect(database)
    try:
        transaction = slow.transaction()
        await transaction.start()
        lower = await slow.fetchval("INSERT INTO events (ticket_id, kind) VALUES ($1, 'test.lower') RETURNING id",
                                    ticket)
        higher = await pool.fetchval("INSERT INTO events (ticket_id, kind) VALUES ($1, 'test.higher') RETURNING id",
                                     ticket)
        assert higher > lower
        reads = hub.reads
        await eventually(lambda: hub.reads >= reads + 3, "three reads")  # it has seen `higher` and holds it
        assert hub.cursor == lower - 1
        await page.nothing_within(0.3)
        await transaction.commit()
    finally:
        await slow.close()
    ticket_message, inbox = await page.next(), await page.next()
    assert ticket_message.json()["kinds"] == ["test.lower", "test.higher"]
    assert (inbox.json()["after"], inbox.json()["id"], inbox.json()["events"]) == (lower - 1, higher, 2)
    assert inbox.id == str(higher)
    after = await post_message(client, auth, "next", email="other@customer.test")
    assert (await page.until("inbox")).json()["refs"] == [after]  # neither of the two again


async def test_a_gap_that_never_fills_is_given_up_and_a_straggler_still_arrives_once(pages: Pages, hub: LiveHub,
                                                                                     client, auth, pool,
                                                                                     database) -> None:
    hub.gap_wait = 0.3
    ref = await post_message(client, auth, "a ticket to hang events on", email="kim@customer.test")
    await followed(hub, pool)
    page = await pages.open()
    ticket = await ticket_id(pool, ref)
    slow = await asyncpg.connect(database)
    try:
        rolled_back = slow.transaction()
        await rolled_back.start()
        await slow.execute("INSERT INTO events (ticket_id, kind) VALUES ($1, 'test.rolled-back')", ticket)
        await rolled_back.rollback()
        straggler = slow.transaction()
        await straggler.start()
        late_id = await slow.fetchval("INSERT INTO events (ticket_id, kind) VALUES ($1, 'test.late') RETURNING id",
                                      ticket)
        higher = await pool.fetchval("INSERT INTO events (ticket_id, kind) VALUES ($1, 'test.on-time') RETURNING id",
                                     ticket)
        on_time = await page.next()  # after the hold: neither gap blocks the page for good
        assert (on_time.json()["kinds"], on_time.id) == (["test.on-time"], str(higher))
        await straggler.commit()
    finally:
        await slow.close()
    late = await page.next()
    assert late.json()["late"] is True and late.json()["kinds"] == ["test.late"] and late.json()["id"] == late_id
    assert late.id is None  # a late message leaves the resume point where it was
    after = await post_message(client, auth, "next", email="other@customer.test")
    message = await page.until("inbox")
    assert message.json()["refs"] == [after] and message.json()["after"] == higher


async def test_a_page_that_cannot_keep_up_is_dropped_without_holding_up_the_others(pool, clock) -> None:
    hub = LiveHub(poll_seconds=0.02, batch_seconds=0.02, queue_limit=3)
    async with hub.running(pool, clock):
        slow, fast = hub.subscribe(()), hub.subscribe(())
        for number in range(6):
            event_id = await pool.fetchval("INSERT INTO events (kind) VALUES ('test.ping') RETURNING id")
            batch = await asyncio.wait_for(fast.next(), 5)
            assert isinstance(batch, Batch) and batch.last == event_id, f"batch {number}"
        assert slow.ended == "too slow"
        assert fast.ended is None
        assert await slow.next() is None


async def test_a_page_that_stops_reading_is_abandoned_not_waited_for(pool, clock) -> None:
    hub = LiveHub(heartbeat_seconds=0.05, send_timeout=0.2)
    never = asyncio.Event()

    async def send(message: dict) -> None:
        if message.get("body") == b"batch":
            await never.wait()  # the client's socket buffers are full and it reads nothing

    async def receive() -> dict:
        await never.wait()
        return {"type": "http.disconnect"}

    async def allowed() -> bool:
        return True

    async with hub.running(pool, clock):
        page = hub.subscribe(())
        stream = live_stream.EventStream(hub, page, b"opening", lambda item: b"batch", allowed)
        served = asyncio.create_task(stream({"type": "http"}, receive, send))
        page.offer(Batch(0, 1, ()))
        await asyncio.wait_for(served, 10)  # the follower's watchdog broke off the stuck write
        assert page.ended == "abandoned" and hub.pages == 0
        assert not served.cancelled()  # the stream ended normally, not as a cancelled request


class Proxy:
    """A TCP port in front of the test PostgreSQL that a test can take down (connections cut, new
    ones refused) and bring back: a database outage as the service sees it."""

    def __init__(self, database_dsn: str) -> None:
        parsed = urlparse(database_dsn)
        self.database = parsed.path.lstrip("/")
        socket_dir = parse_qs(parsed.query)["host"][0]
        self.target = next(str(path) for path in Path(socket_dir).glob(".s.PGSQL.*") if path.suffix != ".lock")
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_unix_connection(self.target)
        self.writers.update((client_writer, server_writer))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))
        self.writers.difference_update((client_writer, server_writer))


async def test_the_follower_survives_a_database_outage_and_resumes_where_it_was(pool, clock, database,
                                                                                caplog) -> None:
    proxy = Proxy(database)
    await proxy.up()
    hub = LiveHub(poll_seconds=0.02, batch_seconds=0.02)
    caplog.set_level(logging.INFO, logger="router.live")
    through_proxy = await db.create_pool(proxy.dsn, min_size=1, max_size=2)
    try:
        async with hub.running(through_proxy, clock):
            page = hub.subscribe(())
            await proxy.down()
            await eventually(lambda: "database unavailable" in caplog.text, "the outage logged")
            during = await pool.fetchval("INSERT INTO events (kind) VALUES ('test.during-outage') RETURNING id")
            await asyncio.sleep(1)  # a few failed reads: logged once, not on every retry
            assert caplog.text.count("database unavailable") == 1
            await proxy.up()
            after = await pool.fetchval("INSERT INTO events (kind) VALUES ('test.after-outage') RETURNING id")
            delivered: list[int] = []
            while len(delivered) < 2:
                item = await asyncio.wait_for(page.next(), 15)
                if isinstance(item, Batch):
                    delivered.extend(row.id for row in item.rows)
            assert delivered == [during, after]
            await eventually(lambda: "database answers again" in caplog.text, "the recovery logged")
            assert page.ended is None  # the page kept its stream throughout
    finally:
        await through_proxy.close()
        await proxy.down()


async def test_watch_parameters_and_the_resume_id_are_read_defensively() -> None:
    from starlette.requests import Request

    from router.web.inbox.live import resume_point, watched

    def request(query: str, headers: list[tuple[bytes, bytes]] = ()) -> Request:
        return Request({"type": "http", "query_string": query.encode(), "headers": list(headers)})

    assert watched(request("watch=T-1042&watch=nonsense&watch=t-7")) == {1042, 7}
    assert len(watched(request("&".join(f"watch=T-{n}" for n in range(100))))) == 20
    assert resume_point(request("after=12", [(b"last-event-id", b"40")])) == 40
    assert resume_point(request("after=12", [(b"last-event-id", b"x")])) == 12
    assert resume_point(request("after=-1")) is None
