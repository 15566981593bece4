"""Block Kit layouts for what leads read in Slack: a ticket's card, a burst summary, the daily digest,
`/sla` answers and the reassign dialog. Each layout returns the message's blocks and its plain `text`
(what notifications and screen readers show).

Customers and agents write the subjects and names shown here: every such text is escaped, so a
subject like `<!channel>` can never ping a channel nor forge a link. Slack's limits (3,000 characters
a text, 10 fields a section, 50 blocks a message) are respected by truncating.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from channels.slack.payloads import (
    ACTION_PREFIX,
    AGENT_ACTION,
    AGENT_BLOCK,
    REASON_ACTION,
    REASON_BLOCK,
    REASSIGN_CALLBACK,
)
from router.core.chat import LowScore
from sla.alerts import BurstSummary, CardState, Digest, SummaryLine, TicketCard

Block = dict[str, Any]
Message = tuple[str, list[Block]]

ICONS: dict[CardState, str] = {"ok": ":large_green_circle:", "warning": ":warning:", "breach": ":rotating_light:",
                               "resolved": ":white_check_mark:"}
STATE_WORDS: dict[CardState, str] = {"ok": "On track", "warning": "At risk", "breach": "Breached",
                                     "resolved": "Resolved"}
MAX_LINES = 30
SUBJECT_CHARS = 120


def escape(text: str | None) -> str:
    """Text made inert for Slack's mrkdwn: `&`, `<` and `>` are the control characters."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": _cut(text, 2000)}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}}


def _plain(text: str, limit: int = 75) -> Block:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _link(url: str, ref: str, subject: str | None) -> str:
    label = f"{ref} {_cut(subject or '(no subject)', SUBJECT_CHARS)}"
    return f"<{url}|{escape(label)}>"


def _button(action: str, label: str, ref: str, style: str | None = None) -> Block:
    button: Block = {"type": "button", "action_id": ACTION_PREFIX + action, "text": _plain(label), "value": ref}
    if style:
        button["style"] = style
    return button


def card(card: TicketCard) -> Message:
    """One ticket: what, why, how late, who has it, and the buttons to act on it."""
    facts = card.facts
    assignee = f"<@{card.assignee_chat_id}>" if card.assignee_chat_id else escape(facts.assignee_name or "unassigned")
    customer = escape(facts.customer_name or "unknown customer")
    fields = [
        _mrkdwn(f"*Customer*\n{customer} ({escape(facts.tier)})"),
        _mrkdwn(f"*Channel*\n{escape(facts.channel)}"),
        _mrkdwn(f"*Assignee*\n{assignee}"),
        _mrkdwn(f"*Priority*\n{escape(facts.priority)}"),
    ]
    for clock in card.clocks[:6]:
        mark = ":heavy_check_mark: " if clock.met else (":red_circle: " if clock.breached else ":large_orange_circle: ")
        fields.append(_mrkdwn(f"*{clock.label}*\n{mark}{escape(clock.status)}\ndue {escape(clock.due)}"))
    blocks: list[Block] = [
        _section(f"{ICONS[card.state]} *{STATE_WORDS[card.state]}* · {escape(card.headline)}\n"
                 f"{_link(facts.url, facts.ref, facts.subject)}"),
        {"type": "section", "fields": fields},
    ]
    if card.resolution:
        blocks.append(_section(f":white_check_mark: {escape(card.resolution)}"))
    notes = [escape(line) for line in card.activity[-8:]]
    if card.snoozed_until:
        notes.append(f":zzz: alerts snoozed until {escape(card.snoozed_until)}")
    if notes:
        blocks.append({"type": "context", "elements": [_mrkdwn(note) for note in notes[-10:]]})
    if card.actions:
        blocks.append({"type": "actions", "block_id": f"sla_actions:{facts.ref}", "elements": [
            _button("take", "Take it", facts.ref, "primary"),
            _button("reassign", "Reassign…", facts.ref),
            _button("escalate", "Escalate", facts.ref, "danger"),
            _button("snooze", "Snooze 30m", facts.ref),
        ]})
    return f"{ICONS[card.state]} {escape(card.headline)}", blocks


def _line(line: SummaryLine) -> str:
    return f"{ICONS[line.state]} {_link(line.url, line.ref, line.subject)} · {escape(line.status)}"


