"""Turn raw RFC 5322 bytes into a `ParsedEmail`: pure (no I/O), and it never raises.

The stdlib parser gives us the MIME tree and nothing more: it runs with `policy.compat32`, which keeps
header values raw instead of interpreting them eagerly (the modern policy decodes headers with strict
codecs on access and has raised on malformed input). Everything real-world mail gets wrong is handled
here: Japanese charsets with Microsoft extensions (CP50220 ①/㈱, CP932), encoded words split in the
middle of a character or put inside quoted strings, raw 8-bit headers, wrong declared charsets,
truncated base64. Each degradation becomes a human-readable note in `defects`, so an agent can see why a
message looks odd instead of the message being lost.

It is CPU-bound: about a millisecond for ordinary mail, up to about a second for multi-megabyte hostile
input (every step is bounded to stay linear), so async callers should run it with `asyncio.to_thread`.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import logging
import mimetypes
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from html import escape, unescape
from html.parser import HTMLParser
from io import BytesIO

import charset_normalizer
import nh3

log = logging.getLogger(__name__)

MAX_HEADER_CHARS = 64 * 1024  # bounds the work any single header can cause
MAX_SUBJECT_CHARS = 1000
MAX_MIME_DEPTH = 32
MAX_REFERENCES = 100
MAX_DEFECTS = 50
MAX_HTML_QUOTE_DEPTH = 8
MAX_HTML_NESTING = 1000  # real mail stays far below; html5ever slows down quadratically beyond
MAX_HTML_TO_TEXT_CHARS = 1_000_000  # html.parser runs ~2 MB/s; bound the CPU a hostile message can take


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str  # decoded (RFC 2231/2047), basename only, never empty ("attachment-1.pdf", "forwarded.eml")
    content_type: str
    content: bytes
    content_id: str | None  # without <>, for cid: references in `ParsedEmail.html`
    inline: bool


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None  # without <>; None if absent or unusable (then dedupe by `fingerprint`)
    in_reply_to: tuple[str, ...]  # ids without <>
    references: tuple[str, ...]
    from_address: str | None  # lower-cased addr-spec; None for a null sender (<>) or no usable address
    from_name: str | None  # decoded display name
    to: tuple[str, ...]  # lower-cased addresses
    cc: tuple[str, ...]
    reply_to: str | None
    subject: str  # decoded, whitespace collapsed
    date: datetime | None  # timezone-aware
    text: str  # the full plain text (from text/plain, else from the HTML), NFC, \n line endings
    new_text: str  # the customer's new words: quoted history and signature removed; never empty if text isn't
    quoted_text: str  # what was removed as quoted history ("" if none)
    signature: str  # what was removed as signature ("" if none)
    html: str | None  # sanitised HTML, safe to render; cid: image references kept
    attachments: tuple[ParsedAttachment, ...]
    auto_kind: str | None  # None | "auto-reply" | "bounce" | "list": never acknowledge these
    defects: tuple[str, ...]  # human-readable notes on what was malformed or degraded


def parse_email(
    raw: bytes, *, max_attachments: int = 20, max_attachment_bytes: int = 10 * 1024 * 1024
) -> ParsedEmail:
    """Parse one message; malformed input degrades (noted in `defects`) instead of raising."""
    try:
        return _parse(bytes(raw), max_attachments, max_attachment_bytes)
    except Exception as exc:  # a parser bug must not lose a customer's message: keep the raw text
        log.warning("email parse failed; keeping the raw text", exc_info=True)
        return _unparsed(bytes(raw), exc)


def fingerprint(raw: bytes) -> str:
    """Dedupe key for mail without a Message-ID, stable across re-delivery.

    Only the headers the author's client wrote take part, so trace headers a relay prepends
    (Received, Return-Path, Delivered-To, X-*, ARC, DKIM of a forwarder) do not change the key.
    """
    head, body = _split_head_body(bytes(raw))
    fields = sorted((f for f in _raw_fields(head) if f[0] in _FINGERPRINT_HEADERS), key=lambda f: f[0])
    digest = hashlib.sha256()
    for name, value in fields:
        digest.update(name + b":" + re.sub(rb"\s+", b" ", value).strip() + b"\n")
    digest.update(b"\n" + re.sub(rb"\r\n?", b"\n", body).rstrip())
    return digest.hexdigest()


# --- the parse -------------------------------------------------------------------------------------


def _parse(raw: bytes, max_attachments: int, max_attachment_bytes: int) -> ParsedEmail:
    defects: list[str] = []
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    headers = _header_map(msg, defects)
    body = _Body(max_attachments, max_attachment_bytes, defects)
    body.walk(msg, 0)
    if body.skipped:
        defects.append(f"{body.skipped} attachment(s) skipped: more than {max_attachments}")
    text = _normalise_text("\n".join(body.texts))
    html = _sanitise_html("\n".join(body.htmls), defects) if body.htmls else None
    if not text and html:
        text = _normalise_text(_html_to_text(html, defects))
    new_text, quoted_text, signature = _split_reply(text)
    from_name, from_address, from_local = _sender(headers, defects)
    subject = _subject(headers, defects)
    return ParsedEmail(
        message_id=_message_id(headers, defects),
        in_reply_to=_id_list(headers, "in-reply-to"),
        references=_id_list(headers, "references"),
        from_address=from_address,
        from_name=from_name,
        to=_address_list(headers, "to", defects),
        cc=_address_list(headers, "cc", defects),
        reply_to=next(iter(_address_list(headers, "reply-to", defects)), None),
        subject=subject,
        date=_date(headers, defects),
        text=text,
        new_text=new_text,
        quoted_text=quoted_text,
        signature=signature,
        html=html,
        attachments=tuple(body.attachments),
        auto_kind=_auto_kind(headers, body, from_local, subject, (new_text, signature, html or "")),
        defects=tuple(dict.fromkeys(defects))[:MAX_DEFECTS],
    )


def _unparsed(raw: bytes, exc: Exception) -> ParsedEmail:
    """Last resort when the MIME parser itself failed: the whole message as text."""
    text = _normalise_text(raw.decode("utf-8", "replace"))
    return ParsedEmail(
        message_id=None, in_reply_to=(), references=(), from_address=None, from_name=None, to=(), cc=(),
        reply_to=None, subject="", date=None, text=text, new_text=text, quoted_text="", signature="",
        html=None, attachments=(), auto_kind=None,
        defects=(f"message could not be parsed ({type(exc).__name__}); kept as raw text",),
    )


# --- headers ---------------------------------------------------------------------------------------


def _header_map(msg: Message, defects: list[str]) -> dict[str, list[str]]:
    """Raw, unfolded header values by lower-cased name, each capped at MAX_HEADER_CHARS."""
    result: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        result.setdefault(str(name).strip().lower(), []).append(_cap_header(str(name), str(value), defects))
    return result


def _header(part: Message, name: str, defects: list[str]) -> str | None:
    """First raw value of one header of a MIME part (never interpreted by the stdlib)."""
    for key, value in part.raw_items():
        if str(key).strip().lower() == name:
            return _cap_header(name, str(value), defects)
    return None


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_ASCII_SPACE_RUN = re.compile(r"[ \t\r\n\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_DIGIT = re.compile(r"\d")


def _cap_header(name: str, value: str, defects: list[str]) -> str:
    if len(value) > MAX_HEADER_CHARS:
        defects.append(f"{name} header longer than {MAX_HEADER_CHARS} characters; truncated")
        value = value[:MAX_HEADER_CHARS]
    if "\n" not in value and "\r" not in value:  # most headers: one line, nothing to unfold
        return value
    return _LINE_BREAKS.sub(" ", _FOLD.sub("", value))


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


_ENCODED_WORD = re.compile(r"=\?([^?\s*]{1,40})(?:\*[^?\s]*)?\?([bBqQ])\?([^?\s]*)(\?=|(?=\s|$))")
_ENCODED_START = re.compile(r"=\?[^?\s]+\?[bBqQ]\?")


def _decode_header(value: str, where: str, defects: list[str]) -> str:
    """RFC 2047 decoding that survives what real mailers send.

    Adjacent encoded words in the same charset are joined as bytes before decoding, because mailers
    split multi-byte characters across words; words inside quoted strings and unterminated words are
    decoded too; raw 8-bit or ISO-2022-JP text between words is charset-detected.
    """
    chunks: list[tuple[str | None, bytes]] = []  # (charset, bytes); charset None = raw text
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        joinable = bool(chunks) and chunks[-1][0] is not None and not gap.strip(" \t")
        if not joinable and gap:
            chunks.append((None, _raw_bytes(gap)))
        charset, kind, payload, end = match.groups()
        data = _decode_word(kind, payload, where, defects)
        if not end:
            defects.append(f"{where}: unterminated encoded word")
        if joinable and chunks[-1][0] == charset.lower():
            chunks[-1] = (chunks[-1][0], chunks[-1][1] + data)
        else:
            chunks.append((charset.lower(), data))
        pos = match.end()
    if pos < len(value):
        chunks.append((None, _raw_bytes(value[pos:])))
    text = "".join(_decode_bytes(data, charset, where, defects) for charset, data in chunks)
    if any(charset is None and _ENCODED_START.search(data.decode("latin-1")) for charset, data in chunks):
        defects.append(f"{where}: undecodable encoded word left as is")
    return text


def _decode_word(kind: str, payload: str, where: str, defects: list[str]) -> bytes:
    data = _raw_bytes(payload)
    if kind in "qQ":
        return binascii.a2b_qp(data, header=True)
    decoded, clean = _b64decode(data)
    if not clean:
        defects.append(f"{where}: broken base64 in encoded word")
    return decoded


def _decode_raw(value: str, where: str, defects: list[str]) -> str:
    """Header text outside encoded words: ASCII, or raw 8-bit bytes the parser kept as surrogates."""
    if value.isascii() and "\x1b" not in value:
        return value
    return _decode_bytes(_raw_bytes(value), None, where, defects)


def _subject(headers: dict[str, list[str]], defects: list[str]) -> str:
    raw = _first(headers, "subject") or ""
    subject = _one_line(_decode_header(raw, "Subject", defects))
    if len(subject) > MAX_SUBJECT_CHARS:
        defects.append(f"Subject longer than {MAX_SUBJECT_CHARS} characters; truncated")
        subject = subject[:MAX_SUBJECT_CHARS]
    return subject


_MESSAGE_ID = re.compile(r"<\s*([^<>\s]{1,900})\s*>")


def _message_id(headers: dict[str, list[str]], defects: list[str]) -> str | None:
    value = _first(headers, "message-id")
    if value is None:
        return None
    match = _MESSAGE_ID.search(value)
    bare = value.strip()
    if match:
        return match.group(1)
    if bare and "@" in bare and not re.search(r"[\s<>]", bare) and len(bare) <= 900:
        return bare
    defects.append(f"unusable Message-ID {value[:80]!r}")
    return None


def _id_list(headers: dict[str, list[str]], name: str) -> tuple[str, ...]:
    """Message ids in order, deduplicated; a huge References keeps its root and its latest ids."""
    value = " ".join(headers.get(name, ()))
    ids = _MESSAGE_ID.findall(value) or [t for t in value.split() if "@" in t and not {"<", ">"} & set(t)]
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return tuple(ids)


def _date(headers: dict[str, list[str]], defects: list[str]) -> datetime | None:
    value = _first(headers, "date")
    if value is None:
        return None
    parsed: datetime | None
    try:
        parsed = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        parsed = _iso_date(value)
        defects.append("unparsable Date header" if parsed is None else "non-standard Date header")
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # RFC 5322 "-0000": UTC, local zone unknown
    return parsed


def _iso_date(value: str) -> datetime | None:
    """Some systems (often Japanese) send '2026/01/05 10:00:00 +0900'; accept ISO-like dates."""
    candidate = re.sub(r"\s+([+-]\d{2}):?(\d{2})$", r"\1:\2", value.strip().replace("/", "-"))
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        return None


_ADDR_SPEC = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+")
# An encoded word is one opaque token; an unterminated one ends at whitespace or a special, so it cannot
# swallow the angle-addr that follows it.
_WORD_TOKEN = r"=\?[^?\s*]{1,40}(?:\*[^?\s]*)?\?[bBqQ]\?(?:[^?\s]*\?=|[^?\s\"<>(),:;]*)"
_ADDRESS_TOKEN = re.compile(rf'{_WORD_TOKEN}|"(?:{_WORD_TOKEN}|\\.|[^"\\])*"?|<[^<>]*>?|[(),:;]|[^"<(),:;=]+', re.S)
_COMMENT_TOKEN = re.compile(r"\(+|\)+|\\.|[^()\\]+", re.S)
_QUOTED_PIECE = re.compile(rf"({_WORD_TOKEN})|\\(.)", re.S)


def _mailboxes(value: str) -> list[tuple[str, str]]:
    """(raw display name, raw address) for each mailbox of an address header.

    Encoded words, quoted strings and comments are opaque, so an address or comma inside them is display
    text: `=?utf-8?q?x_<victim@example.com>?= <attacker@evil.test>` is the attacker's mail. The last
    angle-addr is the address even after an address-like name (`a@x <b@y>`, which email.policy.default
    reads as a@x); without one the bare text is the address and a comment the name.
    """
    boxes: list[tuple[str, str]] = []
    for tokens in _mailbox_tokens(value):
        comment = "".join(text for kind, text in tokens if kind == "(")
        angles = [i for i, (kind, _) in enumerate(tokens) if kind == "<"]
        if angles:
            name = "".join(text for kind, text in tokens[: angles[-1]] if kind != "(")
            boxes.append((name if name.strip() else comment, tokens[angles[-1]][1].strip("<>").strip()))
        else:
            boxes.append((comment, "".join(text for kind, text in tokens if kind == "text")))
    return boxes


def _mailbox_tokens(value: str) -> list[list[tuple[str, str]]]:
    """One linear pass: (kind, text) tokens per mailbox, kind "text", "word", "quoted", "<" or "(".

    Group syntax (`team: a@x, b@y;`) is flattened; quoted strings are unquoted.
    """
    boxes: list[list[tuple[str, str]]] = [[]]
    depth = pos = 0
    while pos < len(value):
        match = (_COMMENT_TOKEN if depth else _ADDRESS_TOKEN).match(value, pos)
        token = match.group() if match else value[pos]  # a lone '=' or a trailing backslash
        pos += len(token)
        if depth:
            if token[0] == ")":  # a run of closings: those of nested comments are comment text
                token, depth = token[: depth - 1], max(0, depth - len(token))
            elif token[0] == "(":
                depth += len(token)
            if token:
                boxes[-1].append(("(", token[1:] if token.startswith("\\") else token))  # unescaped
        elif token == "(":
            depth = 1
        elif token in (",", ";"):
            boxes.append([])
        elif token == ":":
            boxes[-1] = []  # what came before was a group's name
        elif token.startswith('"'):
            boxes[-1].append(("quoted", _unquote_words(token)))
        elif token.startswith("<"):
            boxes[-1].append(("<", token))
        elif token != ")":
            boxes[-1].append(("word" if token.startswith("=?") else "text", token))
    return [box for box in boxes if "".join(text for _, text in box).strip()]


def _unquote_words(quoted: str) -> str:
    """A quoted string's content with escapes undone, except inside encoded words (decoded later)."""
    inner = quoted[1:-1] if len(quoted) > 1 and quoted.endswith('"') else quoted[1:]
    return _QUOTED_PIECE.sub(lambda m: m.group(1) or m.group(2), inner) if "\\" in inner else inner


