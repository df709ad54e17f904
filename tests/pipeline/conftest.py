"""Shared fixtures for the pipeline unit tests."""

from __future__ import annotations

import pytest

from pipeline.models.embedder import ModelTokens, load_token_counter
from pipeline.models.weights import packaged_minilm_path


@pytest.fixture(scope="session")
def token_counter() -> ModelTokens:
    """The packaged all-MiniLM-L6-v2 tokenizer (a fast `tokenizers` one, no torch)."""
    return load_token_counter(str(packaged_minilm_path()))
