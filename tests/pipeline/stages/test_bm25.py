"""BM25 tokenisation and sparse vectors, checked by hand and against rank-bm25."""

from __future__ import annotations

import math
import zlib
from collections import Counter

import pytest
from rank_bm25 import BM25Okapi

from pipeline.config import BM25Config
from pipeline.stages.bm25 import (
    STOPWORDS,
    SparseVector,
    document_vector,
    query_vector,
    term_index,
    tokenize,
)

pytestmark = pytest.mark.unit

K1, B = 1.2, 0.75
CONFIG = BM25Config(k1=K1, b=B)


# --- tokenize -----------------------------------------------------------------


def test_tokenize_lowercases() -> None:
    assert tokenize("Qdrant QDRANT qdrant") == ["qdrant", "qdrant", "qdrant"]


def test_tokenize_drops_lucene_stopwords() -> None:
    assert tokenize("The cat is on the mat and it was not there") == ["cat", "mat"]
    # Lucene's English set is small: "was", "will", "such" are in it, "has" and "from" are not
    assert tokenize("has from") == ["has", "from"]
    assert tokenize("such will") == []


def test_tokenize_drops_stopwords_regardless_of_case() -> None:
    assert tokenize("THE Quick AND") == ["quick"]


def test_tokenize_stems_with_snowball() -> None:
    assert tokenize("running") == ["run"]
    assert tokenize("machines") == ["machin"]
    assert tokenize("Running Machines connected connection") == ["run", "machin", "connect", "connect"]


def test_tokenize_keeps_unicode_words() -> None:
    tokens = tokenize("café Straße naïve")
    assert tokens[0] == "café"
    assert "straße" in tokens
    assert len(tokens) == 3


def test_tokenize_splits_on_punctuation_and_keeps_digits() -> None:
    assert tokenize("e-mail: foo_bar, 2024!") == ["e", "mail", "foo_bar", "2024"]


def test_tokenize_empty_and_stopword_only_text() -> None:
    assert tokenize("") == []
    assert tokenize("  ...  ") == []
    assert tokenize("the and of") == []


def test_stopword_list_is_lucene_english_set() -> None:
    lucene = {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
        "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
        "they", "this", "to", "was", "will", "with",
    }  # fmt: skip
    assert STOPWORDS == lucene


def test_term_index_is_crc32_and_stable() -> None:
    assert term_index("run") == zlib.crc32(b"run")
    assert term_index("café") == zlib.crc32("café".encode())
    assert 0 <= term_index("anything") < 2**32


# --- document_vector ----------------------------------------------------------


def bm25_tf(tf: int, length: int, avg_len: float, k1: float = K1, b: float = B) -> float:
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_len))


def as_dict(vector: SparseVector) -> dict[int, float]:
    assert len(vector.indices) == len(vector.values)
    return dict(zip(vector.indices, vector.values))


def test_document_vector_matches_hand_computed_bm25_tf() -> None:
    tokens = ["appl", "appl", "appl", "pie", "crust"]  # length 5
    avg_len = 8.0
    # norm = 1.2 * (1 - 0.75 + 0.75 * 5 / 8) = 1.2 * 0.71875 = 0.8625
    expected = {
        term_index("appl"): 3 * 2.2 / (3 + 0.8625),
        term_index("pie"): 1 * 2.2 / (1 + 0.8625),
        term_index("crust"): 1 * 2.2 / (1 + 0.8625),
    }
    got = as_dict(document_vector(tokens, avg_len, CONFIG))
    assert got.keys() == expected.keys()
    for index, value in expected.items():
        assert got[index] == pytest.approx(value, rel=1e-12)
    assert got[term_index("appl")] == pytest.approx(1.7087, abs=1e-4)
    assert got[term_index("pie")] == pytest.approx(1.1812, abs=1e-4)


def test_document_vector_indices_sorted_and_unique() -> None:
    vector = document_vector(tokenize("zebra apple mango apple kiwi zebra banana"), 5.0, CONFIG)
    assert list(vector.indices) == sorted(set(vector.indices))
    assert len(vector) == 5


def test_document_vector_longer_document_gets_lower_weight() -> None:
    short = as_dict(document_vector(["x", "a"], 4.0, CONFIG))
    long = as_dict(document_vector(["x", "a", "b", "c", "d", "e", "f", "g"], 4.0, CONFIG))
    assert long[term_index("x")] < short[term_index("x")]


def test_document_vector_b_zero_ignores_length() -> None:
    config = BM25Config(k1=1.2, b=0.0)
    short = as_dict(document_vector(["x", "a"], 4.0, config))
    long = as_dict(document_vector(["x", "a", "b", "c", "d", "e", "f", "g"], 4.0, config))
    assert short[term_index("x")] == pytest.approx(long[term_index("x")])
    assert short[term_index("x")] == pytest.approx(1.0)  # tf=1: 1 * 2.2 / (1 + 1.2)


def test_document_vector_weight_saturates_below_k1_plus_one() -> None:
    weights = [as_dict(document_vector(["t"] * tf, float(tf), CONFIG))[term_index("t")] for tf in (1, 2, 5, 50)]
    assert weights == sorted(weights)
    assert weights[-1] < K1 + 1


def test_document_vector_of_no_tokens_is_empty() -> None:
    assert document_vector([], 10.0, CONFIG) == SparseVector((), ())


# --- query_vector -------------------------------------------------------------


def test_query_vector_has_each_distinct_term_once_with_weight_one() -> None:
    vector = query_vector("Running runs and the runner RUNNING machines")
    expected_terms = set(tokenize("Running runs and the runner RUNNING machines"))
    assert expected_terms == {"run", "runner", "machin"}
    assert sorted(vector.indices) == sorted(term_index(t) for t in expected_terms)
    assert list(vector.indices) == sorted(vector.indices)
    assert vector.values == (1.0, 1.0, 1.0)


