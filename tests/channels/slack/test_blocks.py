"""Slack layouts of what customers name themselves: shown as text, never obeyed as Slack markup."""

from __future__ import annotations

from channels.slack import blocks
from router.core.chat import LowScore


def test_a_customer_name_cannot_notify_the_channel_from_a_low_score_message():
    text, layout = blocks.low_score(LowScore("T-1042", 1, "<!channel> & <@U0AIKO>", "http://router.test/inbox/T-1042"))
    assert text == "Low satisfaction score: &lt;!channel&gt; &amp; &lt;@U0AIKO&gt; rated T-1042 1/5"
    section = layout[0]["text"]["text"]
    assert "<!channel>" not in section and "<@U0AIKO>" not in section
    assert "<http://router.test/inbox/T-1042|Open T-1042>" in section
