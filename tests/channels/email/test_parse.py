"""channels.email.parse: the fixture corpus, targeted behaviour, and fuzzing for "never raises"."""

from __future__ import annotations

import base64
import hashlib
import json
import quopri
import unicodedata
from email.header import Header
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.parse import ParsedAttachment, ParsedEmail, fingerprint, parse_email

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CORPUS = sorted(FIXTURES.glob("*.eml"))
STR_FIELDS = ("subject", "text", "new_text", "quoted_text", "signature")


def assert_well_formed(parsed: ParsedEmail) -> None:
    """Invariants every parse must satisfy, however broken the input."""
    for name in STR_FIELDS:
        value = getattr(parsed, name)
        assert isinstance(value, str), name
        value.encode("utf-8")  # no lone surrogates: storable in PostgreSQL
        assert "\r" not in value and "\x00" not in value, name
        assert unicodedata.is_normalized("NFC", value), name
    assert bool(parsed.new_text) == bool(parsed.text)
    assert parsed.html is None or isinstance(parsed.html, str)
    assert parsed.date is None or parsed.date.tzinfo is not None
    assert parsed.auto_kind in (None, "auto-reply", "bounce", "list")
    assert all(isinstance(d, str) for d in parsed.defects)
    for address in (parsed.from_address, parsed.reply_to, *parsed.to, *parsed.cc):
        assert address is None or (address == address.lower() and "@" in address)
    for attachment in parsed.attachments:
        assert attachment.filename and not {"/", "\\", "\x00"} & set(attachment.filename)
        assert isinstance(attachment.content, bytes)


def mail(body: str | bytes, *headers: str, content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A minimal message around a body, for targeted tests."""
    head = [
        "From: Customer <customer@example.org>",
        "To: support@example.com",
        "Subject: Help",
        "Message-ID: <unit@example.org>",
        f"Content-Type: {content_type}",
        *headers,
    ]
    data = body.encode() if isinstance(body, str) else body
    return "\r\n".join(head).encode() + b"\r\n\r\n" + data


# --- the corpus ------------------------------------------------------------------------------------

EXACT = {"message_id", "in_reply_to", "references", "from_address", "from_name", "to", "cc", "reply_to",
         "subject", "text", "new_text", "quoted_text", "signature", "auto_kind", "defects", "html"}
CONTAINS = {"subject_contains": "subject", "text_contains": "text", "new_text_contains": "new_text",
            "quoted_text_contains": "quoted_text", "signature_contains": "signature", "html_contains": "html",
            "defects_contains": "defects"}
NOT_CONTAINS = {"text_not_contains": "text", "new_text_not_contains": "new_text", "html_not_contains": "html"}


def check(parsed: ParsedEmail, key: str, expected: object) -> None:
    """Compare one expectation from a fixture's .json (keys documented in the fixture README)."""
    if key in EXACT:
        actual = getattr(parsed, key)
        assert (list(actual) if isinstance(actual, tuple) else actual) == expected, key
    elif key in CONTAINS or key in NOT_CONTAINS:
        field = getattr(parsed, CONTAINS.get(key) or NOT_CONTAINS[key])
        haystack = "\n".join(field) if isinstance(field, tuple) else field or ""
        for needle in expected if isinstance(expected, list) else [expected]:
            assert (needle in haystack) is (key in CONTAINS), f"{key}: {needle!r} in {haystack[:2000]!r}"
    elif key == "date":
        assert (parsed.date.isoformat() if parsed.date else None) == expected
    elif key == "attachments":
        assert len(parsed.attachments) == len(expected), [a.filename for a in parsed.attachments]
        for attachment, spec in zip(parsed.attachments, expected, strict=True):
            check_attachment(attachment, spec)
    elif key == "attachment_contains":
        by_name = {a.filename: a.content for a in parsed.attachments}
        for name, needle in expected.items():
            assert needle.encode() in by_name[name]
    elif key == "has_defects":
        assert bool(parsed.defects) is expected, parsed.defects
    elif key == "references_count":
        assert len(parsed.references) == expected
    elif key == "text_min_length":
        assert len(parsed.text) >= expected
    else:
        pytest.fail(f"unknown expectation key {key!r}")


def check_attachment(attachment: ParsedAttachment, spec: dict) -> None:
    for field, expected in spec.items():
        if field == "size":
            assert len(attachment.content) == expected, spec
        elif field == "sha256":
            assert hashlib.sha256(attachment.content).hexdigest() == expected, spec
        else:
            assert getattr(attachment, field) == expected, (field, spec)


def test_corpus_is_complete() -> None:
    assert len(CORPUS) >= 32
    for eml in CORPUS:
        assert eml.with_suffix(".json").exists(), eml.name


@pytest.mark.parametrize("eml", CORPUS, ids=lambda p: p.stem)
def test_fixture(eml: Path) -> None:
    parsed = parse_email(eml.read_bytes())
    assert_well_formed(parsed)
    for key, expected in json.loads(eml.with_suffix(".json").read_text(encoding="utf-8")).items():
        check(parsed, key, expected)


# --- charsets and headers ---------------------------------------------------------------------------


def test_iso2022jp_with_microsoft_extensions_decodes_through_cp932() -> None:
    body = b"\x1b$B-!-j\x1b(B OK"  # ① ㈱ in NEC row 13, which no Python ISO-2022-JP codec accepts
    parsed = parse_email(mail(body, content_type="text/plain; charset=ISO-2022-JP"))
    assert parsed.text == "①㈱ OK"
    assert parsed.defects == ()


def test_declared_charset_with_truncated_last_character_is_kept() -> None:
    body = "ログインできません".encode()[:-1]
    parsed = parse_email(mail(body))
    assert parsed.text.startswith("ログインできませ")
    assert any("undecodable bytes" in d for d in parsed.defects)


@pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "x" * 200, "\x00"])
def test_charset_labels_that_are_not_charsets(charset: str) -> None:
    parsed = parse_email(mail("plain words", content_type=f'text/plain; charset="{charset}"'))
    assert parsed.text == "plain words"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a.b@example.com>", "a.b@example.com"),
        ("  <x@y> (added by relay)", "x@y"),
        ("bare@example.com", "bare@example.com"),
        ("no id here", None),
        ("", None),
    ],
)
def test_message_id(value: str, expected: str | None) -> None:
    raw = mail("x").replace(b"Message-ID: <unit@example.org>", f"Message-ID: {value}".encode())
    assert parse_email(raw).message_id == expected


