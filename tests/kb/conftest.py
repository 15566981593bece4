"""Knowledge-base fixtures: a few published articles in Japanese and English, and a draft."""

from __future__ import annotations

import pytest

from agents.store import AgentIdentity
from router.core.actions import Context
from router.core.actions import kb as kb_actions

LEAD = AgentIdentity(id=None, email="lena@example.com", role="lead")

ARTICLES = [
    dict(slug="refund-ja", title="返金の手続きについて", language="ja", topic="お支払い", tags=["返金", "払い戻し"],
         body="ご注文の**返金**は、マイページの「注文履歴」から申請できます。\n\n1. 注文を選ぶ\n2. 返金を申請する"),
    dict(slug="shipping-ja", title="配送状況の確認方法", language="ja", topic="配送", tags=["配送", "追跡"],
         body="発送後にお送りする追跡番号で、配送の状況を確認する方法をご案内します。"),
    dict(slug="refund", title="How to get a refund", language="en", topic="Billing", tags=["refund", "money back"],
         body="Open **Orders**, choose the order and press *Request a refund*. Refunds take 5 business days."),
    dict(slug="password-reset", title="Reset your password", language="en", topic="Account", tags=["login"],
         body="Use *Forgot password* on the sign-in page; the link in the mail is valid for one hour."),
]


async def add_article(ctx: Context, *, published: bool = True, **fields: object) -> int:
    values: dict = {"topic": "", "tags": [], **fields}
    return await kb_actions.create_article(ctx, LEAD, published=published, **values)


@pytest.fixture
def ctx(pool, config, clock) -> Context:
    return Context(pool, config, clock)


@pytest.fixture
async def articles(ctx) -> dict[str, int]:
    ids = {}
    for fields in ARTICLES:
        ids[str(fields["slug"])] = await add_article(ctx, **fields)
    ids["draft-refund"] = await add_article(ctx, published=False, slug="draft-refund", title="返金（下書き）",
                                            language="ja", body="返金の方法の下書き")
    return ids