def _clean_address(addr: str, defects: list[str]) -> str | None:
    addr = unicodedata.normalize("NFC", _decode_raw(addr, "address", defects)).strip().strip("<>").lower()
    return addr if _ADDR_SPEC.fullmatch(addr) else None


def _address_list(headers: dict[str, list[str]], name: str, defects: list[str]) -> tuple[str, ...]:
    found = (_clean_address(addr, defects) for value in headers.get(name, []) for _, addr in _mailboxes(value))
    return tuple(dict.fromkeys(a for a in found if a))


def _sender(headers: dict[str, list[str]], defects: list[str]) -> tuple[str | None, str | None, str]:
    """(display name, address, raw local part); the local part lets bounce detection see MAILER-DAEMON."""
    value = _first(headers, "from")
    if value is None:
        defects.append("missing From header")
        return None, None, ""
    boxes = _mailboxes(value) or [("", "")]
    for name, addr in boxes:
        address = _clean_address(addr, defects)
        if address:
            return _display_name(name, defects), address, address.split("@")[0]
    if not re.fullmatch(r"\s*<\s*>\s*", value):
        defects.append(f"From header has no valid address: {value[:80]!r}")
    return _display_name(boxes[0][0], defects), None, boxes[0][1].strip().split("@")[0].lower()


