"""Hybrid retrieval: dense and BM25 candidates from the store, fused and ranked here.

Qdrant returns both candidate lists in one batched call (filters applied inside
each); fusion (``fusion``) and document-aware ranking (``documents``) run in
Python so every result keeps its per-stage scores (dense, bm25, fused), which
the CLI, the API and the evaluation report, and so that the evaluation can sweep
settings over candidates fetched once.

May import: ``stages``, ``models`` (protocols), ``stores`` (protocol) and the ground floor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

import numpy as np

from pipeline.config import Fusion, RetrievalConfig
from pipeline.errors import RaglineError
from pipeline.filters import SearchFilter
from pipeline.models.protocols import QueryEmbedder, Reranker
from pipeline.retrieval import confidence
from pipeline.retrieval.documents import cap_per_document, collapse_copies, with_document_evidence
from pipeline.retrieval.fusion import Fused, fuse, single
from pipeline.stages import bm25
from pipeline.stores.base import CHUNK_IDS, Hit, Readers, Store
from pipeline.tracing import observed, stage
from pipeline.types import Chunk, ScoredChunk, document_key

__all__ = ["MODES", "Fused", "HybridRetriever", "Mode", "Retrieved", "fuse", "rank", "rerank_head"]

SIGNAL_DEPTH = 10
"""The ranking's length the confidence signals are read from, whatever ``top_k`` is."""
LEGACY_LIST_HITS = 30
"""In an index from before ``CHUNK_IDS``, how many hits of each list get their document read for the
confidence signals (a payload read each; the signals were fitted on whole lists, so these lose a little)."""


Mode = Literal["hybrid", "dense", "bm25"]
T = TypeVar("T", Hit, Fused)
MODES: tuple[Mode, ...] = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class Retrieved:
    results: list[ScoredChunk]
    timings_ms: dict[str, float]
    confidence: float | None = None
    """How likely the first result is relevant (``confidence``); None when there is no result."""
    signals: dict[str, float] = field(default_factory=dict)
    """What ``confidence`` was computed from."""


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
        readers: Readers = None,
    ) -> Retrieved:
        """The first ``top_k`` results; ``readers``: the principals the caller holds (``Reader.visible``), which the
        store matches inside each candidate list, so nothing the caller may not read is ever a candidate."""
        if not query.strip():
            raise RaglineError("query is empty")
        if mode not in MODES:
            raise RaglineError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
        top_k = top_k or self.config.top_k
        if top_k < 1:
            raise RaglineError(f"top_k must be greater than 0, got {top_k}")
        # Candidate depth feeds fusion and document evidence; one list alone, with neither, is cut at top_k.
        ranking = mode == "hybrid" or self.config.document_weight > 0
        depth = max(candidates or self.config.candidates, top_k) if ranking else top_k
        timings: dict[str, float] = {}
        with stage("embed", timings):
            dense_vec = self._embed(query) if mode != "bm25" else None
            sparse_vec = bm25.query_vector(query, tokenizer=self.store.meta.tokenizer) if mode != "dense" else None
        keyed = self.store.meta.chunk_ids == CHUNK_IDS  # candidates name their document from their id
        with stage("retrieve", timings):
            dense, sparse = self.store.search(
                dense_vec, sparse_vec, depth, where, self.config.exact, documents=keyed, readers=readers
            )
        cut = max(top_k, SIGNAL_DEPTH)  # the confidence reads the first two documents, whatever top_k is
        with stage("fuse", timings, observe=False):  # fusing and ranking come in two parts, told once below
            limit = max(cut, self.config.document_candidates)
            fused = first_stage(dense, sparse, mode, self.config, limit, fusion)
        chunks: dict[str, Chunk] = {}
        with stage("payload", timings, observe=False):
            if not keyed:
                fused, dense, sparse, chunks = self._read_documents(fused, dense, sparse, readers)
        with stage("fuse", timings, observe=False):
            ranked = by_document(fused, self.config, len(fused))
            sparse_terms = len(sparse_vec) if sparse_vec is not None else 0
            signals = confidence.features(dense, sparse, ranked[:cut], sparse_terms)
        with stage("payload", timings, observe=False):
            results = self._results(ranked, top_k, mode, chunks, readers)
            if len(results) < top_k and len(fused) == limit and keyed:  # copies took places: rank every candidate
                everything = len(dense) + len(sparse)
                ranked = by_document(
                    first_stage(dense, sparse, mode, self.config, everything, fusion), self.config, everything
                )
                results = self._results(ranked, top_k, mode, chunks, readers)
        observed("fuse", timings["fuse"] / 1e3)
        observed("payload", timings["payload"] / 1e3)
        sure = confidence.confidence(signals, mode) if results else None
        return Retrieved(results, timings, sure, signals)

    def _results(
        self, ranked: list[Fused], top_k: int, mode: Mode, chunks: dict[str, Chunk], readers: Readers
    ) -> list[ScoredChunk]:
        """The first ``top_k`` of ``ranked`` as results, their chunks read (those not in ``chunks`` yet) a round
        at a time: a copy of a better result's text (``collapse_copies``) or a point a concurrent sync deleted
        since the search leaves a place that the next candidates fill."""
        results: list[ScoredChunk] = []
        read = 0
        while len(results) < top_k and read < len(ranked):
            batch = ranked[read : read + top_k - len(results)]
            read += len(batch)
            missing = [f.id for f in batch if f.id not in chunks]
            chunks.update(self.store.chunks(missing, readers) if missing else {})
            results += [
                ScoredChunk(chunks[f.id], f.dense, f.bm25, f.fused if mode == "hybrid" else None)
                for f in batch
                if f.id in chunks
            ]
            if self.config.collapse_copies:
                results = collapse_copies(results)
        return results

    def _read_documents(
        self, fused: list[Fused], dense: list[Hit], sparse: list[Hit], readers: Readers
    ) -> tuple[list[Fused], list[Hit], list[Hit], dict[str, Chunk]]:
        """In an index from before ``CHUNK_IDS``, the documents of what document-aware ranking and the
        confidence read (the fused head, each list's first hits), from one payload read of those few, which
        also holds most results' chunks."""
        head = fused[: self.config.document_candidates]
        dense, sparse = dense[:LEGACY_LIST_HITS], sparse[:LEGACY_LIST_HITS]
        ids = [f.id for f in head] + [h.id for h in (*dense, *sparse)]
        chunks = self.store.chunks(list(dict.fromkeys(ids)), readers)
        key = {cid: document_key(c.document_id) for cid, c in chunks.items()}
        fused = with_documents(head, key) + fused[len(head) :]
        return fused, with_documents(dense, key), with_documents(sparse, key), chunks


