"""The survey page `/csat/{token}` (public: the signed token is the only key) and the ticket page's
feedback panel `/inbox/{ref}/csat` (agents).

The page works without JavaScript and under the CSP (no inline script or style): a GET with
`?score=N` records the answer (a second click changes it), then a plain form takes an optional
comment. That form needs no CSRF cookie: it changes only the survey its token names, and whoever holds
the token may answer that survey, from any page. A forged, altered or expired link shows a page saying
so and records nothing. Japanese or English: the survey's language, else the browser's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from router.core import csat
from router.core.errors import InvalidInput, NotFound, PayloadTooLarge, RouterError
from router.core.refs import ref
from router.core.store import csat as csat_store
from router.core.store.csat import Survey
from router.web.http import limit_client, read_body, services
from router.web.inbox.i18n import negotiate, register
from router.web.inbox.render import render
from router.web.inbox.session import require_agent
from router.web.inbox.ticket_view import TicketRoute, ticket_number

TEMPLATES = Path(__file__).parent / "csat_templates"
MAX_FORM_BYTES = 16 * 1024
_environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                           undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
RATE_PER_MINUTE, BURST = 30, 20
"""Survey page requests per client address (per app, in memory): answers come a few at a time."""
PAGE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your feedback", "question_csat": "How satisfied are you with the support you received?",
        "question_nps": "How likely are you to recommend us to a friend or colleague?",
        "about": "About your request {ref}", "scale_nps": "0 = not at all likely, 10 = extremely likely",
        "choose": "Choose an answer", "thanks": "Thank you! We recorded your answer: {answer}.",
        "change": "Changed your mind? Choose again:", "current": "(your answer)",
        "comment_label": "Anything you would like to add? (optional)", "send": "Send comment",
        "comment_thanks": "Thank you for your comment.", "comment_limit": "Up to {limit} characters.",
        "invalid_title": "This link is not valid",
        "invalid": "This survey link is not valid. Please use the link from the message we sent you, unchanged.",
        "expired_title": "This survey has closed",
        "expired": "This survey link has expired, so no answer was recorded. Thank you all the same.",
        "bad_score": "Please choose one of the answers below.",
    },
    "ja": {
        "title": "アンケート", "question_csat": "今回のサポートにどの程度満足されましたか？",
        "question_nps": "当社を友人や同僚にすすめる可能性はどのくらいありますか？",
        "about": "お問い合わせ {ref} について", "scale_nps": "0 = まったくない、10 = 非常に高い",
        "choose": "回答を選んでください", "thanks": "ありがとうございます。回答「{answer}」を記録しました。",
        "change": "回答を変更する場合は、もう一度お選びください：", "current": "（現在の回答）",
        "comment_label": "ご意見があればお聞かせください（任意）", "send": "コメントを送信",
        "comment_thanks": "コメントをお送りいただきありがとうございます。", "comment_limit": "{limit}文字まで。",
        "invalid_title": "このリンクは無効です",
        "invalid": "このアンケートのリンクは無効です。お送りしたメッセージのリンクをそのままお使いください。",
        "expired_title": "このアンケートは終了しました",
        "expired": "このアンケートのリンクは有効期限が切れているため、回答は記録されませんでした。"
                   "ご協力ありがとうございました。",
        "bad_score": "以下の回答からお選びください。",
    },
}



def _answers(kind: csat.SurveyKind, language: str) -> list[tuple[int, str]]:
    if kind == "csat":
        return list(csat.CHOICES[language].items())
    return [(score, str(score)) for score in csat.SCALES["nps"]]


def _page(language: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    body = _environment.get_template("survey.html").render(t=TEXTS[language], lang=language, **values)
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


def _survey_page(token: str, survey: Survey, language: str, *, status: int = 200, error: str | None = None,
                 comment_saved: bool = False, comment: str = "") -> HTMLResponse:
    answers = _answers(survey.kind, language)
    chosen = next((label for score, label in answers if score == survey.score), None)
    return _page(language, status=status, state="survey", token=token, kind=survey.kind, answers=answers,
                 score=survey.score, chosen=chosen, error=error, comment_saved=comment_saved,
                 comment=comment or survey.comment or "", max_comment=csat.MAX_COMMENT_CHARS,
                 ref=ref(survey.ticket_number) if survey.ticket_number else None)


def _bad_link(request: Request, exc: csat.BadLink) -> HTMLResponse:
    language = exc.language or negotiate(None, request.headers.get("accept-language"))
    return _page(language, status=410 if exc.reason == "expired" else 404, state=exc.reason)


async def survey_page(request: Request) -> Response:
    """The question (no `score`), or record `score` and thank the customer. A HEAD request (what some
    mail link checkers send) never records."""
    svc = services(request)
    limit_client(request, "csat", rate_per_minute=RATE_PER_MINUTE, burst=BURST)
    token = request.path_params["token"]
    try:
        if "score" not in request.query_params or request.method == "HEAD":
            survey, link = await csat.open_survey(svc.require_pool(), svc.config, token, svc.clock())
            return _survey_page(token, survey, link.language)
        try:
            answered = await csat.answer(svc.require_pool(), svc.config, svc.clock, token,
                                         request.query_params["score"])
        except InvalidInput:
            survey, link = await csat.open_survey(svc.require_pool(), svc.config, token, svc.clock())
            return _survey_page(token, survey, link.language, status=422, error=TEXTS[link.language]["bad_score"])
    except csat.BadLink as exc:
        return _bad_link(request, exc)
    return _survey_page(token, answered.survey, answered.link.language)


async def post_comment(request: Request) -> Response:
    """The optional comment (a urlencoded form, at most `MAX_FORM_BYTES`)."""
    svc = services(request)
    limit_client(request, "csat", rate_per_minute=RATE_PER_MINUTE, burst=BURST)
    token = request.path_params["token"]
    try:
        survey, link = await csat.open_survey(svc.require_pool(), svc.config, token, svc.clock())
        language = link.language
        try:
            body = await read_body(request, MAX_FORM_BYTES)
            fields = parse_qs(body.decode("utf-8"), max_num_fields=10)
            comment = (fields.get("comment") or [""])[0]
            survey = await csat.add_comment(svc.require_pool(), svc.config, svc.clock, token, comment)
        except (InvalidInput, PayloadTooLarge, UnicodeDecodeError, ValueError) as exc:
            detail = exc.detail if isinstance(exc, RouterError) else "the form could not be read"
            status = exc.status if isinstance(exc, RouterError) else 400
            return _survey_page(token, survey, language, status=status, error=detail)
    except csat.BadLink as exc:
        return _bad_link(request, exc)
    return _survey_page(token, survey, language, comment_saved=True)


async def stylesheet(request: Request) -> Response:
    return Response((TEMPLATES / "csat.css").read_bytes(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


async def ticket_panel(request: Request) -> Response:
    """The ticket page's feedback panel: this ticket's survey and the customer's ratings."""
    agent = await require_agent(request)
    number = ticket_number(request.path_params["ref"])
    async with services(request).require_pool().acquire() as conn:
        feedback = await csat_store.feedback(conn, number)
    if feedback is None:
        raise NotFound(f"no ticket {ref(number)}")
    this_ticket = [r for r in feedback.ratings if r.ticket_number == number]
    return render(request, agent, "_csat_panel.html", {"ref": ref(number), "feedback": feedback,
                                                       "this_ticket": this_ticket, "low": csat.LOW_SCORES})


