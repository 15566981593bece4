"""`GET /openapi.json` is true: a valid OpenAPI 3.1 document, served by the app, naming exactly
the `/api/v1` routes the app serves, and real answers (successes and errors) match what it says."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route

from agents.config import AGENT_ROLES, AGENT_STATUSES
from router.core.refs import PRIORITIES, STATUSES
from router.web import openapi

DOC_URI = "urn:router:openapi"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
AIKO = {"Authorization": "Bearer demo-aiko"}  # an agent (demo config)
LENA = {"Authorization": "Bearer demo-lena"}  # a lead


class Conformance:
    """Checks a response against the document: its status is documented for the operation, its
    content type is the documented one, its body validates against the documented schema."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry = Registry().with_resource(
            DOC_URI, Resource.from_contents(document, default_specification=DRAFT202012))
        self.checked: set[tuple[str, str, str]] = set()

    def operation_for(self, method: str, url_path: str) -> tuple[str, dict[str, Any]]:
        for template, item in self.document["paths"].items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, url_path) and method.lower() in item:
                return template, item[method.lower()]
        raise AssertionError(f"{method} {url_path} is not documented")

    def _resolve(self, response: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
        while "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
            response = self.document
            for part in pointer.strip("/").split("/"):
                response = response[part.replace("~1", "/").replace("~0", "~")]
        return response, pointer

    def check(self, response: httpx.Response) -> Any:
        method, url_path = response.request.method, response.request.url.path
        template, operation = self.operation_for(method, url_path)
        status = str(response.status_code)
        assert status in operation["responses"], (
            f"{method} {url_path} answered {status}, not documented ({sorted(operation['responses'])}): "
            f"{response.text}")
        escaped = template.replace("~", "~0").replace("/", "~1")
        documented, pointer = self._resolve(operation["responses"][status],
                                            f"/paths/{escaped}/{method.lower()}/responses/{status}")
        [media_type] = documented["content"]
        assert response.headers["content-type"].split(";")[0] == media_type
        body = response.json()
        schema = {"$ref": f"{DOC_URI}#{pointer}/content/{media_type.replace('/', '~1')}/schema"}
        validator = Draft202012Validator(schema, registry=self.registry, format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{method} {url_path} {status}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in response.headers, f"{method} {url_path} {status} lacks the {name} header"
        self.checked.add((template, method.lower(), status))
        return body


@pytest.fixture
def conformance() -> Conformance:
    return Conformance(openapi.document())


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"].startswith("3.1.")
    validate_spec(document)


def test_the_documented_enums_are_the_domain_words() -> None:
    schemas = openapi.document()["components"]["schemas"]
    assert schemas["TicketStatus"]["enum"] == list(STATUSES)
    assert schemas["Priority"]["enum"] == list(PRIORITIES)
    assert schemas["AgentStatus"]["enum"] == list(AGENT_STATUSES)
    assert schemas["AgentRole"]["enum"] == list(AGENT_ROLES)


def test_every_error_response_is_the_problem_schema() -> None:
    document = openapi.document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["$ref"].startswith("#/components/responses/"), (path, method, status)
    for name, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema["allOf"] == [{"$ref": "#/components/schemas/Problem"}], name
    assert document["components"]["schemas"]["Problem"]["required"] == ["error", "detail"]


async def test_the_app_serves_the_document(client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == openapi.document()


def _served(app) -> set[tuple[str, str]]:
    """(path template, method) of every route the app serves, templates written as in OpenAPI."""
    served = set()
    for route in app.routes:
        if isinstance(route, Route):
            template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            served |= {(template, method.lower()) for method in route.methods or () if method != "HEAD"}
    return served


def test_every_api_route_is_documented_and_every_documented_operation_is_served(app) -> None:
    documented = {(path, method) for path, item in openapi.document()["paths"].items()
                  for method in item if method in HTTP_METHODS}
    served = _served(app)
    api = {(path, method) for path, method in served if path.startswith("/api/")}
    assert api, "the app serves an /api/v1"
    assert not api - documented, f"served but not in /openapi.json: {sorted(api - documented)}"
    assert not documented - served, f"documented but not served: {sorted(documented - served)}"


def message(text: str, *, email: str = "mika@example.net", external_id: str | None = None, **sender: str) -> dict:
    body: dict[str, Any] = {"channel": "api", "sender": {"name": "Mika", "email": email, **sender}, "text": text,
                            "subject": "Invoice"}
    if external_id:
        body["external_id"] = external_id
    return body


async def test_real_answers_match_the_documented_schemas(client, auth, conformance: Conformance) -> None:
    check = conformance.check
    assert check(await client.get("/healthz")) == {"status": "ok"}
    assert check(await client.get("/readyz")) == {"status": "ready"}

    # Intake: new, redelivered, and someone else's message id (nothing revealed: nulls).
    first = check(await client.post("/api/v1/messages", headers=auth,
                                    json=message("My invoice is wrong, refund please", external_id="crm-1")))
    ref = first["ticket_ref"]
    assert first["duplicate"] is False
    again = check(await client.post("/api/v1/messages", headers=auth,
                                    json=message("My invoice is wrong, refund please", external_id="crm-1")))
    assert again == {**first, "duplicate": True}
    stranger = check(await client.post("/api/v1/messages", headers=auth,
                                       json=message("hi", email="eve@example.org", external_id="crm-1")))
    assert stranger == {"message_id": None, "ticket_ref": None, "duplicate": True}
    check(await client.post("/api/v1/messages", headers=auth,
                            json={"channel": "chat", "sender": {"id": 42, "phone": "+81 90 1234 5678",
                                                                "verified": ["phone"]}, "text": "配送が届かない"}))

    # Tickets: list pages, detail, status/priority, replies (idempotent), notes, transfers.
    page = check(await client.get("/api/v1/tickets", params={"limit": 1}, headers=auth))
    assert len(page["tickets"]) == 1 and page["next_cursor"]
    rest = check(await client.get("/api/v1/tickets", headers=auth,
                                  params={"limit": 1, "cursor": page["next_cursor"], "status": "open,pending"}))
    assert rest["next_cursor"] is None
    check(await client.get("/api/v1/tickets", params={"assignee": "none", "team": "support"}, headers=auth))
    detail = check(await client.get(f"/api/v1/tickets/{ref}", headers=auth))
    assert detail["sla"]["clocks"], "the demo policy starts clocks: their shape is checked too"
    check(await client.patch(f"/api/v1/tickets/{ref}", json={"priority": "high", "status": "pending"}, headers=auth))
    replied = check(await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "We are on it."},
                                      headers={**auth, "Idempotency-Key": "k-1"}))
    assert isinstance(replied["message_id"], int)
    repeated = check(await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "We are on it."},
                                       headers={**auth, "Idempotency-Key": "k-1"}))
    assert repeated == {"message_id": None}
    check(await client.post(f"/api/v1/tickets/{ref}/notes", json={"text": "VIP, be quick"}, headers=auth))
    moved = check(await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": "ben@example.com",
                                                                           "reason": "billing"}, headers=auth))
    assert moved["assignee"] == "ben@example.com"
    queued = check(await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": None}, headers=auth))
    assert queued["routing_log"]
    solved = check(await client.patch(f"/api/v1/tickets/{ref}", json={"status": "solved"}, headers=auth))
    directions = {m["direction"] for m in solved["messages"]}
    assert {"in", "out", "note"} <= directions
    assert any(m["delivery"] for m in solved["messages"]), "outbound messages show their delivery"

    check(await client.patch(f"/api/v1/tickets/{ref}", json={"status": "closed"}, headers=auth))
    follow_up = check(await client.post("/api/v1/messages", headers=auth, json=message("Still wrong")))
    linked = check(await client.get(f"/api/v1/tickets/{follow_up['ticket_ref']}", headers=auth))
    assert linked["previous_ticket"] == ref

    # A web form message with an attachment: its detail lists the attachment.
    form = await client.post("/support", data={"name": "Sora", "email": "sora@example.jp", "subject": "請求書",
                                               "message": "請求書が間違っています"},
                             files=[("attachments", ("請求書.pdf", b"%PDF-1.4 test", "application/pdf"))])
    assert form.status_code == 200
    web = check(await client.get("/api/v1/tickets", params={"limit": 1}, headers=auth))["tickets"][0]
    assert web["channel"] == "web"
    web_detail = check(await client.get(f"/api/v1/tickets/{web['ref']}", headers=auth))
    assert web_detail["messages"][0]["attachments"][0]["filename"] == "請求書.pdf"

    # Customers: profile, merge (and the merged id answers with the survivor).
    customer_id = detail["customer"]["id"]
    # The other record's address is proved (a typed one would be dropped by the merge: SPEC §2.4).
    proved = {**message("Same person, other address", email="mika@work.example"),
              "sender": {"name": "Mika", "email": "mika@work.example", "verified": ["email"]}}
    other = check(await client.post("/api/v1/messages", headers=auth, json=proved))
    other_id = check(await client.get(f"/api/v1/tickets/{other['ticket_ref']}", headers=auth))["customer"]["id"]
    profile = check(await client.get(f"/api/v1/customers/{customer_id}", headers=auth))
    assert profile["tickets"][0]["ref"] == ref
    merged = check(await client.post(f"/api/v1/customers/{customer_id}/merge", json={"other": str(other_id)},
                                     headers=auth))
    assert {i["value"] for i in merged["identities"]} >= {"mika@example.net", "mika@work.example"}
    assert check(await client.get(f"/api/v1/customers/{other_id}", headers=auth))["id"] == customer_id

    # Agents.
    agents = check(await client.get("/api/v1/agents", headers=auth))["agents"]
    assert {a["status"] for a in agents} <= {"online", "away", "offline"}
    check(await client.patch("/api/v1/agents/aiko@example.com", json={"status": "away"}, headers=AIKO))
    ben = next(a for a in agents if a["email"] == "ben@example.com")
    check(await client.patch(f"/api/v1/agents/{ben['id']}", json={"skills": ["billing"], "capacity": 3},
                             headers=auth))


async def test_error_answers_match_the_documented_problems(client, auth, conformance: Conformance) -> None:
    check = conformance.check
    ref = check(await client.post("/api/v1/messages", headers=auth, json=message("refund")))["ticket_ref"]

    def problem(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert check(response)["error"] == code

    problem(await client.post("/api/v1/messages", json=message("x")), 401, "unauthorized")
    problem(await client.post("/api/v1/messages", headers=auth, content=b"{not json"), 400, "malformed_body")
    problem(await client.post("/api/v1/messages", headers=auth, content=b"x" * (1024 * 1024 + 1)),
            413, "payload_too_large")
    problem(await client.post("/api/v1/messages", headers=auth, json={"channel": "api", "text": "x"}),
            422, "invalid_input")

    problem(await client.get("/api/v1/tickets"), 401, "unauthorized")
    problem(await client.get("/api/v1/tickets", headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    problem(await client.get("/api/v1/tickets", params={"limit": 0}, headers=auth), 422, "invalid_input")
    problem(await client.get("/api/v1/tickets", params={"cursor": "garbage"}, headers=auth), 422, "invalid_input")
    problem(await client.get("/api/v1/tickets", params={"status": "done"}, headers=auth), 422, "invalid_input")
    problem(await client.get("/api/v1/tickets/T-999999", headers=auth), 404, "not_found")
    problem(await client.patch(f"/api/v1/tickets/{ref}", json={"status": "done"}, headers=auth), 422, "invalid_input")
    problem(await client.patch(f"/api/v1/tickets/{ref}", content=b"[1]", headers=auth), 400, "malformed_body")
    problem(await client.post(f"/api/v1/tickets/{ref}/notes", json={"text": "  "}, headers=auth),
            422, "invalid_input")
    problem(await client.post("/api/v1/tickets/T-999999/replies", json={"text": "hi"}, headers=auth),
            404, "not_found")
    problem(await client.post(f"/api/v1/tickets/{ref}/replies", json={"text": "hi", "channel": "line"},
                              headers=auth), 422, "invalid_input")
    problem(await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": "lena@example.com"}, headers=AIKO),
            403, "forbidden")
    problem(await client.post(f"/api/v1/tickets/{ref}/assign", json={"agent": "nobody@example.com"}, headers=auth),
            422, "invalid_input")

    problem(await client.get("/api/v1/customers/999999", headers=auth), 404, "not_found")
    problem(await client.get("/api/v1/customers/0", headers=auth), 422, "invalid_input")
    problem(await client.post("/api/v1/customers/1/merge", json={"other": 2}, headers=AIKO), 403, "forbidden")
    problem(await client.post("/api/v1/customers/1/merge", json={"other": 1}, headers=auth), 422, "invalid_input")
    problem(await client.post("/api/v1/customers/1/merge", json={"other": 999999}, headers=auth), 404, "not_found")
    two = check(await client.post("/api/v1/messages", headers=auth, json=message("hello", email="two@example.org")))
    three = check(await client.post("/api/v1/messages", headers=auth, json=message("hi", email="three@example.org")))
    ids = [check(await client.get(f"/api/v1/tickets/{r['ticket_ref']}", headers=auth))["customer"]["id"]
           for r in (two, three)]
    check(await client.post(f"/api/v1/customers/{ids[0]}/merge", json={"other": ids[1]}, headers=auth))
    problem(await client.post(f"/api/v1/customers/{ids[1]}/merge", json={"other": ids[0]}, headers=auth),
            409, "conflict")

    problem(await client.patch("/api/v1/agents/ben@example.com", json={"status": "away"}, headers=AIKO),
            403, "forbidden")
    problem(await client.patch("/api/v1/agents/aiko@example.com", json={"capacity": 9}, headers=AIKO),
            403, "forbidden")
    problem(await client.patch("/api/v1/agents/nobody@example.com", json={"status": "away"}, headers=auth),
            404, "not_found")
    problem(await client.patch("/api/v1/agents/1", json={"status": "asleep"}, headers=auth), 422, "invalid_input")
    problem(await client.patch("/api/v1/agents/1", json={"mood": "good"}, headers=auth), 422, "invalid_input")