def first_stage(
    dense: list[Hit], sparse: list[Hit], mode: Mode, config: RetrievalConfig, limit: int, fusion: Fusion | None = None
) -> list[Fused]:
    """The first ``limit`` candidates in one order: fused (hybrid) or one list alone."""
    if mode == "dense":
        return single(dense, dense=True)[:limit]
    if mode == "bm25":
        return single(sparse, dense=False)[:limit]
    method = fusion or config.fusion
    return fuse(dense, sparse, method, config.rrf_k, config.dense_weight, limit, config.min_dense_range)


def by_document(fused: list[Fused], config: RetrievalConfig, top_k: int) -> list[Fused]:
    """The first ``config.document_candidates`` weighed by document evidence, with at most
    ``config.max_per_document`` chunks of one document ahead of the others; those below follow as fused.
    So a longer ``top_k`` keeps the same head, and only the head's documents need reading."""
    head = with_document_evidence(fused[: config.document_candidates], config.document_weight, config.document_chunks)
    head = cap_per_document(head, len(head), config.max_per_document)
    return (head + fused[config.document_candidates :])[:top_k]


def rank(
    dense: list[Hit],
    sparse: list[Hit],
    mode: Mode,
    config: RetrievalConfig,
    top_k: int,
    fusion: Fusion | None = None,
) -> list[Fused]:
    """The first-stage ranking of candidates already fetched with their documents, as ``retrieve`` ranks."""
    fused = first_stage(dense, sparse, mode, config, max(top_k, config.document_candidates), fusion)
    return by_document(fused, config, top_k)


def with_documents(items: Sequence[T], key: Mapping[str, str]) -> list[T]:
    """Each hit or candidate naming its document's key, where ``key`` knows it."""
    return [replace(h, document=key[h.id]) if h.id in key else h for h in items]


def rerank_head(reranker: Reranker, query: str, results: list[ScoredChunk], depth: int) -> list[ScoredChunk]:
    """Rerank the first ``depth`` results; the rest keep their first-stage order below them (so a deep list,
    as the evaluation's Recall@100 needs, stays whole)."""
    return reranker.rerank(query, results[:depth], top_n=depth) + results[depth:]
