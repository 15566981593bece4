"""The search analyzer: text → the terms a message is indexed under, and a query → the terms to look for.

PostgreSQL's trigram index cannot look up a two-character pattern, yet `請求` (invoice) or `返金`
(refund) are whole Japanese words, and Japanese has no spaces between words. So, like Lucene's
CJKBigram analyzer, runs of Chinese/Japanese/Korean characters are indexed as overlapping pairs of
characters (`請求書` → `請求`, `求書`), and every other script as lower-cased words. A two-character
word is then exactly one term; a longer CJK query matches messages holding all its pairs, and the
caller rechecks that the run itself occurs (`Query.phrases`). Text is NFKC-normalised first, so
full-width `ＲＥＦＵＮＤ` and half-width `ﾍﾝｷﾝ` find `refund` and `ヘンキン`.

Besides words: an email address is also one term (`aiko@example.com`), a phone number is the term
`tel:` + its last 8 digits (so `090-1234-5678` finds `+81 90 1234 5678`), a ticket reference is
`t-1042`. The messages table keeps the terms in a `text[]` column under a GIN index (`@>`).

Pure functions: no I/O, the same answer for the same text, so the index and the query always agree.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from router.core.refs import REF_PREFIX

MAX_TERMS = 2000
"""Distinct terms indexed per message, in text order: a huge mail still costs a bounded index write."""
MAX_QUERY_TERMS = 32
MAX_WORD = 64
"""Longer "words" (base64, hashes) are not indexed: nobody types them, and they bloat the index."""
PHONE_TAIL = 8
"""Digits of a phone number that identify it whatever prefix it is written with (0…, +81…)."""

_CJK = (
    "\u1100-\u11ff"  # Hangul Jamo
    "\u3005-\u3007"  # 々 〆 〇
    "\u3040-\u309f"  # Hiragana
    "\u30a0-\u30ff"  # Katakana (with ー)
    "\u3130-\u318f"  # Hangul compatibility Jamo
    "\u31f0-\u31ff"  # Katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_EMAIL = r"(?P<email>[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+)"
_REF = rf"(?P<ref>(?<![^\W_]){re.escape(REF_PREFIX.lower())}\d{{1,12}}(?!\d))"
_PHONE = r"(?P<phone>\+?\(?\d[\d\-. ()]{6,}\d)"
_CJK_RUN = rf"(?P<cjk>[{_CJK}]+)"
_WORD = rf"(?P<word>[^\W_{_CJK}]+)"
_ASCII_WORD = r"(?P<word>[a-z0-9]+)"
_TOKEN = re.compile("|".join((_EMAIL, _REF, _PHONE, _CJK_RUN, _WORD)))
"""Every kind of token, in the order they are tried: `_tokens` uses the fewest that a text can hold."""
_DIGIT = re.compile(r"\d")


@functools.lru_cache(maxsize=8)
def _pattern(at: bool, digits: bool, ascii_only: bool) -> re.Pattern[str]:
    """`_TOKEN` without the alternatives a text cannot match: each one costs a try at every position."""
    kinds = [_EMAIL] if at else []
    kinds += [_REF, _PHONE] if digits else []
    kinds += [_ASCII_WORD] if ascii_only else [_CJK_RUN, _WORD]
    return re.compile("|".join(kinds))


def _tokens(normalized: str) -> Iterator[re.Match[str]]:
    return _pattern("@" in normalized, _DIGIT.search(normalized) is not None,
                    normalized.isascii()).finditer(normalized)


def normalize(text: str) -> str:
    """NFKC and lower case: what both the index and the query see."""
    return unicodedata.normalize("NFKC", text).lower()


def _bigrams(run: str, *, unigrams: bool) -> Iterator[str]:
    if len(run) == 1 or unigrams:
        yield from run
    for i in range(len(run) - 1):
        yield run[i:i + 2]


def _parts(span: str) -> Iterator[str]:
    """The words inside an address or a number (`aiko`, `example`, `com`; `090`, `1234`)."""
    return (part for part in re.findall(r"[^\W_]+", span) if len(part) <= MAX_WORD)


def _phone_term(span: str) -> str | None:
    digits = re.sub(r"\D", "", span)
    return f"tel:{digits[-PHONE_TAIL:]}" if len(digits) >= PHONE_TAIL else None


def _terms(text: str, *, unigrams: bool) -> Iterator[str]:
    for match in _tokens(normalize(text)):
        kind, value = match.lastgroup, match.group()
        if kind == "cjk":
            yield from _bigrams(value, unigrams=unigrams)
        elif kind == "word":
            if len(value) <= MAX_WORD:
                yield value
        elif kind == "email":
            yield value
            yield from _parts(value)
        elif kind == "ref":
            yield value
            yield value[len(REF_PREFIX):]
        else:  # phone: the number, and its groups as words (a "phone" may be just numbers in a row)
            phone = _phone_term(value)
            if phone:
                yield phone
            yield from _parts(value)


def document_terms(texts: Iterable[str | None], names: Iterable[str | None] = ()) -> list[str]:
    """The distinct terms of a message: its texts, and `names` (people's names, where a single
    CJK character is a likely query, e.g. the surname 林, so single characters are indexed too)."""
    found: dict[str, None] = {}
    for text, unigrams in [*((t, False) for t in texts), *((n, True) for n in names)]:
        if not text:
            continue
        for term in _terms(text, unigrams=unigrams):
            found.setdefault(term)
            if len(found) >= MAX_TERMS:
                return list(found)
    return list(found)


@dataclass(frozen=True)
class Query:
    """What to look for. A message matches when it holds every one of `terms` and its text contains
    each of `phrases` (CJK runs of three or more characters, whose pairs alone could be scattered).
    `email` and `ref_number` are set when the whole query is one of them, so the customer's
    identities and the ticket number can be looked up directly as well."""

    terms: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()
    """For each term, the word it comes from: the pairs of one CJK run share a group (they occur
    together), other terms are a group each. How often a query matches is estimated per group."""
    email: str | None = None
    ref_number: int | None = None

    @property
    def empty(self) -> bool:
        return not self.terms


def parse_query(text: str) -> Query:
    """The query an agent typed, analysed like the messages it should find."""
    normalized = normalize(text).strip()
    terms: dict[str, int] = {}
    phrases: dict[str, None] = {}
    email = None
    ref_number = None
    whole = _TOKEN.fullmatch(normalized)
    for match in _tokens(normalized):
        kind, value = match.lastgroup, match.group()
        if kind == "email":
            terms.setdefault(value, len(terms))  # the address itself, not its parts
        elif kind == "phone" and _phone_term(value):
            terms.setdefault(_phone_term(value) or "", len(terms))
        elif kind == "cjk":
            group = len(terms)
            for term in _bigrams(value, unigrams=False):
                terms.setdefault(term, group)
            if len(value) > 2:
                phrases.setdefault(value)
        elif kind == "ref":
            terms.setdefault(value, len(terms))
        else:
            for word in _parts(value):
                terms.setdefault(word, len(terms))
    if whole is not None:
        kind = whole.lastgroup
        if kind == "email":
            email = normalized
        elif kind == "ref":
            ref_number = int(normalized[len(REF_PREFIX):])
    kept = list(terms.items())[:MAX_QUERY_TERMS]
    return Query(terms=tuple(term for term, _ in kept), phrases=tuple(list(phrases)[:MAX_QUERY_TERMS]),
                 groups=tuple(group for _, group in kept), email=email, ref_number=ref_number)
