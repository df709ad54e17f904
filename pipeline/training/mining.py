"""Hard negatives from ragline's own hybrid retriever, and the validation slices built from them."""

from __future__ import annotations

import random

from pipeline.app import Ragline
from pipeline.retrieval import HybridRetriever
from pipeline.training.data import TrainingData

Candidates = dict[str, list[tuple[str, float]]]
"""Per query id: (document id, first-stage score), best first."""


def hybrid_candidates(app: Ragline, queries: dict[str, str], depth: int, progress: bool = False) -> Candidates:
    """The hybrid top ``depth`` documents of each query (a document ranks by its best chunk)."""
    retriever = HybridRetriever(app.store(), app.embedder, app.config.retrieval, cache_size=0)
    items = list(queries.items())
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="hybrid candidates", unit="query", leave=False)
    found: Candidates = {}
    for query_id, text in items:
        ranked: dict[str, float] = {}
        for r in retriever.retrieve(text, top_k=depth, mode="hybrid").results:
            ranked.setdefault(r.chunk.source, r.score)
        found[query_id] = list(ranked.items())
    return found


def mine_negatives(data: TrainingData, candidates: Candidates) -> dict[str, list[str]]:
    """Candidates that are not judged relevant and are not a copy of a positive's text, best first."""
    mined = {}
    for query_id, ranked in candidates.items():
        positives = set(data.positives(query_id))
        positive_texts = {data.text(p) for p in positives}
        mined[query_id] = [d for d, _ in ranked if d not in positives and data.text(d) not in positive_texts]
    return mined


def validation_corpus(data: TrainingData, candidates: dict[str, list[str]], extra: int, seed: int) -> dict[str, str]:
    """Positives and hybrid candidates of the validation queries, plus ``extra`` random documents:
    small enough to re-embed at every check on a CPU, hard enough to rank."""
    keep = {d for q in data.validation_queries for d in (*data.positives(q), *candidates.get(q, []))}
    others = sorted(d.id for d in data.dataset.corpus if d.id not in keep)
    keep |= set(random.Random(seed).sample(others, min(extra, len(others))))
    return {d: data.text(d) for d in sorted(keep)}
