"""Schemathesis fuzzes every documented operation of the real app against `/openapi.json`:
no 500s, and every answer conforms (documented status, content type, headers, body schema).

The app and its asyncpg pool live on the test's event loop, and Schemathesis' own ASGI transport
would run the app on a loop of its own. So Hypothesis draws the cases in a worker thread and each
request goes through the `client` fixture on the test's loop; Schemathesis serializes the case
(`as_transport_kwargs`) and judges the answer (`validate_response`). The document is the one the
app serves (`test_openapi.py` checks that they are the same).

Each operation is one test with a fresh database holding two customers with a ticket each, and
about half of the cases of operations with path parameters are pinned to those (`T-1001`,
customer 1, agent `ben@example.com`) so they reach the handlers' real work rather than only their
404s. Positive and negative (schema-violating) cases both run: 50 examples per operation, about 25
of each. Runs are derandomized (the same cases each run, so CI is stable); `ROUTER_FUZZ_RANDOM=1`
draws new ones and `ROUTER_FUZZ_EXAMPLES=500` hunts longer (examples per mode).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from router.web import openapi

BASE_URL = "http://router.test"
MAX_EXAMPLES = int(os.environ.get("ROUTER_FUZZ_EXAMPLES", "25"))  # per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
SCHEMA = schemathesis.openapi.from_dict(openapi.document())
OPERATIONS = [(path, method) for path, item in openapi.document()["paths"].items()
              for method in item if method != "parameters"]
PINNED = {"ref": "T-1001", "id": 1}
PINNED_AGENT = {"id": "ben@example.com"}


async def seed(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Two customers (1 and 2) with a ticket each (T-1001, T-1002); T-1001 has a reply and a note."""
    for email in ("mika@example.net", "ken@example.org"):
        response = await client.post("/api/v1/messages", headers=auth, json={
            "channel": "api", "sender": {"name": "Customer", "email": email}, "text": "My invoice is wrong"})
        assert response.status_code == 202, response.text
    for kind in ("replies", "notes"):
        response = await client.post(f"/api/v1/tickets/T-1001/{kind}", headers=auth, json={"text": "Looking"})
        assert response.status_code == 201, response.text


def strategy(path: str, method: str) -> st.SearchStrategy[Any]:
    operation = SCHEMA[path][method.upper()]
    pinned = {name: value for name, value in (PINNED_AGENT if path.startswith("/api/v1/agents/") else PINNED).items()
              if "{" + name + "}" in path}
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(mode) for mode in modes]
    if pinned:
        strategies += [operation.as_strategy(mode, path_parameters=pinned) for mode in modes]
    return st.one_of(strategies)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
async def test_operation_conforms_to_openapi(client: httpx.AsyncClient, auth: dict[str, str], path: str,
                                             method: str) -> None:
    await seed(client, auth)
    loop = asyncio.get_running_loop()

    def send(prepared: requests.PreparedRequest) -> httpx.Response:
        request = client.request(prepared.method or "GET", prepared.url or "", headers=dict(prepared.headers),
                                 content=prepared.body)
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)

    @settings(max_examples=MAX_EXAMPLES * 2, deadline=None, database=None, print_blob=False,
              derandomize=not os.environ.get("ROUTER_FUZZ_RANDOM"),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=strategy(path, method))
    def fuzz(case: schemathesis.Case) -> None:
        prepared = requests.Request(**case.as_transport_kwargs(base_url=BASE_URL, headers=auth)).prepare()
        try:
            case.validate_response(send(prepared), checks=CHECKS)
        except Exception as exc:
            exc.add_note(f"request: {prepared.method} {prepared.url} body={prepared.body!r}")
            raise

    await asyncio.to_thread(fuzz)