def _display_name(name: str, defects: list[str]) -> str | None:
    return _one_line(_decode_header(name, "From display name", defects)).strip("\"' ") or None


# --- charsets --------------------------------------------------------------------------------------

_CP50220 = "cp50220"  # pseudo codec: ISO-2022-JP with Microsoft rows, decoded through CP932
_JIS_CHAIN = ("iso2022_jp", _CP50220, "iso2022_jp_2", "iso2022_jp_2004")
_CHAINS = {
    "shift_jis": ("cp932", "shift_jis_2004"),  # real Shift_JIS mail uses Microsoft extensions
    "cp932": ("cp932", "shift_jis_2004"),
    "euc_jp": ("euc_jp", "euc_jis_2004"),
    "iso8859-1": ("cp1252", "iso8859-1"),  # as browsers do: "latin-1" mail is usually windows-1252
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "euc_kr": ("cp949",),
}
_ALIASES = {
    "cp50220": "iso2022_jp", "cp50221": "iso2022_jp", "cp50222": "iso2022_jp", "iso-2022-jp-ms": "iso2022_jp",
    "x-sjis": "cp932", "windows-31j": "cp932", "x-euc-jp": "euc_jp", "unicode-1-1-utf-8": "utf-8",
}
_SINGLE_BYTE_WESTERN = frozenset({"cp1252", "iso8859-1", "iso8859-15"})
_DETECT_BYTES = 64 * 1024
_DETECTABLE = ("cp1252", "cp1251", "koi8_r", "cp1253", "gb18030", "big5", "cp949")


def _decode_bytes(data: bytes, declared: str | None, where: str, defects: list[str]) -> str:
    """Decode with the declared charset, falling back to detection; never fails, notes every guess."""
    if not data:
        return ""
    label = (declared or "").strip().strip("\"'").lower()
    chain = _codec_chain(label) if label else None
    if chain:
        if chain[0] in _SINGLE_BYTE_WESTERN and not data.isascii() and (utf8 := _strict(data, "utf-8")):
            defects.append(f"{where}: declared {label} but the content is UTF-8")
            return utf8
        for codec in chain:
            text = _strict(data, codec)
            if text is not None:
                return text
        text = _nearly(data, chain)
        if text is not None:
            defects.append(f"{where}: {label} content has undecodable bytes; replaced")
            return text
    text, guessed = _guess(data)
    if chain:
        defects.append(f"{where}: content is not valid {label}; decoded as {guessed}")
    elif label:
        defects.append(f"{where}: unknown charset {label!r}; decoded as {guessed}")
    elif guessed not in ("ascii", "utf-8"):
        defects.append(f"{where}: no charset declared; decoded as {guessed}")
    return text


def _codec_chain(label: str) -> tuple[str, ...] | None:
    """Codecs to try for a declared label, most likely first; None when the label is unknown."""
    label = _ALIASES.get(label, label)
    if len(label) > 40:
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):  # e.g. "base64", "zlib": not a charset
        return None
    if info.name.startswith("iso2022_jp"):
        return (info.name, *(c for c in _JIS_CHAIN if c != info.name))
    return _CHAINS.get(info.name, (info.name,))


def _strict(data: bytes, codec: str) -> str | None:
    try:
        if codec == _CP50220:
            return _jis_to_sjis(data).decode("cp932")
        return data.decode(codec)
    except (ValueError, LookupError):
        return None


def _nearly(data: bytes, chain: tuple[str, ...]) -> str | None:
    """The declared charset despite a truncated last character or ≤1 % stray bytes: when the label is
    right but the bytes are damaged, guessing another charset would turn everything into mojibake."""
    for codec in chain:
        for cut in (1, 2, 3):
            text = _strict(data[:-cut], codec)
            if text is not None:
                return text + "\ufffd"
    text = data.decode(chain[0], "replace")
    return text if text.count("\ufffd") * 100 <= len(text) else None


def _guess(data: bytes) -> tuple[str, str]:
    """Charset detection tuned for our market: JIS, UTF-8, then Shift_JIS vs EUC-JP, then the rest.

    The generic detector is limited to charsets that really arrive undeclared, so Latin text lands in
    windows-1252 instead of an EBCDIC or Central European guess; short samples skip it (too noisy).
    """
    if b"\x1b$" in data or b"\x1b(" in data:
        for codec in _JIS_CHAIN:
            text = _strict(data, codec)
            if text is not None:
                return text, "iso-2022-jp"
    utf8 = _strict(data, "utf-8")
    if utf8 is not None:
        return utf8, "ascii" if data.isascii() else "utf-8"
    japanese = [(t, c) for c in ("cp932", "euc_jp") if (t := _strict(data, c)) is not None]
    best = max(japanese, key=lambda tc: _japanese_ratio(tc[0]), default=None)
    if best is not None and _japanese_ratio(best[0]) >= 0.6:
        return best
    utf8 = _nearly(data, ("utf-8",))
    if utf8 is not None:
        return utf8, "utf-8 with replacement characters"
    if len(data) >= 16:
        match = charset_normalizer.from_bytes(data[:_DETECT_BYTES], cp_isolation=list(_DETECTABLE)).best()
        if match is not None:
            return data.decode(match.encoding, "replace"), match.encoding
    return data.decode("cp1252", "replace"), "cp1252"


