"""The ticket page's words: display names of channels, statuses, priorities and SLA targets, the
messages after a form was sent, and the Japanese of every string the ticket templates use."""

from __future__ import annotations

from functools import cache
from types import MappingProxyType

from router.core.refs import PRIORITIES
from router.web.inbox.i18n import register

WORDS = MappingProxyType({
    # Names are (English, Japanese) pairs here rather than `_()` strings: one-word English keys such
    # as "Open" (a status here, a verb in the shortcuts help) would clash in the shared catalogue.
    "channels": {"email": ("Email", "メール"), "web": ("Web form", "Webフォーム"), "chat": ("Chat", "チャット"),
                 "api": ("API", "API"), "telegram": ("Telegram", "Telegram"), "line": ("LINE", "LINE"),
                 "messenger": ("Messenger", "Messenger"), "instagram": ("Instagram", "Instagram"),
                 "whatsapp": ("WhatsApp", "WhatsApp"), "x": ("X", "X"), "phone": ("Phone", "電話"),
                 "note": ("Note", "メモ"), "slack": ("Slack", "Slack")},
    "statuses": {"open": ("Open", "対応中"), "pending": ("Pending", "保留中"), "solved": ("Solved", "解決済み"),
                 "closed": ("Closed", "クローズ")},
    "priorities": {"low": ("Low", "低"), "normal": ("Normal", "通常"), "high": ("High", "高"),
                   "urgent": ("Urgent", "緊急")},
    "targets": {"first_response": ("First response", "初回応答"), "next_response": ("Next response", "次回応答"),
                "resolution": ("Resolution", "解決")},
    "outbound_kinds": {"ack": ("Automatic acknowledgement", "自動受付通知"),
                       "csat": ("Satisfaction survey", "満足度アンケート")},
    "presence": {"online": ("online", "オンライン"), "away": ("away", "離席中"), "offline": ("offline", "オフライン")},
    "clock_class": {"running": "sla-ok", "warned": "sla-warn", "late": "sla-late", "paused": "", "met": "sla-ok",
                    "met_late": "sla-warn"},
    "agent_statuses": ("open", "pending", "solved"),
    "priority_order": PRIORITIES,
})
"""What the templates get as `words`."""


@cache
def names(language: str) -> dict[str, dict[str, str]]:
    """`WORDS`' (English, Japanese) names in one language, by group and key (`names("ja")["statuses"]`)."""
    index = 1 if language == "ja" else 0
    return {group: {key: pair[index] for key, pair in entries.items()}
            for group, entries in WORDS.items() if isinstance(entries, dict) and group != "clock_class"}

class Named:
    """`names(language)` as the templates call it: `named.status("open")`, `named("presence", "away")`. A
    Python object rather than Jinja macros, whose closures over the page's context would keep every page
    in a reference cycle until the cycle collector frees a batch of them at once (a 10+ ms pause)."""

    def __init__(self, language: str) -> None:
        self.names = names(language)

    def __call__(self, group: str, key: str) -> str:
        return self.names[group].get(key, key)

    def channel(self, key: str) -> str:
        return self.names["channels"].get(key, key)

    def status(self, key: str) -> str:
        return self.names["statuses"].get(key, key)

    def priority(self, key: str) -> str:
        return self.names["priorities"].get(key, key)

    def target(self, key: str) -> str:
        return self.names["targets"].get(key, key)


DONE = MappingProxyType({
    "reply": "Reply queued.",
    "reply_pending": "Reply queued; the ticket is pending.",
    "reply_again": "This reply was sent already.",
    "note": "Note added.",
    "status": "Ticket updated.",
    "transfer": "Ticket transferred.",
    "take": "The ticket is yours now.",
    "customer_note": "Note about the customer saved.",
    "unchanged": "Nothing to change.",
})
"""The message shown after a form went through (`?done=<key>` after the redirect)."""