register({
    "Customer feedback": "顧客の評価",
    "Loading…": "読み込み中…",
    "Show the customer's feedback": "顧客の評価を表示",
    "This ticket": "このチケット",
    "No survey yet: one goes out once the ticket has stayed solved for a while.":
        "アンケートはまだありません。解決済みの状態がしばらく続くと送信されます。",
    "Survey sent, no answer yet.": "アンケート送信済み（未回答）",
    "Not surveyed: only automated mail came in.": "アンケートなし：自動送信のメールのみでした。",
    "Not surveyed: merged into another ticket.": "アンケートなし：別のチケットに統合されました。",
    "Not surveyed: no agent replied.": "アンケートなし：担当者の返信がありませんでした。",
    "Not surveyed: the customer had a survey recently.": "アンケートなし：最近アンケートを送信済みです。",
    "Not surveyed: the customer cannot be reached now.": "アンケートなし：現在お客様に送信できません。",
    "Surveys of this customer": "このお客様のアンケート",
    "No answers yet.": "まだ回答はありません。",
    "CSAT {score}/5": "満足度 {score}/5",
    "NPS {score}/10": "NPS {score}/10",
    "no answer": "未回答",
    "low": "低評価",
})

routes: list[BaseRoute] = [
    Route("/csat.css", stylesheet, methods=["GET"]),
    Route("/csat/{token}", survey_page, methods=["GET"]),
    Route("/csat/{token}", post_comment, methods=["POST"]),
    TicketRoute("/inbox/{ref}/csat", ticket_panel, methods=["GET"]),
]
