"""The search analyzer (pure): what a message is indexed under and what a query looks for agree, so
every word an agent can type — a two-character Japanese word included — finds the text holding it."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from router.core import search
from router.core.search import MAX_TERMS, MAX_WORD, document_terms, normalize, parse_query

KANJI = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
HIRAGANA = st.characters(min_codepoint=0x3041, max_codepoint=0x3096)
KATAKANA = st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA)
CJK = st.one_of(KANJI, HIRAGANA, KATAKANA)
LATIN_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéü0123456789", min_size=1,
                     max_size=12)
FILLER = st.text(alphabet=" 、。,.!?「」\n", min_size=1, max_size=3)


def finds(query: str, *texts: str, names: tuple[str, ...] = ()) -> bool:
    """What the database does: the message holds every query term, and its text every phrase."""
    parsed = parse_query(query)
    terms = set(document_terms(texts, names=names))
    text = normalize(" ".join(texts + names))
    return not parsed.empty and set(parsed.terms) <= terms and all(p in text for p in parsed.phrases)


def test_japanese_two_character_words_find_their_text():
    text = "請求書の金額が間違っています。返金をお願いします。"
    assert finds("返金", text)
    assert finds("請求", text)
    assert finds("請求書", text)
    assert finds("間違", text)
    assert not finds("配送", text)
    assert parse_query("返金").terms == ("返金",)


def test_cjk_runs_become_character_pairs_like_lucene_cjk_bigram():
    assert document_terms(["請求書"]) == ["請求", "求書"]
    assert document_terms(["林"]) == ["林"]  # a lone character is a term of its own
    assert document_terms(["ログイン エラー"]) == ["ログ", "グイ", "イン", "エラ", "ラー"]


def test_a_longer_query_needs_the_run_itself_not_only_its_pairs():
    scattered = "請求について。書類の求書を送ります。"  # has 請求 and 求書, not 請求書
    assert set(parse_query("請求書").terms) <= set(document_terms([scattered]))
    assert parse_query("請求書").phrases == ("請求書",)
    assert not finds("請求書", scattered)


def test_words_of_other_scripts_are_lower_cased_words():
    text = "My INVOICE shows the wrong amount; please Refund it. Grüße, Zoë"
    assert finds("invoice", text)
    assert finds("Refund", text)
    assert finds("refund invoice", text)  # every word, in any order
    assert finds("grüße", text)
    assert not finds("refunds", text)
    assert not finds("refund delivery", text)


def test_full_width_and_half_width_forms_match_their_usual_forms():
    assert finds("refund", "ＲＥＦＵＮＤ please")
    assert finds("ＲＥＦＵＮＤ", "refund please")
    assert finds("ヘンキン", "ﾍﾝｷﾝ ｼﾃｸﾀﾞｻｲ")
    assert finds("T-1042", "ｔ－１０４２")


def test_email_addresses_are_one_term_and_their_parts_are_words():
    text = "Please write to Aiko.Tanaka@Example.COM instead"
    assert finds("aiko.tanaka@example.com", text)
    assert finds("tanaka", text)
    assert not finds("aiko.tanaka@example.org", text)
    assert parse_query("Aiko.Tanaka@Example.com").email == "aiko.tanaka@example.com"
    assert parse_query("Aiko.Tanaka@Example.com").terms == ("aiko.tanaka@example.com",)
    assert finds("連絡先", "連絡先はaiko@example.comです")
    assert finds("aiko@example.com", "連絡先はaiko@example.comです")


def test_phone_numbers_match_whatever_prefix_and_separators():
    assert finds("090-1234-5678", "", "+819012345678")
    assert finds("+81 90 1234 5678", "call me on 090 1234 5678")
    assert finds("(090) 1234-5678", "my number: 09012345678")
    assert not finds("090-1234-5679", "my number: 09012345678")


def test_ticket_references_and_their_numbers():
    assert finds("T-1042", "", "T-1042")
    assert finds("t-1042", "about [T-1042] again")
    assert finds("1042", "", "T-1042")
    assert not finds("T-104", "", "T-1042")
    assert parse_query(" t-1042 ").ref_number == 1042
    assert parse_query("T-1042 refund").ref_number is None


def test_names_are_found_by_a_single_character_too():
    assert finds("林", names=("林 美咲",))
    assert finds("美咲", names=("林 美咲",))
    assert finds("Tanaka", names=("Aiko Tanaka",))


def test_a_query_with_nothing_searchable_is_empty():
    assert parse_query("!!! 。、").empty
    assert parse_query("").empty


def test_huge_texts_are_indexed_up_to_a_bound_and_long_tokens_skipped():
    words = " ".join(f"word{i}" for i in range(MAX_TERMS * 2))
    assert len(document_terms([words])) == MAX_TERMS
    assert document_terms(["x" * (MAX_WORD + 1) + " ok"]) == ["ok"]


@given(st.lists(st.one_of(st.tuples(st.just("cjk"), st.text(CJK, min_size=1, max_size=8)),
                         st.tuples(st.just("word"), LATIN_WORD)), min_size=1, max_size=8), st.data())
def test_any_two_characters_of_a_cjk_run_and_any_word_find_the_text(pieces, data):
    separators = [data.draw(FILLER) for _ in pieces]
    text = "".join(piece + separator for (_, piece), separator in zip(pieces, separators, strict=True))
    kind, piece = data.draw(st.sampled_from(pieces))
    if unicodedata.normalize("NFKC", piece) != piece:
        return
    query = piece
    if kind == "cjk" and len(piece) > 1:
        start = data.draw(st.integers(0, len(piece) - 2))
        query = piece[start:start + data.draw(st.integers(2, 4))]
    assert finds(query, text), (query, text)


@given(st.text(max_size=300))
def test_any_text_is_analysed_without_error_into_bounded_terms(text):
    terms = document_terms([text], names=[text])
    assert len(terms) <= MAX_TERMS
    assert len(set(terms)) == len(terms)
    assert all(term and len(term) <= MAX_WORD + 4 for term in terms)
    assert document_terms([text], names=[text]) == terms  # pure: the index and the query always agree
    parse_query(text)


@given(st.text(alphabet=st.one_of(st.sampled_from("aZ09@.-+() t-T_\n、。"), CJK, st.characters()), max_size=80))
def test_the_fast_tokenizer_finds_what_the_full_pattern_finds(text):
    normalized = normalize(text)
    fast = [(m.lastgroup, m.group()) for m in search._tokens(normalized)]
    assert fast == [(m.lastgroup, m.group()) for m in search._TOKEN.finditer(normalized)]
