"""An embedded index with int8-quantized dense vectors, kept on disk: the same answers as full vectors on the demo
documents, its layout recorded and kept by a reindex."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.config import parse_config
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS

pytestmark = pytest.mark.integration

QUESTIONS = [
    "How often should I descale the Aurora 2 espresso machine?",
    "What does error E-0x4F2 mean?",
    "How many vacation days do employees get?",
    "grind size for espresso",
]


def app_with(index: dict[str, object], embedder: SentenceTransformerEmbedder) -> Ragline:
    app = Ragline(parse_config({"index": index, "rerank": {"enabled": False}}))
    app.embedder = embedder
    return app


def test_quantized_on_disk_index_answers_as_the_full_one(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, demo_app: Ragline
) -> None:
    layout = {
        "path": str(tmp_path / "index"),
        "quantization": "int8",
        "on_disk": True,
        "oversampling": 3.0,
        "hnsw_ef": 256,
    }
    with app_with(layout, embedder) as app:
        app.ingest(DEMO_DOCS)
        store = app.store()
        assert store.meta.quantization == "int8" and (store.oversampling, store.hnsw_ef) == (3.0, 256)
        shard = json.loads((tmp_path / "index" / "shard" / "edge_config.json").read_text())
        assert shard["sparse_vectors"]["bm25"]["on_disk"] is True and shard["on_disk_payload"] is True
        for question in QUESTIONS:
            for mode in ("dense", "hybrid"):
                quantized = [
                    (r.chunk.source, r.chunk.ordinal) for r in app.search(question, top_k=5, mode=mode).results
                ]
                full = [
                    (r.chunk.source, r.chunk.ordinal) for r in demo_app.search(question, top_k=5, mode=mode).results
                ]
                assert quantized[:3] == full[:3], (question, mode)  # rescoring keeps the head exact
    assert json.loads((tmp_path / "index" / "meta.json").read_text())["quantization"] == "int8"
    assert demo_app.store().meta.quantization == ""  # the default index is unquantized

    with app_with({**layout, "quantization": "none"}, embedder) as app:
        assert app.store().meta.quantization == "int8"  # an existing index keeps the layout it was made with
        moved = app.reindex(embedder.name)
        assert moved.points > 0
        app.forget_retriever()
    with app_with(layout, embedder) as app:
        assert app.store().meta.quantization == ""  # reindex builds the new folder with the config's layout
        assert app.search(QUESTIONS[0], top_k=1).results[0].chunk.source == "aurora-2-manual.pdf"
