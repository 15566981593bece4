"""A seeded corpus of realistic support mail for the benchmarks (issue 14 §2).

Tiny synthetic mails (a line of text, ~280 bytes) hide most of the intake's cost: parsing,
decoding, keyword matching and storage all grow with the size and the mix of real mail. This
corpus mirrors what a Japanese support desk receives:

- text mails of 1.4–3.7 KB as sent (headers included): greeting, a problem described in a few
  sentences, details (order numbers, dates), a closing and a signature;
- half Japanese, encoded as Japanese mailers do: ISO-2022-JP body (7bit) and MIME-encoded
  ISO-2022-JP subject and display name; the other half English (us-ascii);
- 30 % replies: `Re:` subject, `In-Reply-To`/`References` naming an EARLIER message of the same
  corpus from the same customer, and that message quoted below the new text. The parent is at least
  `REPLY_GAP` positions earlier, so a load generator that sends the corpus in order with fewer
  than `REPLY_GAP` connections has committed the parent before the reply goes out;
- ~10 % carry a small attachment (1–3 KB file, base64) in a multipart/mixed mail, which makes
  those mails larger than the text range.

The same `(count, seed, tag)` always gives the same bytes; `tag` keeps Message-IDs of different
runs on one database apart (the intake dedupes on Message-ID).
"""

from __future__ import annotations

import json
import random
import textwrap
from base64 import encodebytes
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime

SUPPORT_ADDRESS = "support@example.com"
MIN_BYTES, MAX_BYTES = 1400, 3700
REPLY_SHARE, ATTACHMENT_SHARE, JAPANESE_SHARE = 0.30, 0.10, 0.5
REPLY_GAP = 32
EPOCH = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Mail:
    """One mail as an SMTP client would send it: envelope plus the raw RFC 5322 bytes (CRLF)."""

    index: int
    sender: str
    sender_name: str
    recipients: tuple[str, ...]
    message_id: str  # without angle brackets
    subject: str
    text: str  # the new text, as the customer typed it (no quote, no signature)
    language: str  # "ja" or "en"
    parent: int | None  # index of the mail this one replies to
    attachment: str | None  # file name
    data: bytes


JA_NAMES = ["田中 太郎", "佐藤 花子", "鈴木 一郎", "高橋 美咲", "伊藤 健太", "渡辺 由美", "山本 翔太",
            "中村 恵子", "小林 大輔", "加藤 真由美", "吉田 拓也", "山田 陽子", "松本 直樹", "井上 さくら"]
JA_ROMAJI = ["tanaka", "sato", "suzuki", "takahashi", "ito", "watanabe", "yamamoto", "nakamura",
             "kobayashi", "kato", "yoshida", "yamada", "matsumoto", "inoue"]
EN_NAMES = ["Emily Clark", "James Miller", "Sophie Turner", "Daniel Brooks", "Olivia Hughes", "Liam Walker",
            "Grace Bennett", "Noah Foster", "Chloe Price", "Ethan Reed", "Mia Coleman", "Lucas Ward"]
DOMAINS = ["mail.example", "corp.example.co.jp", "docomo.example", "isp.example.net", "shop.example"]

