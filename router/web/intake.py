"""HTTP endpoints through which customers' messages come in: the integration API and the web form.

Each answers success only after `Pipeline.ingest` has committed.
"""

from __future__ import annotations

import time

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from channels.api import adapter as api_adapter
from channels.base import RawRequest
from channels.webform import form as webform
from router.core.errors import InvalidInput, LengthRequired, MalformedBody, PayloadTooLarge, RouterError
from router.core.inbound import InboundMessage, IngestResult
from router.web.http import DEFAULT_MAX_JSON_BYTES, client_address, read_body, read_json_object, services


async def ingest(request: Request, message: InboundMessage) -> IngestResult:
    svc = services(request)
    started = time.perf_counter()
    result = await svc.pipeline.ingest(svc.require_pool(), message)
    svc.metrics.record_ingest(message.channel, result, time.perf_counter() - started)
    return result


async def post_message(request: Request) -> Response:
    secrets = api_adapter.ApiSecrets(services(request).config.settings.api_token)
    raw = RawRequest(request.headers, await read_body(request, DEFAULT_MAX_JSON_BYTES))
    [message] = api_adapter.parse(raw, secrets)
    result = await ingest(request, message)
    return JSONResponse(result.as_json(), status_code=202)


async def support_page(request: Request) -> Response:
    return HTMLResponse(webform.render_form(webform.page_language(request)))


async def support_stylesheet(request: Request) -> Response:
    return Response(webform.stylesheet(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


async def post_support(request: Request) -> Response:
    svc = services(request)
    service = svc.config.service
    svc.form_limiter.check(client_address(request))
    wants_json = request.headers.get("content-type", "").startswith("application/json")
    limit = service.max_message_bytes  # the same bound as a mail, attachments included
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()):
        # Without a length, the multipart parser would spool file parts to disk unbounded.
        raise LengthRequired("this form needs a Content-Length header")
    if int(declared) > limit:
        raise PayloadTooLarge(f"the form is larger than {limit} bytes")
    if wants_json:
        values, uploads = await read_json_object(request), []
    else:
        try:
            form = await request.form(max_files=service.max_attachments + 1, max_fields=50)
        except (ValueError, KeyError, AssertionError) as exc:
            raise MalformedBody(f"the form could not be read: {exc}") from exc
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        uploads = [v for v in form.getlist("attachments") if isinstance(v, UploadFile)]
    wanted = values.get("lang")
    language = wanted if isinstance(wanted, str) and wanted in webform.TEXTS else webform.page_language(request)
    try:
        submission = await webform.parse_submission(
            values, uploads, max_attachments=service.max_attachments,
            max_attachment_bytes=service.max_attachment_bytes)
    except (InvalidInput, PayloadTooLarge) as exc:
        if wants_json:
            raise
        return _form_error(language, exc, values)
    if submission.message is None:
        svc.metrics.rejected.labels("web", "honeypot").inc()
    else:
        await ingest(request, submission.message)
    if wants_json:
        return JSONResponse({"accepted": True}, status_code=202)  # the reference goes to the address only
    return HTMLResponse(webform.render_form(language, sent=True), status_code=200)


def _form_error(language: str, exc: RouterError, values: dict[str, str]) -> Response:
    return HTMLResponse(webform.render_form(language, error=exc.detail, values=values), status_code=exc.status)


routes = [
    Route("/api/v1/messages", post_message, methods=["POST"]),
    Route("/support", support_page, methods=["GET"]),
    Route("/support.css", support_stylesheet, methods=["GET"]),
    Route("/support", post_support, methods=["POST"]),
]
