"""A client that leaves before its body arrives (a closing tab's last request) is not an error of ours:
nothing was read, nothing done, no "unhandled error" in the log."""

from __future__ import annotations

import logging


async def test_a_body_that_never_arrives_is_answered_quietly(app, caplog) -> None:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/support", "raw_path": b"/support", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"router.test"), (b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", b"40")], "client": ("127.0.0.1", 5000), "server": ("router.test", 80)}
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