JA_SUBJECTS = {
    "billing": ["請求金額について", "今月のご請求について確認させてください", "返金のお願い",
                "二重に請求されているようです", "支払い方法の変更について"],
    "technical": ["ログインできません", "アプリでエラーが表示されます", "パスワード再設定のメールが届かない",
                  "画面が真っ白になる不具合について", "データの同期ができません"],
    "shipping": ["商品が届かない件", "配送状況の確認をお願いします", "発送予定日について",
                 "届いた商品が注文と違います", "配送先住所の変更について"],
    "other": ["お問い合わせ", "サービス内容について質問です", "契約プランの変更について", "営業時間について"],
}
JA_PROBLEMS = {
    "billing": ["今月の請求書を確認したところ、契約している料金より高い金額が記載されていました。",
                "同じ注文に対して、クレジットカードに二回請求が発生しているようです。",
                "先月解約したはずのプランの料金が引き続き請求されています。",
                "返金の手続きをお願いしたいのですが、どのようにすればよろしいでしょうか。",
                "支払い方法を銀行振込からクレジットカードに変更したいと考えております。"],
    "technical": ["昨日からアプリにログインしようとすると、エラーが表示されて先に進めません。",
                  "パスワードを再設定しようとしましたが、確認のメールが届きません。",
                  "スマートフォンのアプリを最新版に更新したところ、起動直後に画面が真っ白になります。",
                  "パソコンとスマートフォンの間でデータが同期されず、古い情報が表示されたままです。",
                  "ログイン後に設定画面を開くと、しばらくしてアプリが終了してしまいます。"],
    "shipping": ["先週注文した商品がまだ届いておりません。",
                 "追跡番号で配送状況を確認しようとしたのですが、情報が表示されません。",
                 "届いた商品の色が注文したものと異なっていました。",
                 "引っ越しのため、配送先の住所を変更していただくことは可能でしょうか。",
                 "発送のご連絡をいただいてから一週間以上経ちますが、まだ手元に届いていません。"],
    "other": ["御社のサービスについていくつか質問があり、ご連絡いたしました。",
              "現在のプランから上位のプランへの変更を検討しております。",
              "年末年始の営業時間とサポートの対応時間を教えていただけますでしょうか。",
              "会社で複数のアカウントを利用したいのですが、法人向けの契約はありますか。"],
}
JA_DETAILS = ["注文番号は{n}です。", "ご注文日は{m}月{d}日です。",
              "利用している端末はスマートフォンとパソコンの両方です。",
              "念のため、アプリの再インストールも試しましたが、状況は変わりませんでした。",
              "何度か時間をおいて試してみましたが、同じ結果になります。",
              "家族も同じアカウントを使っておりますが、同様の症状が出ているとのことです。",
              "お客様番号は{n}になります。", "先月までは問題なく利用できておりました。",
              "業務で毎日使用しているため、大変困っております。",
              "画面には「エラーが発生しました。しばらくしてから再度お試しください」と表示されます。",
              "関係がありそうな情報があれば、追加でお送りいたします。",
              "以前にも一度問い合わせをしておりますが、まだ解決しておりません。",
              "お手数ですが、現在の状況を確認していただけますと幸いです。",
              "可能であれば、今週中にご回答いただけますと助かります。"]
JA_URGENT = ["至急ご対応をお願いいたします。", "大変急いでおりますので、早めのご連絡をお願いいたします。"]
JA_GREETINGS = ["いつもお世話になっております。", "お世話になっております。", "初めてご連絡いたします。",
                "突然のご連絡失礼いたします。"]
JA_CLOSINGS = ["お忙しいところ恐れ入りますが、よろしくお願いいたします。", "ご確認のほど、よろしくお願いいたします。",
               "ご回答をお待ちしております。よろしくお願いいたします。"]
JA_REPLY_OPENERS = ["ご連絡ありがとうございます。", "先ほどの件について追加でご連絡いたします。",
                    "早速のご対応ありがとうございます。", "お返事がまだいただけていないため、再度ご連絡いたします。"]

EN_SUBJECTS = {
    "billing": ["Question about my invoice", "Double charge on my card", "Refund request",
                "Wrong amount on this month's bill", "Changing my payment method"],
    "technical": ["Cannot log in", "Error message in the app", "Password reset email never arrives",
                  "App crashes on startup", "Data does not sync between devices"],
    "shipping": ["Order has not arrived", "Tracking number does not work", "Wrong item delivered",
                 "Change of delivery address", "When will my order ship?"],
    "other": ["A question about your service", "Upgrading my plan", "Opening hours over the holidays",
              "Business accounts"],
}
EN_PROBLEMS = {
    "billing": ["I checked this month's invoice and the amount is higher than the price of my plan.",
                "It looks like my credit card was charged twice for the same order.",
                "I cancelled my subscription last month but I was still charged for it.",
                "I would like a refund for my last order. How do I request one?",
                "I would like to switch my payment method from bank transfer to credit card."],
    "technical": ["Since yesterday the app shows an error whenever I try to log in.",
                  "I tried to reset my password, but the confirmation email never arrives.",
                  "After updating the app to the latest version, the screen stays white right after launch.",
                  "My data does not sync between my laptop and my phone, the phone shows old information.",
                  "When I open the settings page after logging in, the app closes after a few seconds."],
    "shipping": ["The item I ordered last week has still not arrived.",
                 "I tried to check the delivery status with the tracking number, but nothing shows up.",
                 "The item I received is a different colour from the one I ordered.",
                 "I am moving next week. Could you change the delivery address of my order?",
                 "You told me my order had shipped more than a week ago, but I have not received it."],
    "other": ["I have a few questions about your service and I could not find the answers on your site.",
              "I am thinking about upgrading from my current plan to a larger one.",
              "Could you tell me your opening hours and support hours over the holidays?",
              "We would like to use several accounts in our company. Do you offer business contracts?"],
}
EN_DETAILS = ["My order number is {n}.", "I placed the order on {m}/{d}.", "I use both the phone app and the website.",
              "I already tried reinstalling the app, but nothing changed.",
              "I tried again a few times over the day with the same result.",
              "My family uses the same account and they see the same problem.",
              "My customer number is {n}.", "Everything worked fine until last month.",
              "I use this every day for work, so this is a real problem for me.",
              "The screen says \"Something went wrong. Please try again later.\"",
              "Let me know if you need any other information from me.",
              "I already contacted you about this once, and it is still not solved.",
              "Could you please look into the current status for me?",
              "It would help a lot if you could answer within this week."]
