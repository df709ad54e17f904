"""Shared fixtures for the pipeline unit tests."""

from __future__ import annotations

import pytest

from pipeline.embedding import TokenCounter, load_token_counter
from pipeline.models import packaged_minilm_path


@pytest.fixture(scope="session")
def token_counter() -> TokenCounter:
    """The packaged all-MiniLM-L6-v2 tokenizer (a fast `tokenizers` one, no torch)."""
    return load_token_counter(str(packaged_minilm_path()))