def test_non_standard_date_is_parsed_and_noted() -> None:
    parsed = parse_email(mail("x", "Date: 2026/01/05 10:00:00 +0900"))
    assert parsed.date is not None and parsed.date.isoformat() == "2026-01-05T10:00:00+09:00"
    assert "non-standard Date header" in parsed.defects


def test_unfolded_display_name_with_comma_keeps_the_address() -> None:
    raw = mail("x").replace(b"From: Customer <customer@example.org>", b"From: Yamada, Taro <Taro@Example.JP>")
    assert parse_email(raw).from_address == "taro@example.jp"


# --- attachments ------------------------------------------------------------------------------------


def multipart_with_files(count: int, size: int) -> bytes:
    parts = [b"--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"]
    for i in range(count):
        head = f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="f{i}.pdf"'
        parts.append(f"--b\r\n{head}\r\n\r\n".encode() + b"x" * size + b"\r\n")
    return mail(b"".join(parts) + b"--b--\r\n", content_type='multipart/mixed; boundary="b"')


def test_attachment_count_limit() -> None:
    parsed = parse_email(multipart_with_files(25, 10), max_attachments=20)
    assert [a.filename for a in parsed.attachments] == [f"f{i}.pdf" for i in range(20)]
    assert "5 attachment(s) skipped: more than 20" in parsed.defects
    assert parsed.text == "see files"


def test_attachment_size_limit() -> None:
    parsed = parse_email(multipart_with_files(2, 100), max_attachment_bytes=50)
    assert parsed.attachments == ()
    assert any("'f0.pdf' skipped: 100 bytes is over 50" in d for d in parsed.defects)


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\Users\\\\me\\\\report.pdf"', "report.pdf"),
        ('attachment; filename=".."', "attachment-1.pdf"),
        ("attachment", "attachment-1.pdf"),
        ('attachment; filename="a\x01b:c|d.pdf"', "ab_c_d.pdf"),
        ("attachment; filename*=utf-8''" + "%E8%AB%8B" * 100 + ".pdf", "請" * 65 + ".pdf"),  # ≤ 200 bytes
    ],
)
def test_attachment_filenames_are_safe(disposition: str, expected: str) -> None:
    head = f"Content-Type: application/pdf\r\nContent-Disposition: {disposition}"
    body = f"--b\r\n{head}\r\n\r\n%PDF\r\n--b--\r\n"
    parsed = parse_email(mail(body, content_type='multipart/mixed; boundary="b"'))
    assert [a.filename for a in parsed.attachments] == [expected]


