"""How likely the first result is relevant, from signals the ranking already has.

A chatbot given weak context answers from it anyway; told that the context is weak, it can say it does not
know. The signals are the candidate lists' own: how high the best dense match is, how far the first result
stands above the next document in each list and in the final ranking, and whether dense and BM25 agree on
it. A logistic model per mode turns them into a probability; its coefficients were fitted on the three
development sets (``bench/fit_confidence.py``, which prints them and each set's ROC AUC), each set weighed
equally so that SciFact's many questions do not decide alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pipeline.retrieval.fusion import Fused
from pipeline.stores.base import Hit

FEATURES: dict[str, tuple[str, ...]] = {
    "hybrid": ("dense_top", "dense_gap", "bm25_gap", "fused_gap", "agree_dense", "agree_bm25", "overlap"),
    "dense": ("dense_top", "dense_gap", "fused_gap"),
    "bm25": ("bm25_gap", "bm25_per_term", "fused_gap"),
}

MODEL: dict[str, tuple[float, dict[str, float]]] = {
    # Fitted by bench/fit_confidence.py on the Debian, demo, sample and SciFact-train questions (int8 embedder;
    # docs/evaluation.md): intercept, then one weight per feature. The agreement weights are negative only
    # beside the gaps and the overlap, which already carry most of what agreement says.
    "hybrid": (
        -2.1198,
        {
            "dense_top": 3.0628,
            "dense_gap": 2.5386,
            "bm25_gap": 1.0043,
            "fused_gap": 2.9279,
            "agree_dense": -0.203,
            "agree_bm25": -0.4399,
            "overlap": 2.7092,
        },
    ),
    "dense": (-1.9864, {"dense_top": 3.4935, "dense_gap": 4.0413, "fused_gap": 3.418}),
    "bm25": (-0.7269, {"bm25_gap": 3.0716, "bm25_per_term": 0.1877, "fused_gap": 2.2817}),
}

TOP_DOCUMENTS = 5
"""How many documents of each list ``overlap`` compares."""


def _documents(hits: Sequence[Hit | Fused]) -> list[tuple[str, float]]:
    """Each document once, with its best score, best first (the lists are ordered)."""
    best: dict[str, float] = {}
    for h in hits:
        best.setdefault(h.document or h.id, h.score if isinstance(h, Hit) else h.fused)
    return list(best.items())


def _gap(documents: list[tuple[str, float]]) -> float:
    """How far the first document stands above the second, relative to the first."""
    if not documents:
        return 0.0
    if len(documents) == 1:
        return 1.0
    first, second = documents[0][1], documents[1][1]
    return (first - second) / abs(first) if first else 0.0


def features(
    dense: Sequence[Hit], sparse: Sequence[Hit], ranked: Sequence[Fused], query_terms: int
) -> dict[str, float]:
    """The signals of one query's candidate lists (either list may be empty) and its final ranking."""
    dense_docs, sparse_docs, ranked_docs = _documents(dense), _documents(sparse), _documents(ranked)
    first = ranked_docs[0][0] if ranked_docs else None
    top_dense = {d for d, _ in dense_docs[:TOP_DOCUMENTS]}
    top_sparse = {d for d, _ in sparse_docs[:TOP_DOCUMENTS]}
    union = top_dense | top_sparse
    return {
        "dense_top": dense_docs[0][1] if dense_docs else 0.0,
        "dense_gap": _gap(dense_docs),
        "bm25_gap": _gap(sparse_docs),
        "bm25_per_term": (sparse_docs[0][1] / max(query_terms, 1)) if sparse_docs else 0.0,
        "fused_gap": _gap(ranked_docs),
        "agree_dense": float(bool(dense_docs) and dense_docs[0][0] == first),
        "agree_bm25": float(bool(sparse_docs) and sparse_docs[0][0] == first),
        "overlap": len(top_dense & top_sparse) / len(union) if union else 0.0,
    }


def confidence(signals: dict[str, float], mode: str) -> float:
    """The fitted probability, 0-1, that the first result is relevant."""
    intercept, weights = MODEL[mode]
    z = intercept + sum(w * signals[name] for name, w in weights.items())
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
