"""Integration fixtures: the real MiniLM model (loaded once) and real Qdrant Edge folders."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.config import AppConfig, parse_config
from pipeline.embedding import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])
    return model


def make_app(index: Path, embedder: SentenceTransformerEmbedder, **sections: dict) -> Ragline:
    """A Ragline on ``index`` that shares the session's loaded model."""
    config: AppConfig = parse_config({"index": {"path": str(index)}, "rerank": {"enabled": False}, **sections})
    app = Ragline(config)
    app.embedder = embedder
    return app


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo") / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    return folder


@pytest.fixture(scope="session")
def demo_app(
    tmp_path_factory: pytest.TempPathFactory, demo_folder: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[Ragline]:
    app = make_app(tmp_path_factory.mktemp("demo-index"), embedder)
    app.ingest(demo_folder)
    yield app
    app.close()