def _japanese_ratio(text: str) -> float:
    """Share of non-ASCII characters that are kana, kanji or full-width forms (half-width kana excluded,
    as EUC-JP bytes read as CP932 turn into exactly those)."""
    sample = [ord(c) for c in text[:20000] if ord(c) > 0x7F]
    if not sample:
        return 0.0
    good = sum(1 for o in sample if 0x3000 <= o <= 0x30FF or 0x4E00 <= o <= 0x9FFF or 0xFF01 <= o <= 0xFF5E)
    return good / len(sample)


_JIS_ESCAPES = {b"(B": 0, b"(J": 0, b"$@": 1, b"$B": 1, b"(I": 2}


def _jis_to_sjis(data: bytes) -> bytes:
    """ISO-2022-JP → Shift_JIS bytes, so CP932 can decode the Microsoft rows (①, ㈱, IBM kanji) of
    CP50220 mail that Python's ISO-2022-JP codecs reject. Raises ValueError on anything else."""
    out = bytearray()
    mode, i, n = 0, 0, len(data)
    while i < n:
        byte = data[i]
        if byte == 0x1B:
            if data[i + 1 : i + 3] == b"&@":  # JIS X 0208-1990 announcer, followed by ESC $ B
                i += 3
                continue
            if data[i + 1 : i + 3] not in _JIS_ESCAPES:
                raise ValueError("unsupported ISO-2022-JP escape")
            mode = _JIS_ESCAPES[data[i + 1 : i + 3]]
            i += 3
        elif byte >= 0x80:
            raise ValueError("8-bit byte in ISO-2022-JP")
        elif mode == 1 and byte not in b"\r\n":
            low = data[i + 1] if i + 1 < n else 0
            if not (0x21 <= byte <= 0x7E and 0x21 <= low <= 0x7E):
                raise ValueError("broken JIS X 0208 pair")
            lead = (byte + 1) // 2 + (0x70 if byte <= 0x5E else 0xB0)
            if byte % 2:
                trail = low + (0x20 if low >= 0x60 else 0x1F)  # Shift_JIS trail bytes skip 0x7F
            else:
                trail = low + 0x7E
            out += bytes((lead, trail))
            i += 2
        else:
            out.append(byte + 0x80 if mode == 2 and 0x21 <= byte <= 0x5F else byte)
            i += 1
    return bytes(out)


def _raw_bytes(text: str) -> bytes:
    """The bytes the parser read: it decodes them as ASCII with surrogateescape."""
    try:
        return text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff\ud800-\udfff]")


def _normalise_text(text: str) -> str:
    """\\n line endings, NFC, and no control characters or lone surrogates (PostgreSQL rejects NUL)."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFC", text).strip()


_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str) -> str:
    """Decoded header text as one line: an encoded CR/LF, NEL or other control must not break the value
    into lines (header injection wherever it is shown or logged) nor glue words together."""
    return _collapse_ws(_normalise_text(_LINE_BREAKING.sub(" ", text)))


def _collapse_ws(text: str) -> str:
    """Collapse ASCII whitespace only: U+3000 is meaningful in Japanese text."""
    return _ASCII_SPACE_RUN.sub(" ", text).strip()


# --- MIME structure --------------------------------------------------------------------------------

_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_ORIGINAL_TYPES = frozenset({"message/rfc822", "message/global", "text/rfc822-headers"})
_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature",
                              "application/pgp-signature"})
_MIME_TYPES = mimetypes.MimeTypes()  # built-in table only: same extensions on every machine


class _Body:
    """One walk over the MIME tree, splitting it into body text/html and attachments."""

    def __init__(self, max_attachments: int, max_bytes: int, defects: list[str]) -> None:
        self.max_attachments = max_attachments
        self.max_bytes = max_bytes
        self.defects = defects
        self.texts: list[str] = []
        self.htmls: list[str] = []
        self.attachments: list[ParsedAttachment] = []
        self.report_type = ""
        self.delivery_status = False
        self.original_attached = False  # a returned message or its headers, as bounces carry
        self.skipped = 0

    def walk(self, part: Message, depth: int) -> None:
        ctype, params = _content_type(part, self.defects)
        self._note_parser_defects(part, ctype)
        if depth == 0:
            self.report_type = params.get("report-type", "").lower() if ctype == "multipart/report" else ""
        if depth > MAX_MIME_DEPTH:
            self.defects.append(f"MIME nesting deeper than {MAX_MIME_DEPTH} levels; inner parts ignored")
            return
        self.delivery_status |= ctype == "message/delivery-status"
        self.original_attached |= depth > 0 and ctype in _ORIGINAL_TYPES
        if part.is_multipart() and not ctype.startswith("message/"):
            children = [c for c in part.get_payload() if isinstance(c, Message)]
            if ctype == "multipart/alternative":
                self._alternative(children, depth)
            else:
                for child in children:
                    self.walk(child, depth + 1)
            return
        if ctype.startswith("multipart/"):
            self.defects.append(f"{ctype} part has no parts (missing boundary?); read as text")
            ctype = "text/plain"
        self._leaf(part, ctype, params)

    def _alternative(self, children: list[Message], depth: int) -> None:
        """Keep the first plain rendering and the last (richest) HTML one; keep every attachment."""
        text_start, html_start = len(self.texts), len(self.htmls)
        for child in children:
            texts_before, htmls_before = len(self.texts), len(self.htmls)
            self.walk(child, depth + 1)
            if texts_before > text_start:
                del self.texts[texts_before:]
            if len(self.htmls) > htmls_before > html_start:
                del self.htmls[html_start:htmls_before]

    def _leaf(self, part: Message, ctype: str, params: dict[str, str]) -> None:
        disposition, dparams = _params(_header(part, "content-disposition", self.defects) or "", self.defects)
        disposition = disposition.strip().lower()
        filename = _filename(dparams.get("filename") or params.get("name") or "", self.defects)
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            where = f"{ctype} part"
            data = _payload(part, where, self.defects)
            text = _decode_bytes(data, params.get("charset"), where, self.defects)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if ctype == "text/html":
                self.htmls.append(text)
            elif params.get("format", "").lower() == "flowed":
                self.texts.append(_unflow(text, params))
            else:
                self.texts.append(text)
        elif ctype not in _SIGNATURE_TYPES:
            self._attach(part, ctype, disposition, filename)

    def _attach(self, part: Message, ctype: str, disposition: str, filename: str) -> None:
        if len(self.attachments) >= self.max_attachments:
            self.skipped += 1
            return
        if ctype.startswith("message/"):
            content = _message_bytes(part, self.defects)
        else:
            content = _payload(part, f"attachment {filename or ctype!r}", self.defects)
        name = _safe_filename(filename, ctype, len(self.attachments) + 1)
        if len(content) > self.max_bytes:
            self.defects.append(f"attachment {name!r} skipped: {len(content)} bytes is over {self.max_bytes}")
            return
        cid = _content_id(_header(part, "content-id", self.defects))
        inline = disposition == "inline" or (not disposition and cid is not None)
        self.attachments.append(ParsedAttachment(name, ctype, content, cid, inline))

    def _note_parser_defects(self, part: Message, ctype: str) -> None:
        for defect in getattr(part, "defects", ()):
            doc = (type(defect).__doc__ or type(defect).__name__).strip().splitlines()[0]
            detail = f" ({str(defect)[:80]})" if str(defect) else ""
            self.defects.append(f"MIME ({ctype}): {doc}{detail}")


def _content_type(part: Message, defects: list[str]) -> tuple[str, dict[str, str]]:
    raw = _header(part, "content-type", defects)
    if raw is None:
        return part.get_default_type(), {}
    value, params = _params(raw, defects)
    ctype = value.strip().lower()
    if not _MIME_TYPE.fullmatch(ctype):
        defects.append(f"invalid Content-Type {value.strip()[:60]!r}; read as text/plain")
        return "text/plain", params
    return ctype, params


_RFC2231_NAME = re.compile(r"([^*]+)\*(\d{1,4})?(\*)?")


def _params(raw: str, defects: list[str]) -> tuple[str, dict[str, str]]:
    """Split `value; a=b; c*0*=...` into the value and decoded parameters.

    Hand-written because the stdlib helpers crash on mixed RFC 2231 continuations and decode the
    charset strictly; ours reuses the Japanese-aware decoder.
    """
    head, *items = _split_semicolons(raw)
    simple: dict[str, str] = {}
    pieces: dict[str, list[tuple[int, str, bool]]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        value = _unquote(value.strip())
        match = _RFC2231_NAME.fullmatch(name)
        if match:
            encoded = match.group(2) is None or match.group(3) is not None
            pieces.setdefault(match.group(1), []).append((int(match.group(2) or 0), value, encoded))
        else:
            simple.setdefault(name, _decode_raw(value, f"{name} parameter", defects))
    for name, parts in pieces.items():
        simple[name] = _rfc2231_value(sorted(parts, key=lambda p: p[0]), defects)
    return head, simple


def _rfc2231_value(parts: list[tuple[int, str, bool]], defects: list[str]) -> str:
    charset = None
    data = b""
    for index, (_, value, encoded) in enumerate(parts):
        if index == 0 and encoded and value.count("'") >= 2:
            charset, _, value = value.split("'", 2)
        data += urllib.parse.unquote_to_bytes(_raw_bytes(value)) if encoded else _raw_bytes(value)
    return _decode_bytes(data, charset or None, "RFC 2231 parameter", defects)


def _split_semicolons(raw: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in raw:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:])
    return value


def _filename(value: str, defects: list[str]) -> str:
    """Decoded but not yet made safe; Japanese clients often put RFC 2047 words in quoted filenames."""
    return _decode_header(value, "attachment filename", defects) if "=?" in value else value


_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f:*?"<>|]')


def _safe_filename(name: str, ctype: str, index: int) -> str:
    """Basename only (no path traversal), no control or shell-hostile characters, ≤ 200 UTF-8 bytes."""
    name = _normalise_text(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, dot, ext = name, "", ""
    room = 200 - len((dot + ext).encode())
    stem = stem.encode()[:room].decode("utf-8", "ignore").strip(" .")
    if stem:
        return stem + dot + ext
    if ctype in ("message/rfc822", "message/global"):
        return "forwarded.eml"
    return f"attachment-{index}{_MIME_TYPES.guess_extension(ctype) or '.bin'}"


def _content_id(value: str | None) -> str | None:
    cid = (value or "").strip().strip("<>").strip()
    return cid or None


def _payload(part: Message, where: str, defects: list[str]) -> bytes:
    """The part's raw bytes with its transfer encoding undone; base64 leniently, by us."""
    cte = (_header(part, "content-transfer-encoding", defects) or "").strip().lower()
    if cte == "base64":
        payload = part.get_payload()
        decoded, clean = _b64decode(_raw_bytes(payload) if isinstance(payload, str) else b"")
        if not clean:
            defects.append(f"{where}: base64 is truncated or corrupt; decoded what was readable")
        return decoded
    if cte not in ("", "7bit", "8bit", "binary", "quoted-printable", "x-uuencode", "uuencode"):
        defects.append(f"{where}: unknown Content-Transfer-Encoding {cte[:40]!r}; kept as is")
    data = part.get_payload(decode=True)  # bytes as received (not re-decoded with the declared charset)
    return data if isinstance(data, bytes) else b""