# --- HTML -------------------------------------------------------------------------------------------


def test_html_is_sanitised_but_keeps_cid_images_and_safe_styles() -> None:
    html = (
        '<p style="color:red;background:url(javascript:alert(1));position:fixed" onclick="x()">Hi</p>'
        '<img src="cid:logo@x" onerror="x()"><a href="javascript:alert(1)">a</a><a href="https://ok.example">b</a>'
        "<iframe src=https://evil.example></iframe><svg><script>alert(1)</script></svg>"
    )
    parsed = parse_email(mail(html, content_type="text/html; charset=utf-8"))
    assert parsed.html is not None
    for bad in ("javascript", "onclick", "onerror", "position", "iframe", "<script", "alert"):
        assert bad not in parsed.html
    for good in ('src="cid:logo@x"', "color:red", 'href="https://ok.example"'):
        assert good in parsed.html
    assert parsed.text == "Hi\n\nab"


def test_absurdly_nested_html_is_shown_as_plain_text() -> None:
    html = "<p>hello &amp; bye</p>" + "<div>" * 5000 + "deep<script>x()</script>"
    parsed = parse_email(mail(html, content_type="text/html; charset=utf-8"))
    assert parsed.html is not None and parsed.html.startswith("<pre>") and "<script" not in parsed.html
    assert parsed.text.startswith("hello & bye") and "deep" in parsed.text
    assert any("shown as plain text" in d for d in parsed.defects)


# --- quoted history and signatures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "new_text"),
    [
        ("Merci !\n\nLe lun. 5 janv. 2026 à 10:00, Support <s@example.com> a écrit :\n> Bonjour", "Merci !"),
        ("Danke\n\nAm 05.01.2026 um 10:00 schrieb Support <s@example.com>:\n> Hallo", "Danke"),
        ("Ok\n\nFrom: Support <s@example.com>\nSent: Monday\nTo: me\nSubject: x\n\nold", "Ok"),
        ("Ok\n\n差出人: サポート\n送信日時: 2026年1月5日\n宛先: 私\n件名: x\n\n以前の内容", "Ok"),
        ("I asked and the shop wrote:\nthat it will ship soon. Is that true?", None),
        ("On Monday I ordered a mug.\nIt has not arrived.", None),
        ("> only a quote\n> nothing new", None),
        ("-----Original Message-----\nFrom: a\nSent: b\nTo: c\n", None),
        ("Thanks\n\n-- \nJane", "Thanks"),
        ("-- \nJane Doe\nAcme", None),
    ],
)
def test_reply_splitting(body: str, new_text: str | None) -> None:
    parsed = parse_email(mail(body))
    assert parsed.text == body.strip()
    assert parsed.new_text == (body.strip() if new_text is None else new_text)


def test_forwarded_content_is_kept_as_new_text() -> None:
    body = (
        "FYI\n\n---------- Forwarded message ---------\n"
        "From: Shop <s@x.example>\nDate: Mon\nTo: me\n\nShipped"
    )
    parsed = parse_email(mail(body))
    assert parsed.new_text == body and parsed.quoted_text == ""


# --- automatic mail ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "subject", "expected"),
    [
        ((), "Help", None),
        (("Auto-Submitted: auto-generated",), "Help", "auto-reply"),
        (("Auto-Submitted: no",), "Help", None),
        (("X-Autoreply: yes",), "Help", "auto-reply"),
        (("X-Autorespond: Thank you",), "Help", "auto-reply"),
        (("X-Auto-Response-Suppress: DR, RN, NRN",), "Help", None),
        (("X-Auto-Response-Suppress: OOF, AutoReply",), "Help", "auto-reply"),
        (("Precedence: bulk",), "Help", "list"),
        (("Precedence: junk",), "Help", "list"),
        (("List-Unsubscribe: <mailto:u@lists.example>",), "Help", "list"),
        (("List-Id: <users.lists.example>", "Auto-Submitted: auto-replied"), "Help", "auto-reply"),
        (("Return-Path: <>", "Auto-Submitted: auto-replied", "Precedence: bulk"), "Help", "bounce"),
        (("X-Failed-Recipients: a@example.org",), "Help", "bounce"),
        ((), "Out of Office: Help", "auto-reply"),
        ((), "[自動返信] お問い合わせ", "auto-reply"),
        ((), "Re: Out of office", None),
    ],
)
def test_auto_kind(headers: tuple[str, ...], subject: str, expected: str | None) -> None:
    raw = mail("x", *headers).replace(b"Subject: Help", f"Subject: {subject}".encode())
    assert parse_email(raw).auto_kind == expected


