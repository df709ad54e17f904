"""Document-aware ranking: document evidence blended into each chunk's score, and a cap per document."""

from __future__ import annotations

import pytest

from pipeline.config import RetrievalConfig
from pipeline.retrieval import by_document, rank
from pipeline.retrieval.documents import cap_per_document, with_document_evidence
from pipeline.retrieval.fusion import Fused, single
from pipeline.stores.base import Hit

pytestmark = pytest.mark.unit


def candidates(*rows: tuple[str, str, float]) -> list[Fused]:
    return [Fused(cid, None, None, score, doc) for cid, doc, score in rows]


# One lucky window of "lucky.txt" first; "right.txt" matches with four windows, none alone as well.
LUCKY = candidates(
    ("l1", "lucky", 1.0),
    ("r1", "right", 0.9),
    ("r2", "right", 0.85),
    ("r3", "right", 0.8),
    ("o1", "other", 0.7),
    ("r4", "right", 0.6),
)


def test_a_document_with_many_strong_matches_outranks_one_lucky_window() -> None:
    ranked = with_document_evidence(LUCKY, weight=0.25, chunks=3)
    assert [f.id for f in ranked][:4] == ["r1", "r2", "r3", "l1"]
    assert [f.id for f in ranked if f.document == "right"] == ["r1", "r2", "r3", "r4"]  # order within kept


def test_weight_zero_and_single_chunk_documents_keep_the_ranking() -> None:
    assert with_document_evidence(LUCKY, weight=0.0, chunks=3) == LUCKY
    one_each = candidates(("a", "A", 0.9), ("b", "B", 0.8), ("c", "C", 0.1))
    assert [f.id for f in with_document_evidence(one_each, weight=1.0, chunks=3)] == ["a", "b", "c"]


def test_evidence_is_scaled_so_rrf_and_cosine_scores_blend_alike() -> None:
    small = [Fused(f.id, None, None, f.fused / 60, f.document) for f in LUCKY]  # RRF-sized scores
    assert [f.id for f in with_document_evidence(small, 0.25, 3)] == [
        f.id for f in with_document_evidence(LUCKY, 0.25, 3)
    ]


def test_cap_per_document_keeps_room_for_other_documents() -> None:
    ranked = candidates(*[(f"a{i}", "A", 1 - i / 10) for i in range(5)], ("b0", "B", 0.3), ("c0", "C", 0.2))
    assert [f.id for f in cap_per_document(ranked, 4, 2)] == ["a0", "a1", "b0", "c0"]
    # Too few other documents: the held-back chunks fill the list, in order.
    assert [f.id for f in cap_per_document(ranked, 6, 2)] == ["a0", "a1", "b0", "c0", "a2", "a3"]
    assert [f.id for f in cap_per_document(ranked, 3, 0)] == ["a0", "a1", "a2"]


def test_rank_applies_fusion_evidence_and_cap_in_every_mode() -> None:
    dense = [Hit("a0", 0.9, "A"), Hit("a1", 0.8, "A"), Hit("a2", 0.7, "A"), Hit("b0", 0.6, "B")]
    sparse = [Hit("b0", 9.0, "B"), Hit("a0", 3.0, "A")]
    config = RetrievalConfig(max_per_document=2)
    for mode in ("hybrid", "dense", "bm25"):
        ranked = rank(dense, sparse, mode, config, 3)  # type: ignore[arg-type]
        assert sum(f.document == "A" for f in ranked) <= 2
        assert all(f.document for f in ranked)


def test_exact_ties_in_one_list_are_ordered_by_id() -> None:
    hits = [Hit("z", 1.0, "Z"), Hit("b", 2.0, "B"), Hit("a", 1.0, "A")]
    assert [f.id for f in single(hits, dense=False)] == ["b", "a", "z"]


def test_only_the_head_is_weighed_and_a_longer_top_k_keeps_it() -> None:
    fused = candidates(*[(f"a{i}", "A", 1 - i / 100) for i in range(6)], *[(f"x{i}", f"X{i}", 0.5) for i in range(4)])
    config = RetrievalConfig(document_candidates=4, max_per_document=2)
    ranked = by_document(fused, config, 10)
    # The head (first four, all of A) is capped to two ahead of the rest of the head; below it, fused order.
    assert [f.id for f in ranked] == ["a0", "a1", "a2", "a3", "a4", "a5", "x0", "x1", "x2", "x3"]
    assert [f.id for f in by_document(fused, config, 3)] == [f.id for f in ranked[:3]]
    wider = by_document(fused, RetrievalConfig(document_candidates=10, max_per_document=2), 4)
    assert [f.id for f in wider] == ["a0", "a1", "x0", "x1"]
