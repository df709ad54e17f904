"""The same-model guard: an index refuses an embedder other than the one it was built with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.config import parse_config
from pipeline.errors import ModelMismatchError
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.weights import canonical_model_name, packaged_minilm_path
from tests.conftest import DEMO_DOCS, make_app

pytestmark = pytest.mark.integration


def test_aliases_and_paths_name_one_model(tmp_path: Path) -> None:
    packaged = str(packaged_minilm_path())
    assert canonical_model_name("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert canonical_model_name(packaged) == "all-MiniLM-L6-v2"
    assert canonical_model_name(str(tmp_path)) == str(tmp_path.resolve())


def test_other_model_is_refused(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, tiny_embedder_folder: Path
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, docs)
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(docs)
        before = app.stats()

    config = parse_config(
        {
            "index": {"path": str(tmp_path / "index")},
            "embedding": {"model": str(tiny_embedder_folder)},
            "rerank": {"enabled": False},
        }
    )
    from pipeline.app import Ragline

    with Ragline(config) as other:
        assert other.embedder.dimension == 32
        with pytest.raises(ModelMismatchError, match=r"built with embedder 'all-MiniLM-L6-v2' \(dimension 384\)"):
            other.search("descaling")
    with Ragline(config) as other, pytest.raises(ModelMismatchError, match="tiny-st"):
        other.ingest(docs)

    with make_app(tmp_path / "index", embedder) as app:  # the index is as it was
        assert app.stats() == before
        assert app.search("descaling", top_k=1).results[0].chunk.source == "aurora-2-manual.pdf"
