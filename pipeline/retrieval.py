"""Hybrid retrieval: dense and BM25 candidates from the store, fused here.

Qdrant returns both candidate lists in one batched call (filters applied inside
each); fusion runs in Python so every result keeps its per-stage scores
(dense, bm25, fused), which the CLI, the API and the evaluation report, and so
that weighted score fusion, which Qdrant does not offer, is available too.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.config import Fusion, RetrievalConfig
from pipeline.errors import RaglineError
from pipeline.filters import SearchFilter
from pipeline.models.protocols import QueryEmbedder, Reranker
from pipeline.stages import bm25
from pipeline.stores.base import Hit, Store
from pipeline.types import ScoredChunk

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "bm25")


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


def _minmax(hits: list[Hit]) -> dict[str, float]:
    """Scale to [0, 1] by the list's own range; a single hit (no range) scores by its sign."""
    if not hits:
        return {}
    scores = [h.score for h in hits]
    low, high = min(scores), max(scores)
    if high == low:
        return {h.id: 1.0 if high > 0 else 0.0 for h in hits}
    return {h.id: (h.score - low) / (high - low) for h in hits}


@dataclass(frozen=True)
class Fused:
    id: str
    dense: float | None
    bm25: float | None
    fused: float


def fuse(
    dense: list[Hit],
    sparse: list[Hit],
    method: Fusion = Fusion.RRF,
    rrf_k: int = 60,
    dense_weight: float = 0.5,
    limit: int | None = None,
) -> list[Fused]:
    """Combine two ranked lists. A chunk missing from one list gets nothing from it,
    so an empty side never promotes the other side's weak candidates."""
    if method == Fusion.RRF:
        d_part, s_part = _rrf(dense, rrf_k), _rrf(sparse, rrf_k)
        wd, ws = 2 * dense_weight, 2 * (1 - dense_weight)
    elif method == Fusion.DBSF:
        d_part, s_part = _dbsf(dense), _dbsf(sparse)
        wd, ws = 2 * dense_weight, 2 * (1 - dense_weight)
    elif method == Fusion.WEIGHTED:
        d_part, s_part = _minmax(dense), _minmax(sparse)
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
    return [Fused(cid, dense_scores.get(cid), sparse_scores.get(cid), score[cid]) for cid in kept]


@dataclass(frozen=True)
class Retrieved:
    results: list[ScoredChunk]
    timings_ms: dict[str, float]


class HybridRetriever:
    """Embeds the query once (cached), asks the store once, fuses."""

    def __init__(self, store: Store, embedder: QueryEmbedder, config: RetrievalConfig, cache_size: int = 1024) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    def _embed(self, query: str) -> np.ndarray:
        with self._cache_lock:  # the HTTP API retrieves from several threads
            vector = self._cache.get(query)
            if vector is not None:
                self._cache.move_to_end(query)
                return vector
        vector = self.embedder.embed_query(query)
        with self._cache_lock:
            self._cache[query] = vector
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vector

    def retrieve(
        self,
        query: str,
        top_k: int | None = None,
        where: SearchFilter | None = None,
        fusion: Fusion | None = None,
        mode: Mode = "hybrid",
        candidates: int | None = None,
    ) -> Retrieved:
        if not query.strip():
            raise RaglineError("query is empty")
        if mode not in MODES:
            raise RaglineError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
        top_k = top_k or self.config.top_k
        if top_k < 1:
            raise RaglineError(f"top_k must be greater than 0, got {top_k}")
        # Candidate depth feeds fusion; one list alone is cut at top_k anyway.
        depth = max(candidates or self.config.candidates, top_k) if mode == "hybrid" else top_k
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        dense_vec = self._embed(query) if mode != "bm25" else None
        sparse_vec = bm25.query_vector(query) if mode != "dense" else None
        t1 = time.perf_counter()
        dense, sparse = self.store.search(dense_vec, sparse_vec, depth, where, exact=self.config.exact)
        t2 = time.perf_counter()
        if mode == "dense":
            ranked = [Fused(h.id, h.score, None, h.score) for h in dense[:top_k]]
        elif mode == "bm25":
            ranked = [Fused(h.id, None, h.score, h.score) for h in sparse[:top_k]]
        else:
            ranked = fuse(
                dense, sparse, fusion or self.config.fusion, self.config.rrf_k, self.config.dense_weight, top_k
            )
        t3 = time.perf_counter()
        chunks = self.store.chunks([f.id for f in ranked])
        results = [
            ScoredChunk(chunks[f.id], f.dense, f.bm25, f.fused if mode == "hybrid" else None)
            for f in ranked
            if f.id in chunks  # a point deleted by a concurrent sync since the search
        ]
        t4 = time.perf_counter()
        timings.update(embed=(t1 - t0) * 1e3, retrieve=(t2 - t1) * 1e3, fuse=(t3 - t2) * 1e3, payload=(t4 - t3) * 1e3)
        return Retrieved(results, timings)


def rerank_head(reranker: Reranker, query: str, results: list[ScoredChunk], depth: int) -> list[ScoredChunk]:
    """Rerank the first ``depth`` results; the rest keep their first-stage order below them (so a deep list,
    as the evaluation's Recall@100 needs, stays whole)."""
    return reranker.rerank(query, results[:depth], top_n=depth) + results[depth:]
