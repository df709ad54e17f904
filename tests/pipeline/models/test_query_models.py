"""Query-time models on fp32 ONNX: the torch models' own outputs, no PyTorch in a search process, PyTorch as the fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EmbeddingConfig, RerankConfig
from pipeline.models.backends import ModelPlan
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.onnx.runtime import OnnxCrossEncoder
from pipeline.models.reranker import CrossEncoderReranker
from pipeline.types import Chunk, ScoredChunk
from tests.conftest import DEMO_DOCS, REPO

pytestmark = pytest.mark.integration

QUERIES = [
    "How often should I descale?",
    "warranty",
    "",
    "Résumé des conditions de garantie — 保修条款 and a mix of scripts",
    " ".join(["a long query that runs well past the model's 256-token window"] * 40),
]


@pytest.fixture
def embedder(torch_embedder: SentenceTransformerEmbedder) -> SentenceTransformerEmbedder:
    """The torch backend (the default is onnx-int8): its queries run on the fp32 export of the torch model."""
    return torch_embedder


def _cli(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a new process, with its own user cache; prints whether torch was ever imported."""
    code = (
        "import sys\nfrom pipeline.faces.cli import main\nsys.argv = ['ragline', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )


def test_query_vectors_are_the_torch_models_own(embedder: SentenceTransformerEmbedder) -> None:
    encoder = embedder.query_encoder
    assert encoder is not None  # the session's model load wrote the export
    lean, torch_vectors = encoder.embed(QUERIES), embedder.embed(QUERIES)
    assert lean.shape == torch_vectors.shape == (len(QUERIES), 384) and lean.dtype == np.float32
    np.testing.assert_allclose(lean, torch_vectors, atol=1e-4)
    np.testing.assert_allclose(embedder.embed_query(QUERIES[0]), torch_vectors[0], atol=1e-4)
    assert embedder.dimension == 384


def test_search_process_never_imports_torch_and_ranks_as_torch_does(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    cache, index, torch_config = tmp_path / "cache", tmp_path / "index", tmp_path / "torch.toml"
    torch_config.write_text('[embedding]\nbackend = "torch"\n', encoding="utf-8")
    ingest = _cli(
        cache, "--config", str(torch_config), "--index", str(index), "ingest", str(DEMO_DOCS), "--progress", "none"
    )
    assert "torch imported: True" in ingest.stdout
    [export] = (cache / "ragline" / "onnx").glob("all-MiniLM-L6-v2-onnx-fp32-*")
    assert sorted(p.name for p in export.iterdir()) == ["model.onnx", "source.json", "spec.json", "tokenizer.json"]

    search = [
        "--config",
        str(torch_config),
        "--index",
        str(index),
        "search",
        "How often should I descale?",
        "--no-rerank",
        "--json",
    ]
    lean = _cli(cache, *search)
    assert lean.stdout.rstrip().endswith("torch imported: False")
    (export / "spec.json").unlink()  # no usable export: PyTorch embeds the query (and exports again)
    torch_run = _cli(cache, *search)
    assert torch_run.stdout.rstrip().endswith("torch imported: True")
    assert (export / "spec.json").is_file()

    lean_hits = json.loads(lean.stdout.splitlines()[0])["results"]
    torch_hits = json.loads(torch_run.stdout.splitlines()[0])["results"]
    assert [h["chunk_id"] for h in lean_hits] == [h["chunk_id"] for h in torch_hits]
    assert lean_hits[0]["source"] == "aurora-2-manual.pdf"
    dense = [[h["scores"]["dense"] or 0.0 for h in hits] for hits in (lean_hits, torch_hits)]
    np.testing.assert_allclose(dense[0], dense[1], atol=1e-4)
    assert any(dense[0])

    # Reranked: the first search loads the cross-encoder with PyTorch and exports it; later ones do not.
    config = tmp_path / "ragline.toml"
    config.write_text(
        f'[embedding]\nbackend = "torch"\n[rerank]\nmodel = "{tiny_cross_encoder}"\non_failure = "stop"\n',
        encoding="utf-8",
    )
    reranked = ["--config", str(config), *search[2:-2], "--json"]
    first, second = _cli(cache, *reranked), _cli(cache, *reranked)
    assert first.stdout.rstrip().endswith("torch imported: True")
    assert second.stdout.rstrip().endswith("torch imported: False")
    scores = [[h["scores"]["rerank"] for h in json.loads(r.stdout.splitlines()[0])["results"]] for r in (first, second)]
    assert all(isinstance(x, float) for x in scores[0])
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-4)


def test_model_outside_the_recipe_keeps_pytorch(
    tiny_embedder_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Max pooling is not covered: no export, and queries are embedded by sentence-transformers as before."""
    from sentence_transformers import SentenceTransformer, models

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    transformer = models.Transformer(str(tiny_embedder_folder.parent / "hf"), max_seq_length=128)
    max_pooled = SentenceTransformer(modules=[transformer, models.Pooling(32, pooling_mode="max")], device="cpu")
    max_pooled.save(str(tmp_path / "max"))
    embedder = SentenceTransformerEmbedder(EmbeddingConfig(model=str(tmp_path / "max"), backend="torch"))
    vector = embedder.embed_query("descale")
    assert embedder.query_encoder is None
    assert not list((tmp_path / "cache").rglob("spec.json"))
    np.testing.assert_allclose(vector, embedder.embed(["descale"])[0], atol=1e-6)

    mean = SentenceTransformerEmbedder(EmbeddingConfig(model=str(tiny_embedder_folder), backend="torch"))
    mean.embed(["load the model"])
    assert mean.query_encoder is not None  # the same tiny transformer with mean pooling is covered
    np.testing.assert_allclose(mean.query_encoder.embed(QUERIES), mean.embed(QUERIES), atol=1e-4)


def test_damaged_export_falls_back_with_a_warning(
    embedder: SentenceTransformerEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert embedder.query_encoder is not None
    good = ModelPlan("embedder", embedder.name, embedder.path, "torch").folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = ModelPlan("embedder", embedder.name, embedder.path, "torch").folder
    assert good is not None and folder is not None and folder.parent == tmp_path / "ragline" / "onnx"
    folder.mkdir(parents=True)
    for file in ("spec.json", "tokenizer.json"):
        (folder / file).write_bytes((good / file).read_bytes())
    (folder / "model.onnx").write_bytes((good / "model.onnx").read_bytes()[:5000])
    fresh = SentenceTransformerEmbedder(EmbeddingConfig(backend="torch"))
    assert fresh.query_encoder is None
    assert "cannot be loaded" in caplog.text and str(folder) in caplog.text
    np.testing.assert_allclose(fresh.embed_query("descale"), embedder.embed(["descale"])[0], atol=1e-6)


def test_reranker_export_scores_as_the_cross_encoder(tiny_cross_encoder: Path) -> None:
    """Pairs past max_length exercise truncation of the longer side, as sentence-transformers truncates."""
    from sentence_transformers import CrossEncoder

    query = "which passage is about descaling the boiler?"
    words = "boiler pump warranty filter water steam milk coffee grinder valve scale descale".split()
    texts = [" ".join(words[(i + j) % 12] for j in range(3 + 8 * i)) for i in range(12)]  # up to 91 words
    candidates = [
        ScoredChunk(
            Chunk(id=f"c{i}", document_id="d", source="s.txt", text=t, ordinal=i, start=0, end=len(t)), fused=1.0
        )
        for i, t in enumerate(texts)
    ]
    config = RerankConfig(model=str(tiny_cross_encoder), max_length=48, batch_size=5, top_n=12)
    reranker = CrossEncoderReranker(config)
    lean = reranker.load()
    assert isinstance(lean, OnnxCrossEncoder)  # exported on the first load, used from then on
    assert isinstance(CrossEncoderReranker(config).load(), OnnxCrossEncoder)
    reference = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    reference.max_seq_length = 48
    expected = reference.predict([(query, t) for t in texts])
    got = {r.chunk.id: r.rerank for r in reranker.rerank(query, candidates)}
    np.testing.assert_allclose([got[f"c{i}"] for i in range(12)], expected, atol=1e-5)
    # The random tiny model scores everything alike, so check the inputs themselves: same pair truncation.
    hf = reference.tokenizer([query] * 12, texts, truncation=True, max_length=48)["input_ids"]
    assert [e.ids for e in lean.tokenizer.encode_batch([(query, t) for t in texts])] == [
        ids + [0] * (48 - len(ids)) for ids in hf
    ]
    assert len({len(ids) for ids in hf}) > 1 and max(len(ids) for ids in hf) == 48
