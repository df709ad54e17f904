"""Fusion of the dense and BM25 candidate lists: reciprocal rank, distribution-based, or weighted scores."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from pipeline.config import Fusion
from pipeline.errors import RaglineError
from pipeline.stores.base import Hit


def _rrf(hits: list[Hit], k: int) -> dict[str, float]:
    return {h.id: 1.0 / (k + rank) for rank, h in enumerate(hits, start=1)}


def _dbsf(hits: list[Hit]) -> dict[str, float]:
    """Distribution-based score fusion (as in Qdrant): mean ± 3 sigma mapped to [0, 1]."""
    if not hits:
        return {}
    scores = np.array([h.score for h in hits], dtype=np.float64)
    mean, std = float(scores.mean()), float(scores.std())
    if std == 0:
        return {h.id: 0.5 for h in hits}
    low, high = mean - 3 * std, mean + 3 * std
    return {h.id: float(np.clip((h.score - low) / (high - low), 0, 1)) for h in hits}


def _minmax(hits: list[Hit], min_range: float = 0.0) -> dict[str, float]:
    """Scale to [0, 1] by the list's own range, taken as at least ``min_range``: a list of near-equal scores
    tells its candidates apart by little, so it is not stretched over [0, 1] but stays near 0, as its
    weakest candidate and a candidate it missed do. A single hit (no range) scores by its sign."""
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    spread = max(high - low, min_range)
    if spread == 0:
        return {h.id: 1.0 if high > 0 else 0.0 for h in hits}
    return {h.id: (h.score - low) / spread for h in hits}


@dataclass(frozen=True)
class Fused:
    """One candidate after fusion, with the score of each list it was in."""

    id: str
    dense: float | None
    bm25: float | None
    fused: float
    document: str = ""


def single(hits: list[Hit], dense: bool) -> list[Fused]:
    """One list alone (dense or BM25 mode): its own score is the fused one. Exact ties (common in BM25) are
    ordered by id, not by where the engine happened to store the points, so one index ranks as its rebuild."""
    ordered = sorted(hits, key=lambda h: (-h.score, h.id))
    return [Fused(h.id, h.score if dense else None, None if dense else h.score, h.score, h.document) for h in ordered]


def fuse(
    dense: list[Hit],
    sparse: list[Hit],
    method: Fusion = Fusion.RRF,
    rrf_k: int = 60,
    dense_weight: float = 0.5,
    limit: int | None = None,
    min_dense_range: float = 0.0,
) -> list[Fused]:
    """Combine two ranked lists. A chunk missing from one list gets nothing from it,
    so an empty side never promotes the other side's weak candidates. ``min_dense_range`` (weighted fusion):
    the least cosine range the dense scores are scaled by, so near-identical documents, whose dense scores
    differ by a hair, do not outvote BM25's exact match."""
    if method == Fusion.RRF:
        d_part, s_part = _rrf(dense, rrf_k), _rrf(sparse, rrf_k)
        wd, ws = 2 * dense_weight, 2 * (1 - dense_weight)
    elif method == Fusion.DBSF:
        d_part, s_part = _dbsf(dense), _dbsf(sparse)
        wd, ws = 2 * dense_weight, 2 * (1 - dense_weight)
    elif method == Fusion.WEIGHTED:
        d_part, s_part = _minmax(dense, min_dense_range), _minmax(sparse)
        wd, ws = dense_weight, 1 - dense_weight
    else:  # pragma: no cover - the enum is closed
        raise RaglineError(f"unknown fusion {method!r}; choose one of {[f.value for f in Fusion]}")
    ids = list(dict.fromkeys(h.id for h in (*sparse, *dense)))
    score = {cid: wd * d_part.get(cid, 0.0) + ws * s_part.get(cid, 0.0) for cid in ids}
    # Rank fusion ties often (rank 1 + rank 2 on one side, 2 + 1 on the other); the margin
    # between the raw scores decides those, then the id, so the order is deterministic.
    margin = score
    if method != Fusion.WEIGHTED:  # weighted fusion's score is that margin already
        d_norm, s_norm = _minmax(dense), _minmax(sparse)
        margin = {cid: wd * d_norm.get(cid, 0.0) + ws * s_norm.get(cid, 0.0) for cid in ids}

    def order(cid: str) -> tuple[float, float, str]:
        return (-score[cid], -margin[cid], cid)

    # Only the kept head is sorted and built (a partial sort of 2 x 400 candidates, not a full one).
    kept = heapq.nsmallest(limit, ids, key=order) if limit is not None else sorted(ids, key=order)
    dense_scores = {h.id: h.score for h in dense}
    sparse_scores = {h.id: h.score for h in sparse}
    documents = {h.id: h.document for h in (*dense, *sparse)}
    return [Fused(cid, dense_scores.get(cid), sparse_scores.get(cid), score[cid], documents[cid]) for cid in kept]
