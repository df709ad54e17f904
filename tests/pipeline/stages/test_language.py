"""Language detection and per-language BM25 analysis (issue 14, item 6), on documents written for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.stages import bm25, language
from pipeline.stages.bm25 import ENGLISH_ONLY_VERSION, query_terms, term_index, tokenize, tokenize_english

pytestmark = pytest.mark.unit

DOCS = Path(__file__).parents[2] / "fixtures" / "multilingual"


@pytest.mark.parametrize(
    ("name", "code"),
    [("entkalken.de.txt", "de"), ("garantie.fr.txt", "fr"), ("molinillo.es.txt", "es"), ("council.en.txt", "en")],
)
def test_each_written_document_is_detected_in_its_language(name: str, code: str) -> None:
    assert language.detect((DOCS / name).read_text(encoding="utf-8")) == code


def test_text_too_short_or_not_prose_gets_no_language() -> None:
    assert language.detect("lb config --bootstrap") is None  # a command line says too little
    assert language.detect("1.2.3 4.5.6 7.8.9 10.11.12 13.14 15.16 17.18 19.20") is None
    assert language.guess("2024") is None


def test_a_chunk_that_cannot_be_told_takes_its_documents_language() -> None:
    german = (DOCS / "entkalken.de.txt").read_text(encoding="utf-8")
    assert language.chunk_languages(german, ["Tasse 2", german]) == ["de", "de"]
    assert language.chunk_languages("x = 1", ["x = 1"]) == ["en"]  # nothing to tell: English


def test_german_uses_german_stopwords_and_stemmer_with_its_prefix() -> None:
    terms = tokenize("Die Maschinen müssen entkalkt werden", "de")
    assert "de:maschin" in terms  # Snowball German: Maschinen -> maschin
    assert not any(t in terms for t in ("de:die", "die", "de:werd"))  # German stopwords (die, werden) are gone
    assert all(t.startswith("de:") for t in terms)


def test_french_and_spanish_stems_are_their_own() -> None:
    assert tokenize("les garanties", "fr") == ["fr:garant"]
    assert tokenize("las máquinas", "es") == ["es:maquin"]


def test_the_same_word_in_two_languages_is_two_terms() -> None:
    """German "Rat" (advice) and English "rat" stem alike; their sparse indices must not."""
    (german,) = tokenize("Rat", "de")
    (english,) = tokenize("rat", "en")
    assert german == "de:rat" and english == "rat"
    assert term_index(german) != term_index(english)


def test_codes_and_numbers_carry_no_language() -> None:
    """A serial number in a French page is the same term as in an English question."""
    terms = tokenize("numéro de série AX-4471, modèle 2.5", "fr")
    assert {"4471", "2.5"} <= set(terms)
    assert tokenize("AX-4471", "en") == ["ax", "4471"]


def test_cjk_runs_become_character_bigrams() -> None:
    assert tokenize("预热十分钟", "zh") == ["预热", "热十", "十分", "分钟"]
    assert tokenize("咖啡 机", "en") == ["咖啡", "机"]  # a lone character stays a term
    assert sorted(tokenize("Aurora咖啡机", "en")) == sorted(["aurora", "咖啡", "啡机"])  # no giant mixed token


def test_english_analysis_is_what_english_only_indexes_have() -> None:
    text = "The runner's Machines were connected in 2.2 seconds (E-0x4F2)."
    assert tokenize(text, "en") == tokenize_english(text)
    assert bm25.analyze(text, "de", ENGLISH_ONLY_VERSION) == tokenize_english(text)


def test_a_german_question_is_read_as_english_and_as_german() -> None:
    terms = query_terms("Wann muss ich die Kaffeemaschine entkalken?")
    assert "de:kaffeemaschin" in terms and "kaffeemaschin" in terms
    assert len(terms) == len(set(terms))


def test_an_english_question_is_read_as_english_only() -> None:
    assert query_terms("How often should I descale the machine?") == tokenize_english(
        "How often should I descale the machine?"
    )


def test_a_warm_up_and_a_detection_that_race_load_the_model_once() -> None:
    language._load_identifier.cache_clear()
    warming = language.warm_up()
    assert language.detect("Der Hund schläft im Garten, und die Katze sitzt auf dem Dach.") == "de"
    warming.join()
    assert language._load_identifier.cache_info().misses == 1
