"""BM25 as sparse vectors that Qdrant scores with its IDF modifier.

A chunk's vector holds only the term-frequency part of BM25,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; Qdrant multiplies
each query term by its IDF over the live collection at query time. So document
frequencies stay exact as documents come and go, and nothing is ever refit.

Analysis is per language, the same for chunks and queries: lowercase, Unicode words
(decimal numbers kept whole), the language's stopwords and Snowball stemmer (PyStemmer);
runs of Chinese, Japanese or Korean characters become overlapping character bigrams, as
Lucene's CJKAnalyzer makes them, instead of one token per sentence. A chunk is analysed
in its detected language (``stages.language``); a query as English and as its likeliest
language both, since a query is too short to call. Terms map to sparse indices by a
stable 32-bit hash of the term *with its language* (``de:rat`` and English ``rat`` are two
terms), so no vocabulary has to be stored and no stem of one language scores as another's.
English terms, numbers and codes carry no prefix: they are the same terms in every
language's text, and the same as an index from before languages were told apart.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

from pipeline.config import BM25Config
from pipeline.stages import language
from pipeline.stages.language import ENGLISH, STEMMERS
from pipeline.types import SparseVector

TOKENIZER_VERSION = "unicode-words/langid/snowball-stop-per-language/cjk-bigrams/crc32@3"
ENGLISH_ONLY_VERSION = "unicode-words/lucene-stop/snowball-english/crc32@2"
"""Indexes built before languages were told apart: they keep English-only analysis, writing and reading."""
TOKENIZERS = (TOKENIZER_VERSION, ENGLISH_ONLY_VERSION)

# Lucene's EnglishAnalyzer default stop set (other languages: the stop-words package's lists).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)

# Numbers keep their decimal point ("2.2", "3.14"), as Unicode word segmentation (UAX #29) does;
# everything else splits on non-word characters ("E-0x4F2" -> "e", "0x4f2").
_WORD = re.compile(r"\d+(?:[.,]\d+)+|\w+", re.UNICODE)
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_OR_WORD = re.compile(rf"([{_CJK_CHARS}]+)|\d+(?:[.,]\d+)+|(?:(?![{_CJK_CHARS}])\w)+", re.UNICODE)


@cache
def _stemmer(language: str) -> Any:
    import Stemmer

    return Stemmer.Stemmer(STEMMERS[language])


@cache
def _stopwords(language: str) -> frozenset[str]:
    if language == ENGLISH:
        return STOPWORDS
    from stop_words import AVAILABLE_LANGUAGES, get_stop_words

    name = STEMMERS[language]
    return frozenset(get_stop_words(name)) if name in AVAILABLE_LANGUAGES else frozenset()


def tokenize_english(text: str) -> list[str]:
    """The analysis of an index built before languages were told apart (``ENGLISH_ONLY_VERSION``)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer(ENGLISH).stemWords(words))


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def tokenize(text: str, language: str = ENGLISH) -> list[str]:
    """The terms of ``text`` analysed as ``language`` (an ISO 639-1 code; one without a stemmer is read
    as English). Words with a digit are codes, not words of a language: they are stemmed as English and
    carry no prefix, so ``0x4F2`` in a French page matches ``0x4F2`` in an English question."""
    language = language if language in STEMMERS else ENGLISH
    stop = _stopwords(language)
    terms: list[str] = []
    words: list[str] = []
    codes: list[str] = []
    for match in _CJK_OR_WORD.finditer(text.lower()):
        if match.group(1):
            terms.extend(_bigrams(match.group(1)))
        elif (word := match.group(0)) not in stop:
            (codes if language == ENGLISH or any(c.isdigit() for c in word) else words).append(word)
    terms.extend(_stemmer(ENGLISH).stemWords(codes))
    if words:
        terms.extend(f"{language}:{stem}" for stem in _stemmer(language).stemWords(words))
    return terms


def analyze(text: str, language: str | None, tokenizer: str = TOKENIZER_VERSION) -> list[str]:
    """A chunk's terms under the index's tokenizer: ``language`` is its detected language (None: English)."""
    if tokenizer == ENGLISH_ONLY_VERSION:
        return tokenize_english(text)
    return tokenize(text, language or ENGLISH)


def term_index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


def _merge(pairs: dict[int, float]) -> SparseVector:
    ordered = sorted(pairs.items())
    return SparseVector(tuple(i for i, _ in ordered), tuple(v for _, v in ordered))


def document_vector(tokens: Sequence[str], avg_len: float, config: BM25Config) -> SparseVector:
    """BM25 term weights of one chunk, given the collection's average chunk length."""
    if not tokens:
        return SparseVector((), ())
    k1, b = config.k1, config.b
    norm = k1 * (1 - b + b * len(tokens) / max(avg_len, 1e-9))
    weights: dict[int, float] = {}
    for term, tf in Counter(tokens).items():
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + tf * (k1 + 1) / (tf + norm)
    return _merge(weights)


def query_terms(text: str, tokenizer: str = TOKENIZER_VERSION) -> list[str]:
    """A query's terms: its English analysis, and, when it reads as another language, that analysis too
    (each distinct term once)."""
    if tokenizer == ENGLISH_ONLY_VERSION:
        return tokenize_english(text)
    terms = tokenize(text, ENGLISH)
    guessed = language.guess(text)
    if guessed is not None and guessed != ENGLISH:
        seen = set(terms)
        terms += [t for t in tokenize(text, guessed) if t not in seen]
    return terms


def query_vector(text: str, counted: bool = False, tokenizer: str = TOKENIZER_VERSION) -> SparseVector:
    """Each distinct query term once (``counted``: as often as it occurs, as Lucene scores a repeated term);
    Qdrant supplies its IDF."""
    weights: dict[int, float] = {}
    for term, tf in Counter(query_terms(text, tokenizer)).items():
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + tf if counted else 1.0
    return _merge(weights)