def test_query_vector_of_stopwords_is_empty() -> None:
    assert len(query_vector("the and of it")) == 0


# --- ranking against rank-bm25 ------------------------------------------------

CORPUS = [
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "Chlorophyll in the leaves of plants absorbs red and blue light for photosynthesis.",
    "Some desert plants open their pores at night to save water.",
    "The volcano erupted at dawn, sending lava and ash across the valley.",
    "Lava flows from shield volcanoes are runny and travel long distances.",
    "Geologists measure gas emissions to predict when a volcano may erupt again.",
    "Neural networks learn by adjusting weights with gradient descent during training.",
    "Training a large neural network requires many GPUs and a lot of labelled data.",
    "Overfitting happens when a model memorises its training data instead of generalising.",
    "Bread dough rises because yeast ferments sugar and releases carbon dioxide.",
    "Sourdough bread uses a wild yeast starter instead of commercial yeast.",
    "Knead the dough for ten minutes, then let it rest in a warm kitchen.",
    "The orchestra tuned their violins before the symphony began.",
    "A violin has four strings tuned in perfect fifths.",
    "The conductor raised his baton and the symphony orchestra fell silent.",
    "Marathon runners train for months to build endurance for the race.",
    "Running shoes with good cushioning reduce the impact on the knees.",
    "The runner crossed the finish line after a long and exhausting race.",
    "Medieval castles were built with thick stone walls and deep moats.",
    "The castle keep was the last refuge during a siege.",
    "Knights in heavy armour defended the castle gate against the siege engines.",
    "Coffee beans are roasted to bring out their aroma and flavour.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "Tea leaves are steeped in hot water, and green tea needs cooler water than black tea.",
    "The spacecraft entered orbit around Mars after a seven month journey.",
    "Astronauts on the space station grow lettuce in a small orbital greenhouse.",
    "A rocket needs enormous thrust to escape the gravity of the Earth.",
    "Glaciers carve deep valleys as they slowly move down mountains.",
    "Melting glaciers raise sea levels and change ocean currents.",
    "Ice cores drilled from old glaciers record the climate of past centuries.",
    "The database index speeds up queries on large tables of customer records.",
]

QUERIES = [
    "photosynthesis in plants",
    "volcano lava eruption",
    "training neural networks",
    "yeast bread dough",
    "symphony orchestra violin",
    "runner race training",
    "castle siege",
    "hot water coffee tea",
    "space orbit rocket",
    "melting glaciers",
]


def qdrant_idf(n_docs: int, doc_freq: int) -> float:
    """Qdrant's IDF modifier: ln(1 + (N - n + 0.5) / (n + 0.5))."""
    return math.log(1 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


def our_scores(query: str, tokenized: list[list[str]]) -> list[float]:
    """What Qdrant computes from our vectors: sum over query terms of q_weight * idf * doc weight."""
    n_docs = len(tokenized)
    avg_len = sum(len(t) for t in tokenized) / n_docs
    doc_freq = Counter(term for tokens in tokenized for term in set(tokens))
    vectors = [as_dict(document_vector(tokens, avg_len, CONFIG)) for tokens in tokenized]
    query_terms = {term_index(t): t for t in set(tokenize(query))}
    q = as_dict(query_vector(query))
    assert q.keys() == query_terms.keys()
    scores = []
    for vector in vectors:
        score = 0.0
        for index, q_weight in q.items():
            if index in vector:
                score += q_weight * qdrant_idf(n_docs, doc_freq[query_terms[index]]) * vector[index]
        scores.append(score)
    return scores


def top(scores: list[float], n: int = 3) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:n]


def test_corpus_has_no_hash_collisions() -> None:
    terms = {t for doc in CORPUS for t in tokenize(doc)} | {t for q in QUERIES for t in tokenize(q)}
    assert len({term_index(t) for t in terms}) == len(terms)


@pytest.mark.parametrize("query", QUERIES)
def test_top3_matches_rank_bm25(query: str) -> None:
    tokenized = [tokenize(doc) for doc in CORPUS]
    ours = our_scores(query, tokenized)
    reference = BM25Okapi(tokenized, k1=K1, b=B).get_scores(sorted(set(tokenize(query))))
    ours_top, ref_top = top(ours), top(list(reference))
    # the comparison is only meaningful where both rankings have three real, untied matches
    for scores in (ours, list(reference)):
        best = sorted(scores, reverse=True)
        assert best[0] > best[1] > best[2] > best[3] >= 0, query
    assert ours_top == ref_top, (query, [CORPUS[i] for i in ours_top], [CORPUS[i] for i in ref_top])


@pytest.mark.parametrize(
    ("query", "expected_doc"),
    [
        ("chlorophyll", "Chlorophyll in the leaves"),
        ("sourdough starter", "Sourdough bread"),
        ("espresso", "Espresso is brewed"),
        ("database queries", "The database index"),
        ("running machines", "Running shoes"),  # "running" stems to "run", which only this document has
    ],
)
def test_single_obvious_document_ranks_first(query: str, expected_doc: str) -> None:
    [expected_first] = [i for i, doc in enumerate(CORPUS) if doc.startswith(expected_doc)]
    tokenized = [tokenize(doc) for doc in CORPUS]
    scores = our_scores(query, tokenized)
    assert top(scores, 1) == [expected_first]
    assert scores[expected_first] > 0


def test_document_without_query_terms_scores_zero() -> None:
    tokenized = [tokenize(doc) for doc in CORPUS]
    scores = our_scores("espresso", tokenized)
    assert sum(1 for s in scores if s > 0) == 1