EN_URGENT = ["This is urgent, please help as soon as possible.", "Please treat this as urgent."]
EN_GREETINGS = ["Hello,", "Hi there,", "Dear support team,", "Good morning,"]
EN_CLOSINGS = ["Thanks in advance for your help.", "Looking forward to your answer.", "Thank you for your time."]
EN_REPLY_OPENERS = ["Thanks for getting back to me.", "A quick follow-up on my earlier message.",
                    "Thank you for the quick reply.", "I have not heard back yet, so I am writing again."]


def make_corpus(count: int, seed: int = 7, *, customers: int | None = None, tag: str | None = None) -> list[Mail]:
    """`count` mails in sending order; replies name earlier mails of the same customer."""
    rng = random.Random(seed)
    tag = tag or f"s{seed}"
    customers = customers or max(1, count // 4)
    mails: list[Mail] = []
    for index in range(count):
        parent = _pick_parent(rng, mails, index)
        if parent is None:
            customer = rng.randrange(customers)
        else:
            customer = _customer_of(mails[parent])
        mails.append(_mail(rng, index, customer, parent, mails, tag))
    return mails


def api_body(mail: Mail, channel: str = "api") -> bytes:
    """The mail's content as a `POST /api/v1/messages` JSON body (the integration API has no
    threading headers: a follow-up is threaded by its sender)."""
    return json.dumps({"channel": channel, "sender": {"email": mail.sender, "name": mail.sender_name},
                       "subject": mail.subject, "text": mail.text, "external_id": mail.message_id},
                      ensure_ascii=False).encode()


def api_request(mail: Mail, token: str) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of the API request carrying `mail`."""
    return "/api/v1/messages", api_body(mail), {"Authorization": f"Bearer {token}",
                                                 "Content-Type": "application/json"}


def _pick_parent(rng: random.Random, mails: list[Mail], index: int) -> int | None:
    if index < REPLY_GAP or rng.random() >= REPLY_SHARE:
        return None
    return rng.randrange(0, index - REPLY_GAP + 1)


def _customer_of(mail: Mail) -> int:
    return int(mail.sender.split("@", 1)[0].rsplit(".", 1)[1])


def _mail(rng: random.Random, index: int, customer: int, parent: int | None, mails: list[Mail], tag: str) -> Mail:
    japanese = (customer * 7919 + 13) % 100 < JAPANESE_SHARE * 100  # a customer writes one language
    names, local = (JA_NAMES, JA_ROMAJI) if japanese else (EN_NAMES, [n.split()[0].lower() for n in EN_NAMES])
    who = customer % len(names)
    sender = f"{local[who]}.{customer}@{DOMAINS[customer % len(DOMAINS)]}"
    sender_name = names[who]
    message_id = f"{tag}-{index}.{rng.getrandbits(48):012x}@{sender.split('@', 1)[1]}"
    attachment = _attachment(rng, japanese) if rng.random() < ATTACHMENT_SHARE else None
    target = rng.randint(MIN_BYTES, MAX_BYTES - 250)
    charset = "iso-2022-jp" if japanese else "us-ascii"
    if parent is None:
        topic = rng.choice(list(JA_SUBJECTS))
        subject = rng.choice((JA_SUBJECTS if japanese else EN_SUBJECTS)[topic])
        references: tuple[str, ...] = ()
        quoted = ""
    else:
        before = mails[parent]
        subject = before.subject if before.subject.startswith("Re: ") else f"Re: {before.subject}"
        topic = _topic_of(before.subject.removeprefix("Re: "))
        references = (*_references(before.data), before.message_id)
        quoted = _quote(before, japanese)
    headers = _headers(index, sender, sender_name, subject, message_id, references, japanese, attachment)
    text, signature = _text(rng, japanese, topic, parent is not None, sender_name, customer)
    fixed = len(headers) + len(quoted.encode(charset)) + _encoded_len(signature, japanese) + 8
    size = fixed + _encoded_len(text, japanese)
    while size < target:  # sentences are < 250 bytes, and targets stop 250 short of MAX_BYTES
        text, added = _more(rng, japanese, topic, text)
        size += _encoded_len(added, japanese) + 2
    body_text = f"{_wrap(text, japanese)}\n\n{_wrap(signature, japanese)}\n" + (f"\n{quoted}" if quoted else "")
    data = _assemble(headers, body_text, charset, attachment, index)
    return Mail(index=index, sender=sender, sender_name=sender_name, recipients=(SUPPORT_ADDRESS,),
                message_id=message_id, subject=subject, text=text, language="ja" if japanese else "en",
                parent=parent, attachment=attachment[0] if attachment else None, data=data)


def _topic_of(subject: str) -> str:
    for table in (JA_SUBJECTS, EN_SUBJECTS):
        for topic, subjects in table.items():
            if subject in subjects:
                return topic
    return "other"


def _references(data: bytes) -> tuple[str, ...]:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.startswith(b"References: "):
            return tuple(ref.strip("<>") for ref in line[12:].decode().split())
    return ()


def _quote(before: Mail, japanese: bool) -> str:
    when = (EPOCH + timedelta(seconds=37 * before.index)).strftime("%Y/%m/%d %H:%M")
    attribution = (f"{when} {before.sender_name} <{before.sender}> のメッセージ:" if japanese
                   else f"On {when}, {before.sender_name} <{before.sender}> wrote:")
    lines = _wrap(before.text, japanese).split("\n")[:12]
    return attribution + "\n" + "\n".join(f"> {line}" if line else ">" for line in lines) + "\n"


def _text(rng: random.Random, japanese: bool, topic: str, reply: bool, name: str,
          customer: int) -> tuple[str, str]:
    if japanese:
        greeting = ["株式会社サンプル\nサポートご担当者様", ""][rng.random() < 0.3]
        opener = rng.choice(JA_REPLY_OPENERS if reply else JA_GREETINGS)
        first = f"{name.replace(' ', '')}と申します。" if not reply else ""
        paragraphs = [p for p in (greeting, opener + first, rng.choice(JA_PROBLEMS[topic])) if p]
        if rng.random() < 0.08:
            paragraphs.append(rng.choice(JA_URGENT))
        signature = (f"--\n{name}\n電話: 090-{customer % 10000:04d}-{(customer * 37) % 10000:04d}\n"
                     f"〒{100 + customer % 800:03d}-{customer % 10000:04d}"
                     f" 東京都新宿区西新宿二丁目{customer % 9 + 1}番")
        closing = rng.choice(JA_CLOSINGS)
    else:
        opener = rng.choice(EN_REPLY_OPENERS if reply else EN_GREETINGS)
        paragraphs = [opener, rng.choice(EN_PROBLEMS[topic])]
        if rng.random() < 0.08:
            paragraphs.append(rng.choice(EN_URGENT))
        signature = f"--\n{name}\nPhone: +1 555 {customer % 1000:03d} {(customer * 37) % 10000:04d}"
        closing = rng.choice(EN_CLOSINGS)
    return "\n\n".join(paragraphs) + "\n\n" + closing, signature


def _more(rng: random.Random, japanese: bool, topic: str, text: str) -> tuple[str, str]:
    """One more detail sentence before the closing paragraph: the new text and the sentence."""
    body, _, closing = text.rpartition("\n\n")
    detail = rng.choice(JA_DETAILS if japanese else EN_DETAILS).format(
        n=rng.randrange(10_000_000, 99_999_999), m=rng.randint(1, 12), d=rng.randint(1, 28))
    if rng.random() < 0.4:
        detail += ("" if japanese else " ") + rng.choice((JA_PROBLEMS if japanese else EN_PROBLEMS)[topic])
    joiner = "\n\n" if rng.random() < 0.35 else ("" if japanese else " ")
    return f"{body}{joiner}{detail}\n\n{closing}", detail


def _encoded_len(text: str, japanese: bool) -> int:
    return len(_wrap(text, japanese).encode("iso-2022-jp" if japanese else "ascii"))


def _wrap(text: str, japanese: bool) -> str:
    """Lines as mailers break them: ~36 characters for Japanese, 72 for English."""
    width = 36 if japanese else 72
    out: list[str] = []
    for line in text.split("\n"):
        if japanese:
            out.extend([line[i:i + width] for i in range(0, len(line), width)] or [""])
        else:
            out.extend(textwrap.wrap(line, width) or [""])
    return "\n".join(out)


def _attachment(rng: random.Random, japanese: bool) -> tuple[str, str, bytes]:
    kind = rng.choice(["png", "pdf", "csv"])
    size = rng.randint(1000, 3000)
    if kind == "png":
        name, ctype = ("スクリーンショット.png" if japanese else "screenshot.png"), "image/png"
        head = b"\x89PNG\r\n\x1a\n"
    elif kind == "pdf":
        name, ctype, head = ("注文明細.pdf" if japanese else "invoice.pdf"), "application/pdf", b"%PDF-1.4\n"
    else:
        rows = "".join(f"{rng.randrange(10**7, 10**8)},{rng.randint(1, 9)},{rng.randint(100, 99999)}\n"
                       for _ in range(size // 24))
        return ("利用履歴.csv" if japanese else "usage.csv"), "text/csv", ("order,qty,price\n" + rows).encode()
    return name, ctype, head + rng.randbytes(size)


def _headers(index: int, sender: str, sender_name: str, subject: str, message_id: str,
             references: tuple[str, ...], japanese: bool, attachment: tuple[str, str, bytes] | None) -> str:
    charset = "iso-2022-jp" if japanese else "us-ascii"
    display = Header(sender_name, charset).encode() if japanese else sender_name
    lines = [f"Return-Path: <{sender}>",
             f"Received: from mx.{sender.split('@', 1)[1]} (mx.{sender.split('@', 1)[1]} [192.0.2.{index % 250 + 1}])"
             f"\r\n\tby mx.example.com with ESMTPS id {index:08x}\r\n\tfor <{SUPPORT_ADDRESS}>;"
             f" {format_datetime(EPOCH + timedelta(seconds=37 * index))}",
             f"From: {display} <{sender}>",
             f"To: {SUPPORT_ADDRESS}",
             f"Subject: {Header(subject, charset, maxlinelen=76).encode(linesep=chr(13) + chr(10))}",
             f"Date: {format_datetime(EPOCH + timedelta(seconds=37 * index))}",
             f"Message-ID: <{message_id}>"]
    if references:
        lines.append(f"In-Reply-To: <{references[-1]}>")
        lines.append("References: " + " ".join(f"<{r}>" for r in references[-8:]))
    lines.append("MIME-Version: 1.0")
    lines.append("User-Agent: " + ("Mozilla/5.0 Thunderbird/128.4.0" if index % 3 else "Microsoft Outlook 16.0"))
    if attachment:
        lines.append(f'Content-Type: multipart/mixed; boundary="{_boundary(index)}"')
    else:
        lines.append(f"Content-Type: text/plain; charset={charset.upper()}")
        lines.append("Content-Transfer-Encoding: 7bit")
    return "\r\n".join(lines) + "\r\n\r\n"


def _boundary(index: int) -> str:
    return f"------------bench{index:010d}"


def _assemble(headers: str, body_text: str, charset: str, attachment: tuple[str, str, bytes] | None,
              index: int) -> bytes:
    body = body_text.replace("\n", "\r\n").encode(charset)
    if attachment is None:
        return headers.encode() + body
    name, ctype, content = attachment
    boundary = _boundary(index)
    quoted_name = Header(name, charset).encode()
    encoded = encodebytes(content).replace(b"\n", b"\r\n")
    return (headers.encode() + b"This is a multi-part message in MIME format.\r\n"
            + f"--{boundary}\r\nContent-Type: text/plain; charset={charset.upper()}\r\n"
              "Content-Transfer-Encoding: 7bit\r\n\r\n".encode() + body
            + f"\r\n--{boundary}\r\nContent-Type: {ctype}; name=\"{quoted_name}\"\r\n"
              f"Content-Disposition: attachment; filename=\"{quoted_name}\"\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\n".encode() + encoded
            + f"\r\n--{boundary}--\r\n".encode())


if __name__ == "__main__":
    import statistics
    import sys

    corpus = make_corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    sizes = [len(m.data) for m in corpus]
    print(f"{len(corpus)} mails, {statistics.mean(sizes):.0f} B mean, {min(sizes)}-{max(sizes)} B,"
          f" {sum(m.language == 'ja' for m in corpus) / len(corpus):.0%} Japanese,"
          f" {sum(m.parent is not None for m in corpus) / len(corpus):.0%} replies,"
          f" {sum(m.attachment is not None for m in corpus) / len(corpus):.0%} with an attachment")
