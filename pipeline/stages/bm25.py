"""BM25 as sparse vectors that Qdrant scores with its IDF modifier.

A chunk's vector holds only the term-frequency part of BM25,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; Qdrant multiplies
each query term by its IDF over the live collection at query time. So document
frequencies stay exact as documents come and go, and nothing is ever refit.

Tokenisation is the same for chunks and queries: lowercase, Unicode words
(decimal numbers kept whole), Lucene's English stopword list (what Anserini's BM25 baselines use)
and the Snowball English stemmer from PyStemmer. Terms map to sparse indices
by a stable 32-bit hash, so no vocabulary has to be stored.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from pipeline.config import BM25Config
from pipeline.types import SparseVector

TOKENIZER_VERSION = "unicode-words/lucene-stop/snowball-english/crc32@2"

# Lucene's EnglishAnalyzer default stop set.
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


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer().stemWords(words))  # type: ignore[attr-defined]


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


def query_vector(text: str, counted: bool = False) -> SparseVector:
    """Each distinct query term once (``counted``: as often as it occurs, as Lucene scores a repeated term);
    Qdrant supplies its IDF."""
    weights: dict[int, float] = {}
    for term, tf in Counter(tokenize(text)).items():
        index = term_index(term)
        weights[index] = weights.get(index, 0.0) + tf if counted else 1.0
    return _merge(weights)
