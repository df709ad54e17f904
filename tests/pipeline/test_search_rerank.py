"""The search path with a reranker configured: used when it loads, reported or fatal when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.errors import ModelUnavailableError
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import make_app

pytestmark = pytest.mark.integration


def _app(index: Path, embedder: SentenceTransformerEmbedder, **rerank: object) -> Ragline:
    return make_app(index, embedder, rerank={"enabled": True, **rerank})


def test_continue_without_reranker(demo_app: Ragline, embedder: SentenceTransformerEmbedder) -> None:
    with _app(demo_app.index_path, embedder, model="cross-encoder/not-here", on_failure="continue") as app:
        demo_app.close()  # the embedded index is owned by one process/object at a time
        response = app.search("How often should I descale?", top_k=3)
        assert not response.reranked and len(response.results) == 3
        assert (
            response.notices
            and "not reranked" in response.notices[0]
            and "cross-encoder/not-here" in response.notices[0]
        )
        assert all(r.rerank is None for r in response.results)


def test_stop_without_reranker(demo_app: Ragline, embedder: SentenceTransformerEmbedder) -> None:
    demo_app.close()
    with _app(demo_app.index_path, embedder, model="cross-encoder/not-here", on_failure="stop") as app:
        with pytest.raises(ModelUnavailableError, match="not-here"):
            app.search("How often should I descale?", top_k=3)


def test_reranked_search(demo_app: Ragline, embedder: SentenceTransformerEmbedder, tiny_cross_encoder: Path) -> None:
    demo_app.close()
    with _app(demo_app.index_path, embedder, model=str(tiny_cross_encoder), candidates=12) as app:
        response = app.search("How often should I descale?", top_k=4)
        assert response.reranked and len(response.results) == 4
        scores = [r.rerank for r in response.results]
        assert None not in scores and scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        assert "rerank" in response.timings_ms
