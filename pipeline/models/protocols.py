"""What the stages above need from a model, as consumer-side protocols: sync, lifecycle and retrieval take
these, never a class, so a test or another engine can stand in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pipeline.types import ScoredChunk, TokenCounter


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> np.ndarray:
        """One unit-length float32 vector (never cached here: retrieval caches)."""
        ...


class Embedder(Protocol):
    """The document side of an embedder: what sync and re-embedding need."""

    name: str

    @property
    def dimension(self) -> int: ...

    @property
    def tokens(self) -> TokenCounter: ...

    @property
    def max_tokens(self) -> int:
        """Longest text, in tokens, that the model reads without truncation."""
        ...

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class Reranker(Protocol):
    def rerank(self, query: str, candidates: Sequence[ScoredChunk], top_n: int | None = None) -> list[ScoredChunk]:
        """The best ``top_n`` of ``candidates`` by the model's score, highest first."""
        ...