def _lines(lines: Sequence[SummaryLine]) -> list[Block]:
    shown = [_line(line) for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        shown.append(f"…and {len(lines) - MAX_LINES} more")
    # One section per 10 lines keeps each text well under Slack's 3,000 characters.
    return [_section("\n".join(shown[i:i + 10])) for i in range(0, len(shown), 10)]


def summary(burst: BurstSummary) -> Message:
    """Alerts that came faster than the burst limit, in one message."""
    count = len(burst.lines)
    text = f":rotating_light: {count} ticket{'s' if count != 1 else ''} at risk at once"
    blocks = [_section(f"*{text}* — listed here rather than one message each. "
                       f"<{burst.at_risk_url}|Open the At risk view>"), *_lines(burst.lines)]
    return text, blocks


def digest(digest: Digest) -> Message:
    """A team's daily SLA digest."""
    text = f"Daily SLA digest for {digest.team}, {digest.day.isoformat()}"
    queue = f"{digest.queued} waiting"
    if digest.oldest_waiting_ref:
        queue += f"; oldest {escape(digest.oldest_waiting_ref)}, waiting {escape(digest.oldest_waiting_since)}"
    online = ", ".join(f"{escape(a.name)} ({a.load}/{a.capacity})" for a in digest.agents_online) or "nobody"
    blocks: list[Block] = [
        {"type": "header", "text": _plain(text, 150)},
        {"type": "section", "fields": [
            _mrkdwn(f"*Breaches yesterday*\n{digest.breaches_yesterday}"),
            _mrkdwn(f"*SLA compliance yesterday*\n{escape(digest.compliance)}"),
            _mrkdwn(f"*Queue now*\n{queue}"),
            _mrkdwn(f"*Agents online*\n{online}"),
        ]},
        _section(f"*At risk now: {len(digest.at_risk)}* · <{digest.at_risk_url}|Open the At risk view>"),
        *_lines(digest.at_risk),
    ]
    return text, blocks


def at_risk_list(team: str | None, lines: Sequence[SummaryLine], at_risk_url: str) -> Message:
    """`/sla`: the tickets at risk for the user's team."""
    who = f"team {team}" if team else "every team"
    if not lines:
        quiet = f"Nothing at risk for {who} right now."
        return quiet, [_section(f":white_check_mark: {escape(quiet)}")]
    text = f"{len(lines)} ticket{'s' if len(lines) != 1 else ''} at risk for {who}"
    return text, [_section(f"*{escape(text)}* · <{at_risk_url}|Open the At risk view> · `/sla T-1042` shows one"
                           " with its buttons"), *_lines(lines)]


def low_score(low: LowScore) -> Message:
    """The customer's name is theirs to choose: escaped in the notification text too, so a name such as
    `<!channel>` is shown, never obeyed."""
    text = escape(f"Low satisfaction score: {low.customer} rated {low.ref} {low.score}/5")
    return text, [_section(f":small_red_triangle_down: *{text}* · <{low.url}|Open {escape(low.ref)}>")]


def notice(text: str) -> Message:
    """A short answer to one person (an ephemeral reply)."""
    return text, [_section(escape(text))]


def reassign_dialog(ref: str, agents: Sequence[tuple[str, str]], channel_id: str | None) -> dict[str, Any]:
    """The Reassign… dialog: a select of the agents who may take the ticket (value, label) and the
    reason, which is required."""
    return {
        "type": "modal",
        "callback_id": REASSIGN_CALLBACK,
        "private_metadata": json.dumps({"ref": ref, "channel": channel_id}),
        "title": _plain(f"Reassign {ref}", 24),
        "submit": _plain("Reassign"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "input", "block_id": AGENT_BLOCK, "label": _plain("New assignee"),
             "element": {"type": "static_select", "action_id": AGENT_ACTION, "placeholder": _plain("Choose an agent"),
                         "options": [{"text": _plain(label), "value": value} for value, label in agents[:100]]}},
            {"type": "input", "block_id": REASON_BLOCK, "label": _plain("Reason"),
             "element": {"type": "plain_text_input", "action_id": REASON_ACTION, "multiline": True,
                         "max_length": 500, "placeholder": _plain("Why this agent? (kept in the ticket's history)")}},
        ],
    }