def _b64decode(data: bytes) -> tuple[bytes, bool]:
    """Decode what is decodable: stray characters dropped, a truncated tail cut, padding repaired.

    Segments between '=' runs are decoded separately, as some mailers concatenate padded chunks.
    Returns (bytes, whether the input was clean).
    """
    stripped = re.sub(rb"\s+", b"", data)
    alphabet_only = re.sub(rb"[^A-Za-z0-9+/=]", b"", stripped)
    clean = len(alphabet_only) == len(stripped) and len(alphabet_only) % 4 == 0
    out = bytearray()
    for chunk in re.split(rb"=+", alphabet_only):
        chunk = chunk[: len(chunk) - 1] if len(chunk) % 4 == 1 else chunk
        out += binascii.a2b_base64(chunk + b"=" * (-len(chunk) % 4))
    return bytes(out), clean


def _message_bytes(part: Message, defects: list[str]) -> bytes:
    """A message/* part as bytes (the forwarded .eml, or the delivery-status blocks)."""
    payload = part.get_payload()
    items = payload if isinstance(payload, list) else [payload]
    out = []
    for item in items:
        if isinstance(item, Message):
            out.append(_serialise(item, defects))
        elif isinstance(item, str):
            out.append(_raw_bytes(item))
    return b"\n".join(out)


def _serialise(msg: Message, defects: list[str]) -> bytes:
    buffer = BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=policy.compat32).flatten(msg)
    except Exception as exc:  # generator bugs on broken input: lose the attachment, not the message
        log.debug("could not serialise embedded message", exc_info=True)
        defects.append(f"embedded message could not be re-serialised ({type(exc).__name__})")
        return b""
    return buffer.getvalue()


def _unflow(text: str, params: dict[str, str]) -> str:
    """Undo RFC 3676 format=flowed soft line breaks so sentences are whole again."""
    delsp = params.get("delsp", "").lower() == "yes"
    lines: list[str] = []
    pending: tuple[int, str] | None = None
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        content = content[1:] if content.startswith(" ") else content
        if pending is not None and pending[0] == depth:
            content = pending[1] + content
        elif pending is not None:
            lines.append(_quote_prefix(pending[0]) + pending[1])
        pending = None
        if content.endswith(" ") and content != "-- ":
            pending = (depth, content[:-1] if delsp else content)
        else:
            lines.append(_quote_prefix(depth) + content)
    if pending is not None:
        lines.append(_quote_prefix(pending[0]) + pending[1])
    return "\n".join(lines)


def _quote_prefix(depth: int) -> str:
    return ">" * depth + " " if depth else ""


# --- HTML --------------------------------------------------------------------------------------------

_STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font-weight", "font-style", "font-size", "font-family", "text-decoration",
    "text-align", "vertical-align", "white-space", "line-height", "width", "height", "margin", "margin-top",
    "margin-bottom", "margin-left", "margin-right", "padding", "padding-top", "padding-bottom",
    "padding-left", "padding-right", "border", "border-top", "border-bottom", "border-left", "border-right",
})
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]{0,30})[^<>]{0,1000}>?")
_VOID_TAGS = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen",
    "link", "meta", "param", "source", "track", "wbr",
})
_DROPPED_WITH_CONTENT = frozenset({"script", "style", "title", "template"})
_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})  # cid: inline images in the inbox
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()} | {"*": {"style"}}
# Only the classes mail clients put on quoted history and signatures, so the inbox can fold them.
_QUOTE_CLASSES = frozenset({
    "gmail_quote", "gmail_attr", "gmail_signature", "moz-cite-prefix", "moz-signature", "yahoo_quoted",
    "OutlookMessageHeader",
})


