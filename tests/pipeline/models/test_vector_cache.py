"""The on-disk embedding cache: same vectors as the model, no second encode, and a new key for new weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EmbeddingConfig
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.vector_cache import CachedEmbedder

pytestmark = pytest.mark.integration


def test_cached_vectors_equal_the_models_and_are_not_recomputed(tiny_embedder_folder: Path, tmp_path: Path) -> None:
    config = EmbeddingConfig(model=str(tiny_embedder_folder))
    texts = ["alpha beta", "gamma", "alpha beta"]
    plain = SentenceTransformerEmbedder(config).embed(texts)

    cached = CachedEmbedder(config, tmp_path / "cache.sqlite")
    first = cached.embed(texts)
    assert (cached.hits, cached.misses) == (0, 2)  # the repeated text is encoded once
    np.testing.assert_allclose(first, plain, atol=1e-6)
    cached.close()

    reopened = CachedEmbedder(config, tmp_path / "cache.sqlite")
    again = reopened.embed(["gamma", "alpha beta", "delta"])
    assert (reopened.hits, reopened.misses) == (2, 1)
    np.testing.assert_array_equal(again[:2], first[[1, 0]])
    reopened.close()


def test_new_weights_in_the_same_folder_miss_the_cache(tiny_embedder_folder: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_embedder_folder, folder)
    config = EmbeddingConfig(model=str(folder))
    cached = CachedEmbedder(config, tmp_path / "cache.sqlite")
    cached.embed(["retrained"])
    cached.close()

    weights = next(folder.rglob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    retrained = CachedEmbedder(config, tmp_path / "cache.sqlite")
    retrained.embed(["retrained"])
    assert (retrained.hits, retrained.misses) == (0, 1)
    retrained.close()
