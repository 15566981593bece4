"""The ticket page is freed by reference counting as soon as it is sent.

Why it matters: a page whose render leaves a reference cycle (a Jinja macro closing over the page's
context does) keeps its whole timeline alive until the cycle collector runs, which then frees ten
pages' worth at once in the middle of some request: a 10-40 ms pause on a page that should take 15
(bench/ticket_page_bench.py's p99). The timeline, system entries, SLA clocks and forms are all drawn
here, so the page must leave no Jinja context behind.
"""

from __future__ import annotations

import gc

from jinja2.runtime import Context

from router.core.inbound import Identity, InboundMessage
from router.core.pipeline import Pipeline
from router.core.store.timeline import Message
from router.web.inbox.ticket_view import LivePart
from tests.conftest import ORIGIN, sign_in


async def test_a_ticket_page_leaves_nothing_for_the_cycle_collector(client, pool, config, clock) -> None:
    result = await Pipeline(config, clock).ingest(pool, InboundMessage(
        "email", (Identity("email", "mina@customer.example"),), "Where is my refund?", external_id="m1@x",
        subject="Refund", quoted_text="> an earlier mail"))
    ref = result.ticket_ref
    csrf = await sign_in(client, "aiko@example.com")
    sent = await client.post(f"/inbox/{ref}/note", data={"text": "checked", "csrf_token": csrf},
                             headers={"Origin": ORIGIN})
    assert sent.status_code == 303
    assert (await client.get(f"/inbox/{ref}")).status_code == 200  # templates compiled, caches warm
    gc.collect()
    gc.disable()
    try:
        # Objects of other tests in this process that are still in use are not this page's.
        before = {id(o) for o in gc.get_objects() if isinstance(o, Context | Message | LivePart)}
        page = await client.get(f"/inbox/{ref}")
        left = [type(o).__name__ for o in gc.get_objects()
                if isinstance(o, Context | Message | LivePart) and id(o) not in before]
    finally:
        gc.enable()
    assert page.status_code == 200 and "Where is my refund?" in page.text
    assert left == [], f"the page left {len(left)} objects in reference cycles: {sorted(set(left))}"
