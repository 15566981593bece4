"""`GET /openapi.json`: the JSON API as it behaves (SPEC §3 HTTP), written by hand.

The document is static: a plain dict, no generation from handlers. `tests/web/test_openapi.py`
keeps it true (every `/api/v1` route documented, real responses valid against it) and
`tests/web/test_schemathesis.py` fuzzes the app against it (no 500s, only documented statuses,
content types and bodies). Change the API and this document together.

Where the shapes come from: `router.web.intake` (integration intake), `router.web.api.*` (agents'
API), `router.core.store.inbox` (`page`, via `router.web.api.tickets.summary`),
`router.core.store.tickets` (`detail`), `router.core.store.customers`
(`profile`), `agents.store` (`agent_json`), `sla.clocks` (`clocks_json`), and the errors of
`router.core.errors`, each answered as `{"error": code, "detail": text}` by `router.web.app`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"
MAX_ID = 2**63 - 1
Schema = dict[str, Any]

TICKET_STATUSES = ["open", "pending", "solved", "closed"]
PRIORITIES = ["low", "normal", "high", "urgent"]
AGENT_STATUSES = ["online", "away", "offline"]
AGENT_ROLES = ["agent", "lead", "admin"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    """`schema` or JSON null."""
    if "type" in schema and isinstance(schema["type"], str) and "enum" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, optional: tuple[str, ...] = (), closed: bool = True,
            description: str | None = None) -> Schema:
    """An object whose properties are all required but `optional`; `closed`: no other properties
    (responses: the document names every field the API returns)."""
    schema: Schema = {"type": "object",
                      "required": [name for name in properties if name not in optional],
                      "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _json(schema: Schema, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _problem(code: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = {"allOf": [_ref("Problem")], "properties": {"error": {"const": code}}}
    return _json(schema, description, headers)


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/{_ERROR_RESPONSES[status]}"} for status in statuses}


def _body(schema: Schema, description: str) -> dict[str, Any]:
    return {"required": True, "description": description, "content": {JSON: {"schema": schema}}}


_ERROR_RESPONSES = {
    400: "MalformedBody",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "PayloadTooLarge",
    422: "InvalidInput",
    503: "Unavailable",
}

STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
COUNT = {"type": "integer", "minimum": 0}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TICKET_REF = {"type": "string", "pattern": "^T-[0-9]+$", "examples": ["T-1042"]}
NON_BLANK = "\\S"  # at least one character that is not white space

SCHEMAS: dict[str, Schema] = {
    "Problem": _object({
        "error": {"type": "string", "description": "A stable machine-readable code, e.g. `invalid_input`."},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
    }, description="Every error: a code and a text, with the HTTP status that fits."),
    "TicketStatus": {"type": "string", "enum": TICKET_STATUSES},
    "Priority": {"type": "string", "enum": PRIORITIES},
    "AgentStatus": {"type": "string", "enum": AGENT_STATUSES},
    "AgentRole": {"type": "string", "enum": AGENT_ROLES},
    "TicketRef": TICKET_REF,
    "InboundMessage": _object({
        "channel": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$",
                    "description": "The integration's platform, a short lower-case name like `api` or `chat`."},
        "sender": _object({
            "id": {"type": ["string", "integer"], "maxLength": 1000,
                   "description": "The sender's id on the integration's platform (proved by the integration)."},
            "name": {**NULLABLE_STRING, "maxLength": 1000},
            "email": {"type": ["string", "null"], "format": "email", "maxLength": 1000,
                      "description": "A claim (SPEC §2.4) unless listed in `verified`."},
            "phone": {"type": ["string", "null"], "maxLength": 1000,
                      "description": "At least 6 digits; a claim unless listed in `verified`."},
            "verified": {"type": "array", "items": {"enum": ["email", "phone"]},
                         "description": "Which of `email` and `phone` the integration verified itself."},
        }, optional=("id", "name", "email", "phone", "verified"), closed=False,
            description="Who wrote; at least one of `id`, `email`, `phone`.")
        | {"anyOf": [{"required": ["id"]}, {"required": ["email"]}, {"required": ["phone"]}]},
        "subject": {**NULLABLE_STRING, "maxLength": 1000},
        "text": {"type": "string", "pattern": NON_BLANK, "maxLength": 100_000},
        "external_id": {**NULLABLE_STRING, "maxLength": 1000,
                        "description": "The platform's message id: a second delivery is stored once."},
    }, optional=("subject", "external_id"), closed=False),
    "IngestResult": {
        "description": "What was stored. A redelivery of another sender's message id answers "
                       "`duplicate: true` and says nothing about where it went.",
        "oneOf": [
            _object({"message_id": ID, "ticket_ref": TICKET_REF, "duplicate": {"type": "boolean"}}),
            _object({"message_id": {"type": "null"}, "ticket_ref": {"type": "null"}, "duplicate": {"const": True}}),
        ],
    },
    "TicketSummary": _object({
        "ref": TICKET_REF,
        "status": _ref("TicketStatus"),
        "priority": _ref("Priority"),
        "channel": STRING,
        "subject": NULLABLE_STRING,
        "topic": NULLABLE_STRING,
        "language": STRING,
        "customer_id": ID,
        "customer_name": NULLABLE_STRING,
        "team": NULLABLE_STRING,
        "assignee": {**NULLABLE_STRING, "description": "The assigned agent's email."},
        "first_response_due": {**NULLABLE_DATE_TIME, "description": "While the first response is owed."},
        "sla": _nullable(_object({
            "target": {"type": "string", "enum": ["first_response", "next_response", "resolution"]},
            "due_at": DATE_TIME,
            "warn_at": DATE_TIME,
            "paused": {"type": "boolean", "description": "The clock waits on the customer (pending)."},
        }, description="The soonest running SLA clock (else a paused one); null when none runs.")),
        "last_customer_message_at": NULLABLE_DATE_TIME,
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
    }),
    "TicketPage": _object({
        "tickets": {"type": "array", "items": _ref("TicketSummary")},
        "next_cursor": {**NULLABLE_STRING, "description": "Pass as `cursor` for the next page; null on the last."},
    }),
    "SlaClock": _object({
        "target": {"type": "string", "enum": ["first_response", "next_response", "resolution"]},
        "cycle": {"type": "integer", "minimum": 1},
        "policy": STRING,
        "started_at": DATE_TIME,
        "warn_at": DATE_TIME,
        "due_at": DATE_TIME,
        "paused_at": NULLABLE_DATE_TIME,
        "met_at": NULLABLE_DATE_TIME,
        "warned_at": NULLABLE_DATE_TIME,
        "breached_at": NULLABLE_DATE_TIME,
    }),
    "Attachment": _object({
        "filename": STRING,
        "content_type": STRING,
        "size": COUNT,
        "sha256": STRING,
        "inline": {"type": "boolean"},
    }),
    "Delivery": _object({
        "status": {"type": "string", "enum": ["pending", "sent", "dead"]},
        "attempts": COUNT,
        "error": NULLABLE_STRING,
    }, description="Outbound messages only: queued, sent, or dead with the reason."),
    "Message": _object({
        "id": ID,
        "channel": {**STRING, "description": "`note` for internal notes."},
        "direction": {"type": "string", "enum": ["in", "out", "note", "system"]},
        "sender_name": NULLABLE_STRING,
        "author": {**NULLABLE_STRING, "description": "The agent's email, for replies and notes."},
        "subject": NULLABLE_STRING,
        "text": STRING,
        "html": {**NULLABLE_STRING, "description": "Sanitized HTML of an email."},
        "quoted_text": NULLABLE_STRING,
        "auto_kind": {**NULLABLE_STRING, "description": "Set on automated mail (auto-reply, bounce, list)."},
        "created_at": DATE_TIME,
        "attachments": {"type": "array", "items": _ref("Attachment")},
        "delivery": _nullable(_ref("Delivery")),
    }),
    "RoutingEntry": _object({
        "action": STRING,
        "reason": STRING,
        "agent": NULLABLE_STRING,
        "actor": NULLABLE_STRING,
        "at": DATE_TIME,
    }),
    "TicketDetail": _object({
        "ref": TICKET_REF,
        "status": _ref("TicketStatus"),
        "priority": _ref("Priority"),
        "channel": STRING,
        "subject": NULLABLE_STRING,
        "topic": NULLABLE_STRING,
        "skill": NULLABLE_STRING,
        "language": STRING,
        "team": NULLABLE_STRING,
        "assignee": {**NULLABLE_STRING, "description": "The assigned agent's email."},
        "customer": _object({"id": ID, "name": NULLABLE_STRING}),
        "previous_ticket": _nullable(TICKET_REF),
        "created_at": DATE_TIME,
        "updated_at": DATE_TIME,
        "sla": _object({
            "policy": NULLABLE_STRING,
            "first_responded_at": NULLABLE_DATE_TIME,
            "clocks": {"type": "array", "items": _ref("SlaClock")},
        }),
        "messages": {"type": "array", "items": _ref("Message"),
                     "description": "Every message across channels, oldest first, notes included."},
        "routing_log": {"type": "array", "items": _ref("RoutingEntry")},
    }),
    "MessageCreated": _object({"message_id": ID}),
    "ReplyQueued": _object({"message_id": _nullable(ID)},
                           description="`message_id` null: this `Idempotency-Key` was used already, nothing new "
                                       "was sent."),
    "Identity": _object({
        "kind": {**STRING, "description": "`email`, `phone`, or a platform such as `chat` or `telegram`."},
        "value": STRING,
        "verified": {"type": "boolean", "description": "false: only typed by the sender (a claim)."},
    }),
    "CustomerTicket": _object({
        "ref": TICKET_REF,
        "status": _ref("TicketStatus"),
        "priority": _ref("Priority"),
        "channel": STRING,
        "subject": NULLABLE_STRING,
        "created_at": DATE_TIME,
    }),
    "Customer": _object({
        "id": ID,
        "name": NULLABLE_STRING,
        "tier": STRING,
        "language": NULLABLE_STRING,
        "timezone": NULLABLE_STRING,
        "created_at": DATE_TIME,
        "identities": {"type": "array", "items": _ref("Identity")},
        "tickets": {"type": "array", "items": _ref("CustomerTicket"), "maxItems": 50,
                    "description": "The latest 50, newest first."},
    }),
    "Agent": _object({
        "id": ID,
        "email": STRING,
        "name": STRING,
        "role": _ref("AgentRole"),
        "team": NULLABLE_STRING,
        "skills": {"type": "array", "items": STRING},
        "languages": {"type": "array", "items": STRING},
        "capacity": COUNT,
        "chat_capacity": COUNT,
        "status": _ref("AgentStatus"),
        "load": COUNT,
        "last_assigned_at": NULLABLE_DATE_TIME,
    }),
    "AgentList": _object({"agents": {"type": "array", "items": _ref("Agent")}}),
    "TicketChange": {
        "type": "object",
        "description": "At least one of `status` and `priority` (null counts as absent).",
        "properties": {"status": _nullable(_ref("TicketStatus")), "priority": _nullable(_ref("Priority"))},
        "anyOf": [{"required": ["status"], "properties": {"status": _ref("TicketStatus")}},
                  {"required": ["priority"], "properties": {"priority": _ref("Priority")}}],
    },
    "NoteRequest": _object({"text": {"type": "string", "pattern": NON_BLANK, "maxLength": 50_000}}, closed=False),
    "ReplyRequest": _object({
        "text": {"type": "string", "pattern": NON_BLANK, "maxLength": 50_000},
        "channel": {**NULLABLE_STRING, "maxLength": 32,
                    "description": "Reply on this channel instead of the customer's latest one."},
    }, optional=("channel",), closed=False),
    "AssignRequest": _object({
        "agent": {"description": "The agent's id or email; null gives the ticket back to its team queue.",
                  "anyOf": [ID, {"type": "string", "maxLength": 320}, {"type": "null"}]},
        "reason": {**NULLABLE_STRING, "maxLength": 500},
    }, optional=("reason",), closed=False),
    "MergeRequest": _object({
        "other": {"description": "The customer folded into this one.",
                  "anyOf": [ID, {"type": "string", "pattern": "^[0-9]+$"}]},
        "reason": {**NULLABLE_STRING, "maxLength": 500, "description": "Why (kept in the merge log)."},
    }, optional=("reason",), closed=False),
    "ReasonRequest": _object({"reason": {**NULLABLE_STRING, "maxLength": 500}}, optional=("reason",), closed=False),
    "IdentityRequest": _object({
        "kind": {"enum": ["email", "phone"]},
        "value": {"type": "string", "pattern": NON_BLANK, "maxLength": 320},
    }, closed=False),
    "Suggestion": _object({
        "id": ID,
        "claimant": _object({"id": ID, "name": NULLABLE_STRING}, description="Who typed the identity."),
        "other": _object({"id": ID, "name": NULLABLE_STRING}, description="Who holds it, proved."),
        "identity": _object({"kind": STRING, "value": STRING}),
        "reason": STRING,
        "confidence": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "status": {"enum": ["open", "dismissed", "merged"]},
        "ticket_number": {"type": ["integer", "null"]},
        "created_at": DATE_TIME,
        "decided": _nullable(_object({"at": DATE_TIME, "by": NULLABLE_STRING, "note": NULLABLE_STRING})),
    }),
    "SuggestionList": _object({"suggestions": {"type": "array", "items": _ref("Suggestion")}}),
    "Merge": _object({
        "id": ID, "survivor": ID, "merged": ID, "reason": STRING, "actor": NULLABLE_STRING, "at": DATE_TIME,
        "suggestion": {"type": ["integer", "null"]}, "messages_moved": COUNT, "tickets_folded": COUNT,
        "undone": _nullable(_object({"at": DATE_TIME, "by": NULLABLE_STRING, "why": NULLABLE_STRING})),
    }),
    "MergeList": _object({"merges": {"type": "array", "items": _ref("Merge")}}),
    "MergeCreated": _object({"merge_id": ID}),
    "Split": _object({"merge_id": ID, "survivor": ID, "merged": ID, "messages_restored": COUNT,
                      "later_messages_moved": COUNT}),
    "AgentChange": {
        "type": "object",
        "description": "Agents set their own `status`, leads anyone's; only admins change the rest.",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "status": _ref("AgentStatus"),
            "skills": {"type": "array", "maxItems": 100,
                       "items": {"type": "string", "pattern": NON_BLANK, "maxLength": 100}},
            "languages": {"type": "array", "maxItems": 100,
                          "items": {"type": "string", "pattern": NON_BLANK, "maxLength": 100}},
            "capacity": {"type": "integer", "minimum": 0, "maximum": 1000},
            "chat_capacity": {"type": "integer", "minimum": 0, "maximum": 1000},
        },
    },
    "Health": _object({"status": {"const": "ok"}}),
    "Ready": _object({"status": {"const": "ready"}}),
}

RESPONSES: dict[str, Any] = {
    "MalformedBody": _problem("malformed_body", "The body is not a JSON object (or is nested too deeply), or "
                                                  "Content-Length is not a number."),
    "Unauthorized": _problem(
        "unauthorized", "No valid credentials.",
        headers={"WWW-Authenticate": {"required": True, "description": "`Bearer`.", "schema": {"const": "Bearer"}}}),
    "Forbidden": _problem("forbidden", "The caller's role may not do this."),
    "NotFound": _problem("not_found", "No such resource."),
    "Conflict": _problem("conflict", "The resource changed in a way that forbids this (e.g. already merged)."),
    "PayloadTooLarge": _problem("payload_too_large", "The body is larger than 1 MiB."),
    "InvalidInput": _problem("invalid_input", "A field, parameter or value is not acceptable; `detail` names it."),
    "Unavailable": _problem(
        "unavailable", "The database is unavailable: retry later.",
        headers={"Retry-After": {"required": True, "description": "Seconds to wait before retrying.",
                                 "schema": {"type": "integer", "minimum": 0}}}),
}

REF_PARAMETER = {
    "name": "ref", "in": "path", "required": True,
    "description": "The ticket reference (`T-1042`; any case).",
    "schema": TICKET_REF,
}
AGENT_API: list[dict[str, list[str]]] = [{"agentToken": []}, {"session": []}]
JSON_BODY_ERRORS = (400, 401, 404, 413, 422, 503)


def _operation(operation_id: str, summary: str, responses: dict[str, Any], *, security: list[Any] | None = None,
               parameters: list[Any] | None = None, body: dict[str, Any] | None = None,
               description: str | None = None, tags: tuple[str, ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if description:
        operation["description"] = description
    if tags:
        operation["tags"] = list(tags)
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    operation["responses"] = responses
    return operation


_ID_PARAMETERS = [{"name": "id", "in": "path", "required": True, "schema": ID}]
_SUGGESTION_PARAMETERS = [*_ID_PARAMETERS, {"name": "sid", "in": "path", "required": True, "schema": ID}]
_OPTIONAL_REASON = {"required": False, "description": "Why (optional).",
                    "content": {JSON: {"schema": _ref("ReasonRequest")}}}
_IDENTITY_PATHS: dict[str, Any] = {
    "/api/v1/customers/{id}/identities": {"parameters": _ID_PARAMETERS, "post": _operation(
        "addCustomerIdentity", "Confirm or add an email or phone on the customer (verified)",
        {"201": _json(_ref("Customer"), "The customer."), **_errors(400, 401, 404, 409, 413, 422, 503)},
        security=AGENT_API, tags=("customers",), body=_body(_ref("IdentityRequest"), "The identity."),
        description="409 when another customer holds it verified: a suggestion to merge them is kept.")},
    "/api/v1/customers/{id}/suggestions": {"parameters": _ID_PARAMETERS, "get": _operation(
        "listSuggestions", "Possible matches involving the customer (open, or all with status=all)",
        {"200": _json(_ref("SuggestionList"), "Newest first."), **_errors(401, 404, 422, 503)},
        security=AGENT_API, tags=("customers",),
        parameters=[{"name": "status", "in": "query", "schema": {"enum": ["open", "all"]}}])},
    "/api/v1/customers/{id}/suggestions/{sid}/merge": {"parameters": _SUGGESTION_PARAMETERS, "post": _operation(
        "mergeSuggestion", "Fold the claimant into the customer who holds the identity",
        {"201": _json(_ref("MergeCreated"), "The merge (undo it by id)."),
         **_errors(400, 401, 403, 404, 409, 413, 422, 503)},
        security=AGENT_API, tags=("customers",), body=_OPTIONAL_REASON,
        description="Any agent for a claimant known only by what they typed; leads and admins when both "
                    "customers have proved identities.")},
    "/api/v1/customers/{id}/suggestions/{sid}/dismiss": {"parameters": _SUGGESTION_PARAMETERS, "post": _operation(
        "dismissSuggestion", "Not the same person: close the suggestion for good",
        {"204": {"description": "Dismissed."}, **_errors(400, 401, 404, 409, 413, 422, 503)},
        security=AGENT_API, tags=("customers",), body=_OPTIONAL_REASON)},
    "/api/v1/customers/{id}/merges": {"parameters": _ID_PARAMETERS, "get": _operation(
        "listMerges", "Merges of the customer (either side), with who, why and any undo",
        {"200": _json(_ref("MergeList"), "Newest first."), **_errors(401, 404, 422, 503)},
        security=AGENT_API, tags=("customers",))},
    "/api/v1/merges/{id}/undo": {"parameters": _ID_PARAMETERS, "post": _operation(
        "undoMerge", "Split a merge back (leads and admins)",
        {"200": _json(_ref("Split"), "What went back."), **_errors(400, 401, 403, 404, 409, 413, 422, 503)},
        security=AGENT_API, tags=("customers",), body=_OPTIONAL_REASON,
        description="409 when a later merge of either customer built on this one: undo that first.")},
}


PATHS: dict[str, Any] = {
    "/healthz": {"get": _operation(
        "healthz", "The process is up", {"200": _json(_ref("Health"), "Up.")}, security=[], tags=("service",))},
    "/readyz": {"get": _operation(
        "readyz", "The database is reachable",
        {"200": _json(_ref("Ready"), "Ready to serve."), **_errors(503)}, security=[], tags=("service",))},
    "/api/v1/messages": {"post": _operation(
        "postMessage", "Integration intake: one customer message",
        {"202": _json(_ref("IngestResult"), "Stored (committed) before this answer."),
         **_errors(400, 401, 413, 422, 503)},
        security=[{"integrationToken": []}], tags=("intake",),
        description="Stored first, then acknowledged; the same `external_id` on the same `channel` is "
                    "stored once (the second delivery answers `duplicate: true`).",
        body=_body(_ref("InboundMessage"), "The message, as the integration's platform delivered it."))},
    "/api/v1/tickets": {"get": _operation(
        "listTickets", "Ticket list, newest activity first (keyset pages), with filters and search",
        {"200": _json(_ref("TicketPage"), "One page."), **_errors(401, 422, 503)},
        security=AGENT_API, tags=("tickets",),
        description="The same list, filters and search as the inbox page (its All view). "
                    "Every query value is at most 500 characters.",
        parameters=[
            {"name": "status", "in": "query", "style": "form", "explode": False,
             "description": "Comma-separated statuses.",
             "schema": {"type": "array", "minItems": 1, "items": _ref("TicketStatus")}},
            {"name": "assignee", "in": "query",
             "description": "`none` (unassigned), an agent id, or an agent email.",
             "schema": {"type": "string", "maxLength": 500}},
            {"name": "team", "in": "query", "schema": {"type": "string", "maxLength": 500}},
            {"name": "channel", "in": "query", "description": "e.g. `email`, `chat`, `line`.",
             "schema": {"type": "string", "maxLength": 500}},
            {"name": "priority", "in": "query", "schema": _ref("Priority")},
            {"name": "topic", "in": "query", "schema": {"type": "string", "maxLength": 500}},
            {"name": "language", "in": "query", "description": "e.g. `ja`, `en`.",
             "schema": {"type": "string", "maxLength": 500}},
            {"name": "q", "in": "query",
             "description": "Search: a ticket reference (`T-1042`), a customer's name, email address or phone "
                            "number, or words of the subject and messages. Japanese and other CJK text "
                            "matches by character pairs, so two-character words such as `返金` find their "
                            "tickets; every word must occur in one message.",
             "schema": {"type": "string", "maxLength": 500}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200,
                                                        "default": 50}},
            {"name": "cursor", "in": "query", "description": "`next_cursor` of the previous page.",
             "schema": {"type": "string", "maxLength": 500}},
        ])},
    "/api/v1/tickets/{ref}": {
        "parameters": [REF_PARAMETER],
        "get": _operation(
            "getTicket", "A ticket with every message across channels, SLA clocks and routing log",
            {"200": _json(_ref("TicketDetail"), "The ticket."), **_errors(401, 404, 503)},
            security=AGENT_API, tags=("tickets",)),
        "patch": _operation(
            "updateTicket", "Set status and/or priority",
            {"200": _json(_ref("TicketDetail"), "The ticket after the change."), **_errors(*JSON_BODY_ERRORS)},
            security=AGENT_API, tags=("tickets",), body=_body(_ref("TicketChange"), "The change.")),
    },
    "/api/v1/tickets/{ref}/replies": {
        "parameters": [REF_PARAMETER],
        "post": _operation(
            "replyToTicket", "Reply to the customer (on their latest channel unless `channel` is given)",
            {"201": _json(_ref("ReplyQueued"), "Queued in the outbox."), **_errors(*JSON_BODY_ERRORS)},
            security=AGENT_API, tags=("tickets",), body=_body(_ref("ReplyRequest"), "The reply."),
            parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                         "description": "The same key on the same ticket sends once.",
                         "schema": {"type": "string", "maxLength": 200}}]),
    },
    "/api/v1/tickets/{ref}/notes": {
        "parameters": [REF_PARAMETER],
        "post": _operation(
            "addNote", "Add an internal note (never shown to the customer)",
            {"201": _json(_ref("MessageCreated"), "Stored."), **_errors(*JSON_BODY_ERRORS)},
            security=AGENT_API, tags=("tickets",), body=_body(_ref("NoteRequest"), "The note.")),
    },
    "/api/v1/tickets/{ref}/assign": {
        "parameters": [REF_PARAMETER],
        "post": _operation(
            "assignTicket", "Transfer to an agent, or back to the queue",
            {"200": _json(_ref("TicketDetail"), "The ticket after the transfer."),
             **_errors(400, 401, 403, 404, 413, 422, 503)},
            security=AGENT_API, tags=("tickets",),
            description="Agents move their own or unassigned tickets; leads and admins any, and only they may "
                        "hand one to a lead. An unknown agent is a 422.",
            body=_body(_ref("AssignRequest"), "The transfer.")),
    },
    "/api/v1/customers/{id}": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": ID}],
        "get": _operation(
            "getCustomer", "A customer's profile, identities and ticket history",
            {"200": _json(_ref("Customer"), "The customer (the survivor, for a merged id)."),
             **_errors(401, 404, 422, 503)},
            security=AGENT_API, tags=("customers",)),
    },
    "/api/v1/customers/{id}/merge": {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": ID}],
        "post": _operation(
            "mergeCustomers", "Fold customer `other` into this one (leads and admins)",
            {"200": _json(_ref("Customer"), "The surviving customer."),
             **_errors(400, 401, 403, 404, 409, 413, 422, 503)},
            security=AGENT_API, tags=("customers",), body=_body(_ref("MergeRequest"), "Who to merge.")),
    },
    **_IDENTITY_PATHS,
    "/api/v1/agents": {"get": _operation(
        "listAgents", "Every agent", {"200": _json(_ref("AgentList"), "The agents, by id."), **_errors(401, 503)},
        security=AGENT_API, tags=("agents",))},
    "/api/v1/agents/{id}": {
        "parameters": [{"name": "id", "in": "path", "required": True,
                        "description": "The agent's numeric id or email.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 320}}],
        "patch": _operation(
            "updateAgent", "Set an agent's status, skills, languages or capacity",
            {"200": _json(_ref("Agent"), "The agent after the change."),
             **_errors(400, 401, 403, 404, 413, 422, 503)},
            security=AGENT_API, tags=("agents",), body=_body(_ref("AgentChange"), "The change.")),
    },
    "/api/v1/reports/summary": {"get": _operation(
        "reportSummary", "Team report over tickets created in a period (leads and admins)",
        {"200": _json(_object({
            "period": _object({"from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"},
                               "timezone": {"type": "string"}, "start": {"type": "string", "format": "date-time"},
                               "end": {"type": "string", "format": "date-time"}}),
            "filters": _object({k: {"type": ["string", "null"]} for k in ("team", "channel", "agent")}),
            **{k: {"type": "object"} for k in ("tickets", "backlog", "csat", "nps", "kb")},
            **{k: {"type": "array", "items": {"type": "object"}}
               for k in ("sla", "by_channel", "by_topic", "by_language", "by_hour", "agents")},
        }), "Every figure; durations in seconds (business time of each ticket's SLA calendar), rates 0..1. "
            "The README's \"Reports\" section defines each figure."),
         **_errors(401, 403, 422, 503)},
        security=AGENT_API, tags=("reports",),
        description="`from`/`to` are local dates (both included) in the service's timezone; by default the "
                    "last 30 days; at most 366 days. An unknown team or agent is a 422.",
        parameters=[
            {"name": "from", "in": "query", "schema": {"type": "string", "format": "date", "maxLength": 500}},
            {"name": "to", "in": "query", "schema": {"type": "string", "format": "date", "maxLength": 500}},
            {"name": "team", "in": "query", "description": "A team's name.",
             "schema": {"type": "string", "maxLength": 320}},
            {"name": "channel", "in": "query", "schema": {"type": "string", "maxLength": 320}},
            {"name": "agent", "in": "query", "description": "An agent id or email (tickets assigned to them).",
             "schema": {"type": "string", "maxLength": 320}},
        ])},
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Support ticket router",
        "version": "1",
        "description": "The JSON API: integration intake and the agents' API (SPEC §3 HTTP). Every error is "
                       "`{\"error\": code, \"detail\": text}` with its HTTP status.",
    },
    "security": AGENT_API,
    "tags": [{"name": name} for name in ("service", "intake", "tickets", "customers", "agents")],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": RESPONSES,
        "securitySchemes": {
            "integrationToken": {"type": "http", "scheme": "bearer",
                                 "description": "`ROUTER_API_TOKEN`; unset, the intake answers 401."},
            "agentToken": {"type": "http", "scheme": "bearer",
                           "description": "An agent's token, or `ROUTER_API_TOKEN` with admin rights."},
            "session": {"type": "apiKey", "in": "cookie", "name": "router_session",
                        "description": "The web inbox's session (after `/login`)."},
        },
    },
}

_BODY = json.dumps(_DOCUMENT, ensure_ascii=False, separators=(",", ":")).encode()


def document() -> dict[str, Any]:
    """The OpenAPI document, a copy the caller may change."""
    return copy.deepcopy(_DOCUMENT)


async def openapi_json(request: Request) -> Response:
    return Response(_BODY, media_type=JSON)
