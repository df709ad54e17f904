"""Reranking plumbing with a tiny CrossEncoder built from a config (proves ordering and top-n, not quality)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.config import RerankConfig
from pipeline.errors import ModelUnavailableError
from pipeline.models.reranker import CrossEncoderReranker
from pipeline.types import Chunk, ScoredChunk

pytestmark = pytest.mark.integration


def _candidates(n: int) -> list[ScoredChunk]:
    texts = [f"passage number {i} about topic {chr(97 + i)}" for i in range(n)]
    return [
        ScoredChunk(
            Chunk(id=f"c{i}", document_id="d", source="s.txt", text=t, ordinal=i, start=0, end=len(t)),
            fused=1.0 / (i + 1),
        )
        for i, t in enumerate(texts)
    ]


def test_order_follows_scores_and_top_n(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(RerankConfig(model=str(tiny_cross_encoder), top_n=3, batch_size=4, max_length=64))
    candidates = _candidates(8)
    ranked = reranker.rerank("which passage is about topic c?", candidates)
    assert len(ranked) == 3
    model = reranker.load()
    expected = model.predict([("which passage is about topic c?", c.chunk.text) for c in candidates])
    best = sorted(range(8), key=lambda i: -expected[i])[:3]
    assert [r.chunk.id for r in ranked] == [f"c{i}" for i in best]
    assert [r.rerank for r in ranked] == sorted((r.rerank for r in ranked), reverse=True)  # type: ignore[misc]
    assert all(r.fused is not None for r in ranked)  # earlier stage scores are kept
    assert len(reranker.rerank("q", candidates, top_n=5)) == 5


def test_unavailable_hub_model_fails_fast_and_plainly() -> None:
    reranker = CrossEncoderReranker(RerankConfig(model="cross-encoder/ms-marco-MiniLM-L-6-v2"))
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="ms-marco-MiniLM-L-6-v2.*cannot be loaded"):
        reranker.rerank("q", _candidates(2))
    assert time.perf_counter() - started < 10  # never the minute of hub retries
    with pytest.raises(ModelUnavailableError):  # remembered: no second attempt
        reranker.load()


def test_missing_local_folder_is_named(tmp_path: Path) -> None:
    reranker = CrossEncoderReranker(RerankConfig(model=str(tmp_path / "nope")))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        reranker.load()