def _sanitise_html(html: str, defects: list[str]) -> str:
    """Safe to show in the inbox: no scripts, event handlers, javascript: URLs or unknown CSS.

    Also the input of `_html_to_text`: html5ever (inside nh3) copes with stray '<' that make the
    stdlib html.parser quadratic, and its output is well-formed. html5ever itself slows down with the
    depth of open elements, so absurdly deep markup (only ever hostile) is shown as plain text.
    """
    if _nesting_depth(html) > MAX_HTML_NESTING:
        defects.append(f"HTML nested deeper than {MAX_HTML_NESTING} elements; shown as plain text")
        html = "<pre>" + escape(unescape(_TAG.sub(" ", html))) + "</pre>"
    clean = nh3.clean(
        html,
        clean_content_tags=set(_DROPPED_WITH_CONTENT),
        attributes=_ATTRIBUTES,
        url_schemes=set(_URL_SCHEMES),
        filter_style_properties=set(_STYLE_PROPERTIES),
        allowed_classes={"div": set(_QUOTE_CLASSES), "blockquote": set(_QUOTE_CLASSES)},
    )
    return _IMG_TAG.sub(_hold_remote_image, clean)


_IMG_TAG = re.compile(r"<img((?:\s+[\w:-]+(?:=\"[^\"]*\")?)*)\s*/?>")
_REMOTE_SRC = re.compile(r"(\s)src=\"((?:https?:)?//[^\"]*)\"", re.IGNORECASE)


def _hold_remote_image(match: re.Match[str]) -> str:
    """Remote images (tracking pixels) are not loaded by default: their URL moves to
    `data-remote-src`, which the inbox swaps back when the agent chooses "load images" for that
    message. Inline (`cid:`) images keep their `src`. nh3's output quotes every attribute value
    with `"` and escapes `"` inside it, so these patterns read it exactly."""
    return "<img" + _REMOTE_SRC.sub(r'\1data-remote-src="\2"', match.group(1)) + ">"


_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "pre", "hr"})
_LINE_TAGS = frozenset({"div", "li", "tr", "dt", "dd", "article", "header", "footer", "center", "figure",
                        "figcaption", "nav", "aside", "caption", "details", "summary"})  # as kept by nh3


def _nesting_depth(html: str) -> int:
    """How deep non-void elements are left open (a cheap linear scan, before any real parsing)."""
    depth = deepest = 0
    for match in _TAG.finditer(html):
        if match.group(2).lower() not in _VOID_TAGS:
            depth = max(0, depth - 1) if match.group(1) else depth + 1
            deepest = max(deepest, depth)
    return deepest


class _HtmlText(HTMLParser):
    """Sanitised HTML → plain text for classification and quote detection: blocks become lines, and
    blockquotes become '> ' lines, so quoted history in HTML-only mail is recognised."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._break(force=True)
        elif tag == "blockquote" or tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
            self.quote += 1 if tag == "blockquote" else 0
            self.pre += 1 if tag == "pre" else 0
        elif tag in _LINE_TAGS:
            self._break()
        elif tag in ("td", "th"):
            self.current.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote" or tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
            self.quote = max(0, self.quote - (1 if tag == "blockquote" else 0))
            self.pre = max(0, self.pre - (1 if tag == "pre" else 0))
        elif tag in _LINE_TAGS:
            self._break()

    def handle_data(self, data: str) -> None:
        if not self.pre:
            self.current.append(re.sub(r"[ \t\r\n\f\xa0]+", " ", data))
            return
        first, *rest = data.split("\n")
        self.current.append(first)
        for line in rest:
            self._break(force=True)
            self.current.append(line)

    def _break(self, force: bool = False, blank: bool = False) -> None:
        line = "".join(self.current) if self.pre else "".join(self.current).strip()
        self.current = []
        prefix = _quote_prefix(min(self.quote, MAX_HTML_QUOTE_DEPTH))  # deep nesting must not blow up text
        if line or force:
            self.lines.append(prefix + line if line else prefix.rstrip())
        if blank:
            self.lines.append(prefix.rstrip())

    def text(self) -> str:
        self._break()
        return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in self.lines)).strip()


def _html_to_text(html: str, defects: list[str]) -> str:
    if len(html) > MAX_HTML_TO_TEXT_CHARS:
        defects.append(f"HTML body over {MAX_HTML_TO_TEXT_CHARS} characters; only its start became text")
        html = html[:MAX_HTML_TO_TEXT_CHARS]
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return parser.text()


# --- quoted history and signatures -------------------------------------------------------------------

_QUOTED_LINE = re.compile(r"[ \t]*>")
_ORIGINAL_MESSAGE = re.compile(
    r"[-=_\s]*(?:original message|元のメッセージ|オリジナル\s?メッセージ|reply message|"
    r"urspr\u00fcngliche nachricht|message d'origine|mensaje original)[-=_\s]*[:：]?",
    re.I,
)
_FORWARD_MARKER = re.compile(
    r"[-=_\s]*(?:forwarded message|転送(?:された)?メッセージ|begin forwarded message)[-=_\s]*[:：]?", re.I
)
_UNDERSCORES = re.compile(r"_{10,}")
_HEADER_FROM = re.compile(r"\*?(?:from|差出人|送信者|送信元|von|de)\*?\s*[:：]", re.I)
_HEADER_OTHER = re.compile(
    r"\*?(?:sent|date|to|cc|subject|送信日時|送信日|日付|日時|宛先|件名|gesendet|an|betreff|envoy\u00e9|\u00e0|objet)"
    r"\*?\s*[:：]",
    re.I,
)
_ON_WROTE = re.compile(r"(?:on|le|am|el|il|op|den)\b.{1,400}\b(?:wrote|a écrit|schrieb|escribió|ha scritto|"
                       r"schreef|skrev)\b[^:：]{0,200}[:：]", re.I)
_JA_ATTRIBUTION = re.compile(r"\d{4}\s?[年/.\-]\s?\d{1,2}\s?[月/.\-]\s?\d{1,2}.{0,300}[:：]")
_JA_ATTRIBUTION_CUE = re.compile(r"@|書きました|wrote|のメッセージ|のメール|送信")
_ATTRIBUTION_START = re.compile(r"(?:-{2,}\s?)?(?:on|le|am|el|il|op|den|em)\b|\d{4}\s?[年년/.\-]", re.I)
# How an attribution line ends, in the languages we see: "<name> wrote:" ("написал(а):", "写道：", "님이 작성:"),
# or the verb before the name as Dutch, Swedish and German clients write it ("schreef Support <a@b>:").
_WROTE_END = (
    r"(?:(?:\b(?:wrote|a écrit|escribió|escreveu|ha scritto|het volgende geschreven|написал(?:\(а\)|а)?)|"
    r"写道|寫道|작성|書きました|のメッセージ|のメール)\s?[:：]|\b(?:schrieb|schreef|skrev)\b[^:：]{0,200}+[:：])"
)
_GENERIC_WROTE = re.compile(rf".{{1,200}}{_WROTE_END}", re.I)
# With a date and the quoted author's <address>, an attribution marks history even without '>' quoting,
# wherever the date stands (Apple Mail's "5 янв. 2026 г., в 10:00, …", Gmail's "Name <a@b> 于2026年…写道：").
_ADDRESSED_WROTE = re.compile(rf"(?=.{{0,400}}<\s?[^<>\s]+@[^<>\s]+>).{{1,400}}{_WROTE_END}", re.I)


def _split_reply(text: str) -> tuple[str, str, str]:
    """(new_text, quoted_text, signature): classification and agents want the customer's new words.

    When removal would leave nothing, everything stays new text (a bare forward is still content).
    """
    lines = text.split("\n")
    mask = _quote_mask(lines)
    kept = [line for line, quoted in zip(lines, mask, strict=True) if not quoted]
    if not _join(kept):
        return text, "", ""
    quoted_text = _join(line for line, quoted in zip(lines, mask, strict=True) if quoted)
    start = _signature_start(kept)
    if start is not None and _join(kept[:start]):
        return _join(kept[:start]), quoted_text, _join(kept[start:])
    return (_join(kept) if quoted_text else text), quoted_text, ""


def _join(lines: Iterable[str]) -> str:
    text = "\n".join([line.rstrip() for line in lines])
    return _BLANK_LINES.sub("\n\n", text).strip()


def _quote_mask(lines: list[str]) -> list[bool]:
    """Which lines are quoted history: '>' lines, attribution lines introducing them, and everything
    from an unquoted reply header (Outlook, '-----Original Message-----', a dated "On … wrote:") to the end.
    Content after a forward marker is the customer's content, so no header is looked for there."""
    mask = [_QUOTED_LINE.match(line) is not None for line in lines]
    for i, line in enumerate(lines):
        if _FORWARD_MARKER.fullmatch(line.strip()):
            break
        if mask[i]:
            continue
        size, strong = _reply_header(lines, i)
        after = _next_nonblank(lines, i + size) if size else None
        if after is not None and mask[after]:
            mask[i : i + size] = [True] * size
        elif strong:
            mask[i:] = [True] * (len(lines) - i)
            break
    return mask