def test_postmaster_sender_is_a_bounce() -> None:
    raw = mail("x").replace(b"customer@example.org", b"postmaster@example.org")
    assert parse_email(raw).auto_kind == "bounce"


# --- fingerprint ------------------------------------------------------------------------------------

TRACE = (
    b"Received: from relay.example.net (relay.example.net [198.51.100.7])\r\n"
    b"\tby mx.example.com; Tue, 6 Jan 2026\r\n"
    b"Return-Path: <customer@example.org>\r\nDelivered-To: support@example.com\r\nX-Spam-Score: 0.1\r\n"
    b"ARC-Seal: i=1; a=rsa-sha256; cv=none\r\n"
)


@pytest.mark.parametrize("eml", CORPUS[:12], ids=lambda p: p.stem)
def test_fingerprint_is_stable_across_redelivery(eml: Path) -> None:
    raw = eml.read_bytes()
    assert fingerprint(TRACE + raw) == fingerprint(raw)
    assert fingerprint(TRACE + TRACE + raw.replace(b"\r\n", b"\n") + b"\n") == fingerprint(raw)
    assert fingerprint(b"From MAILER-DAEMON Tue Jan  6 10:00:00 2026\n" + raw) == fingerprint(raw)


def test_fingerprint_differs_for_different_messages() -> None:
    assert len({fingerprint(eml.read_bytes()) for eml in CORPUS}) == len(CORPUS)
    first, second = mail("one"), mail("two")
    assert fingerprint(first) != fingerprint(second)
    assert fingerprint(first) != fingerprint(first.replace(b"Subject: Help", b"Subject: Other"))
    assert len(fingerprint(first)) == 64 and int(fingerprint(first), 16) >= 0


# --- never raises -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 100,
        b"\r\n\r\n\r\n",
        b"Subject: " + b"=?utf-8?B?" * 50000,
        b"Subject: " + b"x" * 2_000_000 + b"\r\n\r\nbody",
        b"Content-Type: multipart/mixed\r\n\r\n--\r\n--",
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
        + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 300,
        b"".join(
            f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n".encode() for i in range(200)
        ),
        b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n" * 50,
        b"Content-Type: text/plain; charset*0*=utf-8''a; charset*=x; charset*00=y\r\n\r\nz",
        b"Content-Transfer-Encoding: base64\r\n\r\n=",
        b"Content-Type: text/html\r\n\r\n<![if <!-- <script" + b"<" * 10000,
        b"From: " + b"<" * 10000 + b"\r\nTo: " + b'"' * 10001 + b"\r\n\r\n",
        b"From: a@example.org\r\n\r\nhi\r\n-----\r\n" + b"a" * 200_000,  # separator then a huge line
        b"From: a@example.org\r\n\r\n" + b"x" * 300_000 + b"@" + b"y" * 300_000,
        b"Content-Type: text/html\r\n\r\n" + b"x<" * 100_000,  # quadratic in the stdlib html.parser
        b"Content-Type: text/html\r\n\r\n" + b"x<blockquote>" * 20_000,
        b"From: " + b"(" * 5000 + b"\r\n\r\n",  # recursion in the stdlib address parser
    ],
    ids=lambda raw: f"{len(raw)}B",
)
def test_hostile_inputs_degrade(raw: bytes) -> None:
    parsed = parse_email(raw)
    assert_well_formed(parsed)
    assert not any("could not be parsed" in d for d in parsed.defects)


