"""What the chat socket refuses, and how: other sites' pages, tokens we did not sign, frames the widget
never sends, floods, and silence. Each answer is a clear error frame or close code; the server and the
visitor's other messages carry on."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from channels.chat.token import VisitorTokens
from tests.chat.conftest import Serving, Visitor


async def closed_with(visitor: Visitor) -> tuple[int | None, list[dict[str, object]]]:
    """The close code once the server has closed the socket, and the frames before it."""
    frames = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frames.append(await visitor.next())
    return closed.value.rcvd.code if closed.value.rcvd else None, frames


async def test_only_allowed_origins_may_open_the_chat(start: Serving) -> None:
    served = await start(allowed_origins=("https://shop.example.com",))
    with pytest.raises(InvalidStatus) as refused:
        await connect(served.ws_url, origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    for origin in ("https://shop.example.com", "http://127.0.0.1:8000"):  # listed, and our public URL
        visitor = Visitor(served.ws_url)
        await visitor.open(Origin=origin)
        await visitor.close()


@pytest.mark.parametrize("forge", ["not-a-token", "tampered", "other-secret"])
async def test_a_token_we_did_not_sign_is_refused(start: Serving, forge: str) -> None:
    served = await start()
    genuine = Visitor(served.ws_url)
    await genuine.open()
    await genuine.close()
    assert genuine.token is not None
    token = {"not-a-token": "abc.def.ghi",
             "tampered": genuine.token[:-3] + ("AAA" if not genuine.token.endswith("AAA") else "BBB"),
             "other-secret": VisitorTokens("another key").sign("x" * 24)}[forge]
    async with connect(served.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token, "after": 0}))
        error = json.loads(await ws.recv())
        assert (error["type"], error["code"]) == ("error", "bad_token")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_bad_frames_get_an_error_and_the_connection_stays(start: Serving) -> None:
    served = await start()
    visitor = Visitor(served.ws_url)
    await visitor.open()
    for frame, code in [("not json", "bad_frame"), ("[1, 2]", "bad_frame"), ('{"type": "launch"}', "bad_frame"),
                        ('{"type": "message", "id": "x"}', "bad_frame"),
                        ('{"type": "message", "id": "abcdefgh-1", "text": "   "}', "empty"),
                        ('{"type": "message", "id": "abcdefgh-2", "text": "a\\u0000b"}', "bad_text"),
                        ('{"type": "email", "address": "not an address"}', "bad_email"),
                        ('{"type": "hello", "after": 0}', "bad_frame"), ("[" * 100_000, "too_large")]:
        await visitor.send(frame)
        error = await visitor.until(lambda f: f["type"] == "error")
        assert error["code"] == code, (frame[:40], error)
    assert visitor.ws is not None
    await visitor.ws.send(b"\x00binary")
    assert (await visitor.until(lambda f: f["type"] == "error"))["code"] == "bad_frame"
    await visitor.send({"type": "ping"})
    assert (await visitor.until(lambda f: f["type"] in ("pong", "error")))["type"] == "pong"
    await visitor.close()


async def test_the_first_frame_must_be_hello(start: Serving) -> None:
    served = await start()
    async with connect(served.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv())["code"] == "no_hello"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_message_size_and_rate_limits(start: Serving) -> None:
    served = await start(max_message_chars=50, messages_per_minute=3, messages_per_minute_per_ip=1000)
    visitor = Visitor(served.ws_url)
    await visitor.open()
    await visitor.send({"type": "message", "id": "too-long-01", "text": "x" * 51})
    error = await visitor.until(lambda f: f["type"] == "error")
    assert (error["code"], error["id"]) == ("too_long", "too-long-01")
    for number in range(3):
        await visitor.send({"type": "message", "id": f"within-{number:02d}", "text": f"hello {number}"})
        assert (await visitor.until(lambda f: f["type"] in ("sent", "error")))["type"] == "sent"
    await visitor.send({"type": "message", "id": "over-the-limit", "text": "one more"})
    error = await visitor.until(lambda f: f["type"] in ("sent", "error"))
    assert (error["type"], error["code"], error["id"]) == ("error", "rate_limited", "over-the-limit")
    assert error["retry_after"] > 0
    await visitor.close()


async def test_a_frame_far_over_any_message_is_refused_before_it_is_read_whole(start: Serving) -> None:
    served = await start()
    visitor = Visitor(served.ws_url)
    await visitor.open()
    await visitor.send({"type": "message", "id": "huge-frame-01", "text": "x" * (1024 * 1024)})
    code, _ = await closed_with(visitor)
    assert code == 1009  # "message too big", from the server's frame bound, not after reading a megabyte


async def test_messages_per_address_are_limited_across_connections(start: Serving) -> None:
    served = await start(messages_per_minute=100, messages_per_minute_per_ip=2)
    codes = []
    for number in range(3):
        visitor = Visitor(served.ws_url)
        await visitor.open()
        await visitor.send({"type": "message", "id": f"per-address-{number}", "text": "hi"})
        frame = await visitor.until(lambda f: f["type"] in ("sent", "error"))
        codes.append(frame.get("code", frame["type"]))
        await visitor.close()
    assert codes == ["sent", "sent", "rate_limited"]


async def test_connections_per_address_are_limited(start: Serving) -> None:
    served = await start(connections_per_ip=2)
    first = Visitor(served.ws_url)
    await first.open()
    second = await connect(served.ws_url)  # silent, no hello yet: it counts all the same
    async with connect(served.ws_url) as third:
        error = json.loads(await third.recv())
        assert (error["type"], error["code"]) == ("error", "too_many_connections")
        with pytest.raises(ConnectionClosed) as closed:
            await third.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
    await first.close()
    for _ in range(50):  # a slot is free again once the server has seen the close
        again = Visitor(served.ws_url)
        try:
            await again.open()
            break
        except ConnectionClosed:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("the closed connection still counts")
    await again.close()
    await second.close()


async def test_a_silent_connection_is_closed_after_the_idle_timeout(start: Serving) -> None:
    served = await start(idle_timeout=timedelta(seconds=1))
    visitor = Visitor(served.ws_url)
    await visitor.open()
    code, frames = await closed_with(visitor)
    assert code == 4408
    assert frames[-1]["code"] == "idle"
