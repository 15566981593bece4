"""The inbox speaks English and Japanese: English source strings, Japanese translations.

Each page module registers the Japanese for its own strings (`register`), so translations live
next to the templates that use them. A string without a translation shows in English.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("en", "ja")
_JAPANESE: dict[str, str] = {}


def register(japanese: Mapping[str, str]) -> None:
    """Add Japanese translations keyed by their English text."""
    _JAPANESE.update(japanese)


def translate(language: str, text: str, **values: object) -> str:
    """`text` in `language`, with `{name}` placeholders filled from `values`."""
    translated = _JAPANESE.get(text, text) if language == "ja" else text
    return translated.format(**values) if values else translated


def negotiate(preference: str | None, accept_language: str | None) -> str:
    """The agent's own choice, else the first of `Accept-Language` we speak, else English."""
    if preference in LANGUAGES:
        return preference
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            weighted.append((-quality, index, primary))
    return min(weighted)[2] if weighted else "en"


register({
    "Sign in": "サインイン",
    "Sign out": "サインアウト",
    "Email address": "メールアドレス",
    "Password": "パスワード",
    "The email address or the password is not right.": "メールアドレスまたはパスワードが正しくありません。",
    "Your session has ended. Please sign in again.": "セッションが終了しました。もう一度サインインしてください。",
    "Inbox": "受信箱",
    "Admin": "管理",
    "Reports": "レポート",
    "Keyboard shortcuts": "キーボードショートカット",
    "Close": "閉じる",
    "Skip to content": "本文へ移動",
    "Signed in as {name}": "{name} としてサインイン中",
    "Language": "言語",
    "Something went wrong": "問題が発生しました",
    "Back to the inbox": "受信箱に戻る",
    "Page not found": "ページが見つかりません",
    "You do not have permission to do this.": "この操作を行う権限がありません。",
    "The form has expired. Reload the page and try again.":
        "フォームの有効期限が切れました。ページを再読み込みしてもう一度お試しください。",
    "Too many sign-in attempts. Try again in {minutes} minutes.":
        "サインインの試行回数が多すぎます。{minutes} 分後にもう一度お試しください。",
    "Move down / up": "下へ / 上へ移動",
    "Open": "開く",
    "Reply": "返信",
    "Internal note": "社内メモ",
    "Solve": "解決",
    "Show this help": "このヘルプを表示",
    "Search": "検索",
    "in {duration}": "残り {duration}",
    "{duration} late": "{duration} 超過",
    "Your language and timezone": "表示言語とタイムゾーン",
    "Timezone": "タイムゾーン",
    "Save": "保存",
    "Automatic": "自動",
})