def _reply_header(lines: list[str], i: int) -> tuple[int, bool]:
    """(lines in the reply header starting at line i, whether it marks history without '>' quoting).

    A bare "Name wrote:" only counts when '>' lines follow; Outlook blocks, separators and dated
    attributions count on their own.
    """
    line = lines[i].strip()
    if not line or len(line) > 400:
        return 0, False
    if _ORIGINAL_MESSAGE.fullmatch(line) or _outlook_block(lines, i):
        return 1, True
    if _UNDERSCORES.fullmatch(line):
        after = _next_nonblank(lines, i + 1)
        return (1, True) if after is not None and _outlook_block(lines, after) else (0, False)
    if line.endswith((":", "：")) and _GENERIC_WROTE.fullmatch(line):  # the cheap test spares most lines
        return 1, _attribution(line)
    if not _ATTRIBUTION_START.match(line):
        return 0, False
    for size in (1, 2, 3):  # clients wrap long attribution lines
        chunk = [s.strip() for s in lines[i : i + size]]
        if all(chunk) and _attribution(" ".join(chunk)):
            return size, True
    return 0, False


def _attribution(joined: str) -> bool:
    if not _DIGIT.search(joined) or len(joined) > 600:
        return False
    if _ON_WROTE.fullmatch(joined) or _ADDRESSED_WROTE.fullmatch(joined):
        return True
    return bool(_JA_ATTRIBUTION.fullmatch(joined) and _JA_ATTRIBUTION_CUE.search(joined))


def _outlook_block(lines: list[str], i: int) -> bool:
    """'From: … / Sent: … / To: … / Subject: …' (or 差出人/送信日時/宛先/件名) header block."""
    if not _HEADER_FROM.match(lines[i].strip()):
        return False
    return sum(1 for line in lines[i + 1 : i + 7] if _HEADER_OTHER.match(line.strip())) >= 2


def _next_nonblank(lines: list[str], start: int) -> int | None:
    return next((k for k in range(start, len(lines)) if lines[k].strip()), None)


_MOBILE_SIGNATURE = re.compile(
    r"(?:sent from my\b.{1,40}|sent from (?:outlook|mail|yahoo|samsung|gmail)\b.{0,40}|"
    r"get outlook for (?:ios|android).{0,20}|"
    r"(?:iphone|ipad|android|docomo|au|softbank|galaxy|xperia)\s?(?:から|より)送信.{0,10}|"
    r"outlook for (?:ios|android)\s?を入手.{0,10})",
    re.I,
)
_SEPARATOR_LINE = re.compile(r"[-‐‑‒–—―─━=＝_＿*＊~～〜・･#＃+＋■□◆◇●○★☆◎]{4,}")
_CONTACT_LABEL = re.compile(
    r"\b(?:tel|fax|phone|mobile|cell)\b\.?\s*[:：]?\s*[+(\d０-９]|\be-?mail\b\s*[:：]|"
    r"(?:電話|携帯|ＴＥＬ|ＦＡＸ)\s*(?:番号)?\s*[:：]?\s*[+(\d０-９]|メール\s*[:：]|〒\s*[\d０-９]",
    re.I,
)
_SIGNATURE_CUE = re.compile(
    r"https?://|www\.|[\w.+-]+@[\w-]+\.[\w.]+|株式会社|㈱|有限会社|合同会社|\b(?:inc|ltd|llc|corp|gmbh)\b|"
    r"co\.,? ?ltd",
    re.I,
)
_SIGNATURE_MAX_LINES = 15


def _signature_start(lines: list[str]) -> int | None:
    """Index of the first signature line among the new lines, or None.

    Signatures are recognised by explicit markers only near the end: the '-- ' delimiter, mobile
    footers ("Sent from my iPhone", "iPhoneから送信"), a separator line (━━━━, -----) followed by
    contact details, or a short closing paragraph made of contact lines (TEL/FAX/E-mail/〒).
    """
    end = (_last_nonblank(lines) or 0) + 1
    candidates = [_contact_block_start(lines, end)]
    for i in range(max(0, end - _SIGNATURE_MAX_LINES - 5), end):
        stripped = lines[i].strip()
        tail = lines[i + 1 : end]
        if lines[i].rstrip() == "--":
            candidates.append(i)
        elif _MOBILE_SIGNATURE.fullmatch(stripped) and sum(1 for t in tail if t.strip()) <= 2:
            candidates.append(i)
        elif (_SEPARATOR_LINE.fullmatch(stripped) and len(tail) <= _SIGNATURE_MAX_LINES
              and any(_contact_like(t) for t in tail)):
            candidates.append(i)
    found = [c for c in candidates if c is not None]
    return min(found) if found else None


def _contact_like(line: str) -> bool:
    """Phone, mail, URL or company lines; long lines never are (and would make the regexes slow)."""
    return len(line) <= 200 and bool(_CONTACT_LABEL.search(line) or _SIGNATURE_CUE.search(line))


def _last_nonblank(lines: list[str]) -> int | None:
    return next((k for k in range(len(lines) - 1, -1, -1) if lines[k].strip()), None)


def _contact_block_start(lines: list[str], end: int) -> int | None:
    """A last paragraph of 2–8 short lines with a labelled contact line, after other content."""
    start = end
    while start > 0 and lines[start - 1].strip():
        start -= 1
    block = lines[start:end]
    if start == 0 or not 2 <= len(block) <= 8 or any(len(line.strip()) > 70 for line in block):
        return None
    return start if any(_CONTACT_LABEL.search(line) for line in block) else None