SEEDS = [p.read_bytes() for p in CORPUS if p.stat().st_size < 20_000]


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    """A real message with random damage: flipped bytes, cut spans, inserted junk, truncation."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip" and position < len(data):
            data[position] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[position : position + draw(st.integers(1, 200))]
        elif action == "insert":
            data[position:position] = draw(st.binary(max_size=40) | st.sampled_from(MIME_TOKENS))
        elif action == "truncate":
            del data[position:]
    return bytes(data)


MIME_TOKENS = [
    b"\r\n", b"\r\n\r\n", b"--", b"boundary=", b'"', b";", b"=?", b"?=", b"=?iso-2022-jp?B?GyRC", b"\x1b$B",
    b"=?utf-8?Q?=E3=81", b"charset=", b"*0*=", b"''", b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"--x\r\n", b"--x--", b"message/rfc822", b"base64", b"quoted-printable", b"=\r\n", b"<", b">", b"\x00",
]
HEADER_NAMES = [
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Return-Path",
    "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID", "Auto-Submitted",
]
NESTED_PART = b"--x\r\nContent-Type: text/html\r\n\r\n<p>hi"


@st.composite
def header_soup(draw: st.DrawFn) -> bytes:
    """Random headers from MIME-ish tokens, then random boundary lines and nested part headers."""
    token = st.sampled_from(MIME_TOKENS) | st.binary(max_size=12)
    lines = [
        draw(st.sampled_from(HEADER_NAMES)).encode() + b": " + b"".join(draw(st.lists(token, max_size=8)))
        for _ in range(draw(st.integers(0, 10)))
    ]
    body = b"".join(draw(st.lists(token | st.just(NESTED_PART), max_size=30)))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert_well_formed(parse_email(raw))
    assert len(fingerprint(raw)) == 64


@FUZZ
@given(mutated_fixture())
def test_mutated_fixtures_never_raise(raw: bytes) -> None:
    assert_well_formed(parse_email(raw, max_attachments=3, max_attachment_bytes=500))
    assert len(fingerprint(raw)) == 64


@FUZZ
@given(header_soup())
def test_header_and_boundary_soup_never_raises(raw: bytes) -> None:
    assert_well_formed(parse_email(raw))


# --- round trips --------------------------------------------------------------------------------------

JA_CHARS = list("あいうえおがぱアイウエオガパー日本語請求書配送漢字、。「」abcXYZ0123 .,!?-@")
JA_TEXT = st.text(alphabet=st.sampled_from([*JA_CHARS, "\n"]), max_size=200)
CODECS = {"UTF-8": "utf-8", "ISO-2022-JP": "iso2022_jp", "Shift_JIS": "cp932", "EUC-JP": "euc_jp"}


@FUZZ
@given(JA_TEXT, st.sampled_from(sorted(CODECS)), st.sampled_from(["8bit", "base64", "quoted-printable"]))
def test_body_round_trips_through_every_japanese_charset(text: str, charset: str, cte: str) -> None:
    data = text.replace("\n", "\r\n").encode(CODECS[charset])
    encode = {"8bit": bytes, "base64": base64.encodebytes, "quoted-printable": quopri.encodestring}[cte]
    body = encode(data)
    raw = mail(body, f"Content-Transfer-Encoding: {cte}", content_type=f"text/plain; charset={charset}")
    parsed = parse_email(raw)
    assert parsed.text == text.strip()
    assert parsed.defects == ()


@FUZZ
@given(st.text(alphabet=st.sampled_from(JA_CHARS), min_size=1, max_size=80), st.sampled_from(sorted(CODECS)))
def test_subject_round_trips_through_encoded_words(subject: str, charset: str) -> None:
    encoded = Header(subject, charset).encode()
    raw = mail("x").replace(b"Subject: Help", f"Subject: {encoded}".encode())
    assert parse_email(raw).subject == " ".join(subject.split())


@FUZZ
@given(st.text(alphabet=st.sampled_from(JA_CHARS), min_size=1, max_size=80), st.integers(1, 20))
def test_subject_split_inside_characters_round_trips(subject: str, size: int) -> None:
    data = subject.encode()
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    words = [f"=?UTF-8?B?{base64.b64encode(chunk).decode()}?=" for chunk in chunks]
    raw = mail("x").replace(b"Subject: Help", ("Subject: " + "\r\n ".join(words)).encode())
    assert parse_email(raw).subject == " ".join(subject.split())
