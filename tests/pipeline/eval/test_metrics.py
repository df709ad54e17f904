"""The metric wiring, on hand-made runs whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.eval.evaluate import _documents_in_order
from pipeline.eval.metrics import evaluate_run, paired_bootstrap_p
from pipeline.types import Chunk, ScoredChunk

pytestmark = pytest.mark.unit


def test_ndcg_recall_mrr_by_hand() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d4": 1}, "q3": {"d9": 1}}
    run = {
        "q1": ["d3", "d1", "d2"],  # hits at ranks 2 and 3
        "q2": [],  # nothing retrieved: counts as zero
        "q3": [f"x{i}" for i in range(10)] + ["d9"],  # found at rank 11: recall only
    }
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    metrics = evaluate_run(qrels, run, k=10, recall_depth=100)
    assert metrics["ndcg@10"] == pytest.approx(ndcg_q1 / 3, abs=1e-6)
    assert metrics["mrr@10"] == pytest.approx(0.5 / 3, abs=1e-6)
    assert metrics["recall@100"] == pytest.approx(2 / 3, abs=1e-6)


def test_order_is_kept_not_resorted_by_document_id() -> None:
    """trec_eval sorts by score; equal scores would be re-ordered by id."""
    qrels = {"q": {"a": 1}}
    assert evaluate_run(qrels, {"q": ["z", "a"]})["mrr@10"] == pytest.approx(0.5)
    assert evaluate_run(qrels, {"q": ["a", "z"]})["mrr@10"] == pytest.approx(1.0)


def test_recall_depth_cuts_the_run() -> None:
    qrels = {"q": {"a": 1}}
    run = {"q": [f"x{i}" for i in range(5)] + ["a"]}
    assert evaluate_run(qrels, run, k=3, recall_depth=5)["recall@5"] == 0.0
    assert evaluate_run(qrels, run, k=3, recall_depth=6)["recall@6"] == 1.0


def test_empty_qrels_is_an_error() -> None:
    with pytest.raises(ValueError, match="qrels are empty"):
        evaluate_run({}, {"q": ["a"]})


def _scored(source: str, ordinal: int, score: float) -> ScoredChunk:
    chunk = Chunk(f"{source}-{ordinal}", source, source, "text", ordinal, 0, 4)
    return ScoredChunk(chunk, fused=score)


def test_documents_rank_by_their_best_chunk() -> None:
    results = [_scored("b", 2, 0.9), _scored("a", 0, 0.8), _scored("b", 0, 0.7), _scored("c", 1, 0.1)]
    assert _documents_in_order(results, 10) == ["b", "a", "c"]
    assert _documents_in_order(results, 2) == ["b", "a"]


def test_roc_auc_counts_pairs_and_ties_half() -> None:
    from pipeline.eval.metrics import roc_auc

    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert roc_auc([0.1, 0.8, 0.9], [True, True, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.3, 0.7], [True, True]) is None  # no wrong answer to tell apart


def test_the_paired_bootstrap_tells_a_gain_from_noise() -> None:
    rng = np.random.default_rng(1)
    base = {"heading": list(rng.uniform(0, 1, 200)), "real": list(rng.uniform(0, 1, 48))}
    better = {name: [v + 0.05 for v in values] for name, values in base.items()}
    # Changes of ±0.2 that cancel out: as many questions gain as lose.
    noisy = {name: [v + (0.2 if i % 2 else -0.2) for i, v in enumerate(values)] for name, values in base.items()}
    worse = {name: [v - 0.05 for v in values] for name, values in base.items()}
    assert paired_bootstrap_p(base, better) == 0.0 and paired_bootstrap_p(base, worse) == 1.0
    assert 0.3 < paired_bootstrap_p(base, noisy) < 0.7
    assert paired_bootstrap_p(base, noisy) == paired_bootstrap_p(base, noisy)  # seeded