# --- automatic mail ---------------------------------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"[\s\[(【「<]*(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?(?:reply|response)|autoreply|"
    r"abwesenheitsnotiz|réponse automatique|自動応答|自動返信|自動返答|自動送信|"
    r"不在(?:通知|のお知らせ|中|[:：\s]|$))",  # not 不在票 (a missed-delivery slip: a shipping question)
    re.I,
)
# Japanese auto-replies also mark the subject in the middle or at the end ("Re: 請求書（自動返信メール）"), but
# the words alone are a customer's topic ("自動返信メールが届きません"): only a marker set off by brackets,
# spaces or punctuation counts.
_JA_AUTO_MARKER = re.compile(
    r"(?:^|(?<=[\s\[［【(（<＜〈《「『:：\-－|｜/／]))"
    r"(?:自動(?:返信|送信|応答|返答)|不在(?:通知|のお知らせ))(?:メール|メッセージ)?"
    r"(?=$|[\s\]］】)）>＞〉》」』:：\-－|｜/／!！(（【\[［])"
)
_REPLY_PREFIX = re.compile(r"(?:\s*(?:re|fwd?|aw|wg|sv|vs|tr|返信|転送)\s?(?:\[\d+\])?\s?[:：])+\s*", re.I)
_BOUNCE_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
_NO_REPLY = r"no[-_.]?reply|do[-_.]?not[-_.]?reply"
_SYSTEM_SENDER = re.compile(rf"(?:{_NO_REPLY}|mail(?:er)?[-_.]?daemon|postmaster)(?:\+.*)?", re.I)
# Carrier gateways (au/KDDI, docomo, SoftBank) return mail without a DSN report.
_BOUNCE_SUBJECT = re.compile(
    r"[\s\[(【「<]*(?:undeliver(?:ed|able)|mail delivery (?:failed|failure)|delivery (?:status notification "
    r"\(failure\)|failure|has failed)|returned mail|failure notice|non[- ]?delivery|"
    r"メール(?:の)?(?:送信|配信|配送|転送)?(?:エラー|失敗|不能|不達)|(?:送信|配信)(?:エラー|失敗|不能)(?:通知|のお知らせ)|"
    r"宛先不明|不達(?:通知|メール))",
    re.I,
)
_LIST_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_DIGEST_SUBJECT = re.compile(
    r"\bdigest\b|\bnews ?letter\b|メール\s?マガジン|メルマガ|ダイジェスト|ニュースレター", re.I
)
_BULK_SENDER = re.compile(
    rf"(?:{_NO_REPLY}|news|newsletters?|(?:mail[-_.]?)?magazine|mail[-_.]?mag|melmaga|digest|info)(?:\+.*)?", re.I
)
_UNSUBSCRIBE = r"unsubscribe|opt[- ]?out|配信(?:停止|解除)|購読(?:停止|解除)|登録解除"
_UNSUBSCRIBE_LINK = re.compile(
    rf"(?:{_UNSUBSCRIBE})(?:[^\n<]{{0,80}}?|[^\n<]{{0,80}}\n[^\S\n]{{0,20}})<?https?://"  # "配信停止はこちら\nhttps://…"
    rf"|https?://[^\s\"'<>]{{0,200}}(?:unsubscribe|opt-?out)"  # a link to an unsubscribe page
    rf"|<a\s[^<>]{{0,500}}>[^<]{{0,80}}(?:{_UNSUBSCRIBE})",  # <a href=…>配信停止</a>
    re.I,
)


def _auto_kind(headers: dict[str, list[str]], body: _Body, from_local: str, subject: str,
               unquoted: tuple[str, ...]) -> str | None:
    """Mail we must never acknowledge (SPEC §2.9). Bounce wins over auto-reply wins over list.

    A null sender alone is weaker than auto-reply evidence: RFC 3834 asks auto-responders to send from <>.
    """
    if _is_bounce(headers, body, from_local, subject):
        return "bounce"
    if _is_auto_reply(headers, body, subject):
        return "auto-reply"
    if any(re.fullmatch(r"\s*<\s*>\s*", v) for v in headers.get("return-path", []) + headers.get("from", [])):
        return "bounce"
    if "list-id" in headers or "list-unsubscribe" in headers or _precedence(headers) in _LIST_PRECEDENCE:
        return "list"
    return "list" if _is_digest(subject, from_local, unquoted) else None


def _is_bounce(headers: dict[str, list[str]], body: _Body, from_local: str, subject: str) -> bool:
    return (
        from_local in _BOUNCE_LOCAL_PARTS
        or body.report_type == "delivery-status"
        or body.delivery_status
        or "x-failed-recipients" in headers
        or (_BOUNCE_SUBJECT.match(subject) is not None
            and (_SYSTEM_SENDER.fullmatch(from_local) is not None or body.original_attached))
    )


def _is_auto_reply(headers: dict[str, list[str]], body: _Body, subject: str) -> bool:
    submitted = (_first(headers, "auto-submitted") or "").split(";")[0].strip().lower()
    suppress = set(re.split(r"[,\s]+", (_first(headers, "x-auto-response-suppress") or "").lower()))
    return (
        submitted not in ("", "no")
        or any(name in headers for name in ("x-autoreply", "x-autorespond", "x-autoreply-from"))
        or (_first(headers, "x-autogenerated") or "").strip().lower() == "reply"
        or bool(suppress & {"oof", "all", "autoreply"})
        or _precedence(headers) == "auto_reply"
        or body.report_type == "disposition-notification"  # read receipts
        or _AUTO_SUBJECT.match(subject) is not None
        or _ja_auto_marker(subject)
    )


def _ja_auto_marker(subject: str) -> bool:
    """A Japanese auto-reply marker anywhere, except right after 'Re:' (a person answering an auto-reply,
    as with 'Re: Out of office')."""
    prefix = _REPLY_PREFIX.match(subject)
    rest = subject[prefix.end() :] if prefix else subject
    answered = _AUTO_SUBJECT.match(rest) if prefix else None
    return _JA_AUTO_MARKER.search(rest, answered.end() if answered else 0) is not None


def _is_digest(subject: str, from_local: str, unquoted: tuple[str, ...]) -> bool:
    """Newsletters and digests without List-* headers. A digest word in the subject is not enough (a
    customer writes "about your newsletter"): it takes a bulk sender or an unsubscribe link in the text
    that is not quoted history (new text, signature, HTML), and a reply or forward is a person writing."""
    if _REPLY_PREFIX.match(subject) or not _DIGEST_SUBJECT.search(subject):
        return False
    return _BULK_SENDER.fullmatch(from_local) is not None or any(_UNSUBSCRIBE_LINK.search(t) for t in unquoted)


def _precedence(headers: dict[str, list[str]]) -> str:
    return (_first(headers, "precedence") or "").strip().lower()


# --- fingerprint helpers ----------------------------------------------------------------------------

_FINGERPRINT_HEADERS = frozenset({
    b"from", b"sender", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to",
    b"references", b"mime-version", b"content-type", b"content-transfer-encoding",
})


def _split_head_body(raw: bytes) -> tuple[bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", raw)
    return (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")


def _raw_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-cased name, unfolded value) for each header line; non-header lines (mbox 'From ') skipped."""
    fields: list[tuple[bytes, bytes]] = []
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + b" " + line.strip())
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name.strip().lower(), value))
    return fields
