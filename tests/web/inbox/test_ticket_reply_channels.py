"""Where a reply can go (`timeline.reply_choices`, pure): one option per channel the customer has, with
the address `replies.destination` would use, and why a channel cannot take a reply now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from router.config import Settings
from router.core.store.timeline import reply_choices

NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SETTINGS = Settings(database_url=None, data_dir=None, config_path=None, meta_access_token="s")  # type: ignore[arg-type]


def test_the_address_is_the_newest_verified_else_the_newest_claimed():
    identities = [("email", "old@x.example", True), ("email", "claim@x.example", False),
                  ("email", "new@x.example", True), ("chat", "visitor-1", False), ("chat", "visitor-2", False)]
    choices = reply_choices(identities, {}, "email", SETTINGS, NOW)
    email, chat = choices.option("email"), choices.option("chat")
    assert email and (email.address, email.verified) == ("new@x.example", True)
    assert chat and (chat.address, chat.verified) == ("visitor-2", False)


def test_phone_numbers_and_the_web_form_are_no_channels_of_their_own():
    choices = reply_choices([("phone", "+81901234", True), ("api", "crm-7", True), ("web", "f", True),
                             ("email", "a@x.example", False)], {}, "web", SETTINGS, NOW)
    assert [o.channel for o in choices.options] == ["email"]
    assert choices.latest == "email", "the web form is answered by email"


def test_the_24_hour_window_of_whatsapp_and_messenger():
    identities = [("whatsapp", "8190", True), ("messenger", "psid", True), ("instagram", "igsid", True)]
    last = {"whatsapp": NOW - timedelta(hours=23, minutes=59), "messenger": NOW - timedelta(hours=25)}
    choices = reply_choices(identities, last, "whatsapp", SETTINGS, NOW)
    whatsapp, messenger, instagram = (choices.option(c) for c in ("whatsapp", "messenger", "instagram"))
    assert whatsapp and whatsapp.usable
    assert messenger and (messenger.refusal, messenger.refusal_detail) == ("window_closed", "25")
    assert instagram and instagram.refusal == "never_wrote"


def test_a_channel_without_its_setting_cannot_be_used():
    unconfigured = Settings(database_url=None, data_dir=None, config_path=None)  # type: ignore[arg-type]
    choices = reply_choices([("telegram", "42", True), ("email", "a@x.example", True)], {}, "telegram",
                            unconfigured, NOW)
    telegram, email = choices.option("telegram"), choices.option("email")
    assert telegram and (telegram.refusal, telegram.refusal_detail) == ("not_configured", "TELEGRAM_BOT_TOKEN")
    assert email and email.usable