register({
    # page
    "(no subject)": "（件名なし）", "(no name)": "（名前なし）",
    "Jump to the latest message": "最新のメッセージへ",
    "Conversation": "やり取り", "Ticket details": "チケットの詳細",
    "{count} messages": "メッセージ {count} 件", "last activity {time}": "最終更新 {time}",
    "Team": "チーム", "Assignee": "担当者", "Unassigned": "未割り当て", "Opened": "受付", "Follows": "前のチケット",
    # timeline
    "Customer": "顧客", "claimed, not verified": "未確認（自己申告）", "verified": "確認済み",
    "Automatic message": "自動送信メッセージ", "Automatic": "自動",
    "sent on {channel}": "{channel}で送信", "Sent": "送信済み", "Not delivered": "未配信",
    "unknown reason": "理由不明", "Sending": "送信中", "Queued": "送信待ち",
    "Queued, retrying (attempt {n})": "送信待ち・再試行中（{n} 回目）",
    "Delivered": "配信済み", "Read": "既読", "Failed": "配信失敗",
    "Show quoted history": "引用された履歴を表示", "Show the formatted email": "書式付きのメールを表示",
    "Formatted email": "書式付きのメール",
    "Load remote images (the sender sees that you opened the mail)":
        "外部画像を読み込む（送信者に開封が伝わります）",
    "Attachments": "添付ファイル", "inline": "本文内",
    "Routing": "振り分け", "SLA": "SLA", "System": "システム",
    "Assigned to {agent}": "{agent} に割り当て", "Waiting in the queue": "キューで待機中",
    "Transferred to {agent} by {actor}": "{actor} が {agent} に転送", "Transferred to {agent}": "{agent} に転送",
    "Returned to the queue by {actor}": "{actor} がキューに戻しました", "Returned to the queue": "キューに戻りました",
    "Given back to the queue by {agent}": "{agent} からキューに戻りました", "Back to {agent}": "{agent} に戻りました",
    "Merged": "統合",
    "SLA warning": "SLA 警告", "SLA breached": "SLA 違反",
    "{target} is due {time}": "{target}の期限は {time}", "{target} was due {time}": "{target}の期限は {time} でした",
    "by {actor}": "{actor} による変更",
    "Reopened: the customer wrote again": "再オープン：お客様から再度連絡がありました",
    "Merged into": "統合先", "Customer records merged": "顧客レコードを統合しました",
    "Merge undone by {actor}": "{actor} が顧客レコードの統合を取り消しました",
    "Merge undone": "顧客レコードの統合を取り消しました",
    "Identity verified": "連絡先を確認済みにしました",
    "Status": "ステータス", "Priority": "優先度",
    # SLA panel
    "Met": "達成", "Met late": "期限後に達成", "was due {time}": "期限 {time}", "Due": "期限",
    "Paused while waiting on the customer": "お客様の返信待ちで停止中", "since {time}": "{time} から",
    "at risk": "期限間近", "breached": "期限超過", "Times in {zone}": "時刻は {zone}",
    "No SLA clock runs on this ticket.": "このチケットには SLA の計測がありません。",
    # routing panel
    "Routing log": "振り分け履歴", "No routing decision yet.": "振り分けはまだありません。",
    # customer panel
    "Tier": "ランク", "Customer since": "登録日", "now {time}": "現在 {time}", "Identities": "連絡先",
    "Tickets": "チケット", "Notes about the customer": "顧客についてのメモ", "No notes yet.": "メモはまだありません。",
    "Integration": "連携", "Add a note about the customer": "顧客についてのメモを追加",
    "Note about the customer": "顧客についてのメモ", "Save customer note": "顧客メモを保存",
    "The note was not saved.": "メモは保存されませんでした。",
    # reply
    "Reply to the customer": "お客様への返信", "The reply was not sent.": "返信は送信されませんでした。",
    "Canned response": "定型文", "Insert": "挿入", "Channel": "送信チャネル",
    "Customer's latest channel": "お客様が最後に使ったチャネル",
    "no address on this channel": "このチャネルの連絡先がありません",
    "This customer cannot be reached on any channel now. Add an internal note or transfer the ticket.":
        "現在どのチャネルでもこのお客様に連絡できません。社内メモを残すか、チケットを転送してください。",
    "Email replies stay queued: no SMTP relay is configured (ROUTER_SMTP_RELAY).":
        "SMTP リレーが設定されていないため、メールの返信は送信待ちのままになります（ROUTER_SMTP_RELAY）。",
    "Send reply": "返信を送信", "Send and set pending": "送信して保留にする",
    "unavailable: the 24-hour reply window closed ({hours} h since the customer's last message)":
        "利用不可：24 時間の返信期間が終了しました（お客様の最後のメッセージから {hours} 時間）",
    "unavailable: the customer never wrote on this channel, so it takes template messages only":
        "利用不可：お客様はこのチャネルで連絡していないため、テンプレートメッセージのみ送信できます",
    "unavailable: the channel is not configured ({setting})": "利用不可：チャネルが設定されていません（{setting}）",
    "outside the 24-hour window: goes as the WhatsApp template (one line, at most 1,024 characters)":
        "24時間枠外：WhatsAppテンプレートで送信（1行・1,024文字まで）",
    # note
    "The note was not added.": "メモは追加されませんでした。", "Only agents see it.": "担当者のみ閲覧できます。",
    "Add note": "メモを追加", "Note for colleagues": "チーム内メモ",
    # actions
    "Ticket": "チケット", "Take it": "自分が担当する", "Update": "更新", "Transfer": "転送", "Transfer to": "転送先",
    "Back to the team queue": "チームのキューに戻す", "current assignee": "現在の担当者",
    "only leads can hand a ticket to a lead": "リーダーへの転送はリーダーのみ可能です",
    "Agents may transfer their own or unassigned tickets; ask a lead for the others.":
        "担当者が転送できるのは自分の担当か未割り当てのチケットのみです。その他はリーダーに依頼してください。",
    "Reason": "理由", "e.g. needs a billing specialist": "例：請求の担当者が必要",
    "The change was not made.": "変更されませんでした。",
    "The server refused the request. Reload the page and try again.":
        "サーバーが要求を拒否しました。ページを再読み込みしてもう一度お試しください。",
    # after a form
    "Reply queued.": "返信を送信キューに入れました。",
    "Reply queued; the ticket is pending.": "返信を送信キューに入れ、チケットを保留にしました。",
    "This reply was sent already.": "この返信は送信済みです。",
    "Note added.": "メモを追加しました。", "Ticket updated.": "チケットを更新しました。",
    "Ticket transferred.": "チケットを転送しました。", "The ticket is yours now.": "このチケットの担当になりました。",
    "Note about the customer saved.": "顧客についてのメモを保存しました。",
    "Nothing to change.": "変更はありません。",
    # email frame
    "Remote images are hidden.": "外部画像は表示されていません。",
})
