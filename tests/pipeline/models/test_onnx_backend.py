"""The onnx-int8 backend: export once and re-use, int8 close to fp32, plain errors.

Plumbing and consistency checks, not quality claims: speed and SciFact quality come from
bench/backends.py and ``ragline eval`` (docs/evaluation.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, EmbeddingConfig, RerankConfig, parse_config
from pipeline.errors import ModelUnavailableError
from pipeline.eval.evaluate import index_fingerprint
from pipeline.models import backends
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.onnx import export as onnx_export
from pipeline.models.onnx.quantize import quantisation_recipe
from pipeline.models.reranker import CrossEncoderReranker
from pipeline.models.vector_cache import CachedEmbedder
from pipeline.models.weights import model_identity
from pipeline.types import Chunk, ScoredChunk
from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.integration
SCIFACT = SHARED / "datasets" / "scifact"

SENTENCES = [
    "Descale the espresso machine every eight weeks with the cleaning program.",
    "The warranty does not cover damage from hard water.",
    "Mitochondria are the powerhouse of the cell.",
    "How often should I replace the water filter?",
]


def _exports(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*-onnx-int8-*") if p.is_dir())


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index") / "models"


@pytest.fixture(scope="module")
def int8_embedder(model_cache: Path) -> SentenceTransformerEmbedder:
    """The packaged MiniLM on onnx-int8: exported (a few seconds) once for the module."""
    embedder = SentenceTransformerEmbedder(EmbeddingConfig(backend="onnx-int8"), model_cache)
    embedder.embed(["warm up"])
    return embedder


def test_export_is_cached_and_reused(
    int8_embedder: SentenceTransformerEmbedder, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [folder] = _exports(model_cache)
    assert folder.name.startswith("all-MiniLM-L6-v2-onnx-int8-")
    # spec.json + tokenizer.json: queries run on this export with no PyTorch (pipeline/models/onnx/runtime.py)
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "source.json", "spec.json", "tokenizer.json"]
    written = (folder / "model.onnx").stat().st_mtime_ns

    def no_second_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(backends, "write_export", no_second_export)
    again = SentenceTransformerEmbedder(EmbeddingConfig(backend="onnx-int8"), model_cache)
    np.testing.assert_allclose(again.embed(SENTENCES), int8_embedder.embed(SENTENCES), atol=1e-6)
    assert _exports(model_cache) == [folder]
    assert (folder / "model.onnx").stat().st_mtime_ns == written
    assert not list(model_cache.glob(".*"))  # no scratch folder left behind


def test_int8_queries_run_on_the_export_without_the_model(
    int8_embedder: SentenceTransformerEmbedder, model_cache: Path
) -> None:
    fresh = SentenceTransformerEmbedder(EmbeddingConfig(backend="onnx-int8"), model_cache)
    vectors = np.stack([fresh.embed_query(s) for s in SENTENCES])
    assert "model" not in fresh.__dict__  # no sentence-transformers model was loaded for them
    # one by one: dynamic quantisation scales activations per batch, so batch-mates move int8 vectors a little
    np.testing.assert_allclose(vectors, np.stack([int8_embedder.embed([s])[0] for s in SENTENCES]), atol=1e-5)
    assert fresh.dimension == 384 and "model" not in fresh.__dict__


def test_int8_vectors_are_close_to_fp32(
    int8_embedder: SentenceTransformerEmbedder, embedder: SentenceTransformerEmbedder
) -> None:
    int8, fp32 = int8_embedder.embed(SENTENCES), embedder.embed(SENTENCES)
    assert int8.shape == fp32.shape == (len(SENTENCES), 384) and int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(int8 * fp32, axis=1)) >= 0.95
    assert int8_embedder.name == embedder.name  # the same model to the index's model guard
    assert int8_embedder.dimension == 384 and int8_embedder.max_tokens == embedder.max_tokens


def test_new_weights_get_a_new_export(tiny_embedder_folder: Path, tmp_path: Path) -> None:
    config = EmbeddingConfig(model=str(tiny_embedder_folder), backend="onnx-int8")
    SentenceTransformerEmbedder(config, tmp_path).embed(["alpha"])
    [first] = _exports(tmp_path)
    weights = next(tiny_embedder_folder.rglob("*.safetensors"))
    stat = weights.stat()
    try:
        weights.touch()  # "re-trained into the same folder"
        SentenceTransformerEmbedder(config, tmp_path).embed(["alpha"])
        [second] = _exports(tmp_path)  # the stale export of the same folder is removed
        assert second != first
    finally:
        import os

        os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _candidates(texts: list[str]) -> list[ScoredChunk]:
    return [
        ScoredChunk(Chunk(f"c{i}", "d", "s.txt", t, i, 0, len(t)), fused=1.0 / (i + 1)) for i, t in enumerate(texts)
    ]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def _scores(config: RerankConfig, model_cache: Path | None, query: str, texts: list[str]) -> np.ndarray:
    reranker = CrossEncoderReranker(config, model_cache)
    return np.asarray(reranker.load().predict([(query, t) for t in texts]), dtype=np.float64)


def test_int8_reranker_plumbing(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    """The tiny random cross-encoder scores everything within 1e-5 of 0.5, below int8's resolution, so here
    only the plumbing: export, close scores, and rerank ordering by the int8 scores."""
    config = RerankConfig(model=str(tiny_cross_encoder), top_n=4, max_length=64, backend="onnx-int8")
    query, texts = "how do I descale the machine?", SENTENCES * 2
    int8 = _scores(config, tmp_path, query, texts)
    fp32 = _scores(config.model_copy(update={"backend": "torch"}), None, query, texts)
    assert len(_exports(tmp_path)) == 1
    np.testing.assert_allclose(int8, fp32, atol=1e-3)
    assert int8[:4].tolist() == int8[4:].tolist()  # identical inputs, identical scores
    ranked = CrossEncoderReranker(config, tmp_path).rerank(query, _candidates(texts))
    assert [r.rerank for r in ranked] == sorted(int8.tolist(), reverse=True)[:4]


def test_int8_reranker_orders_like_torch(tmp_path: Path) -> None:
    """MiniLM with a fresh (seeded) one-logit head: real hidden states, so the scores spread well beyond the
    quantisation noise, and int8 must rank them as fp32 does."""
    import torch
    from sentence_transformers import CrossEncoder

    from pipeline.models.weights import packaged_minilm_path

    torch.manual_seed(0)
    CrossEncoder(str(packaged_minilm_path()), num_labels=1, device="cpu").save(str(tmp_path / "ce"))
    query = "how do I descale my coffee machine?"
    texts = SENTENCES + [
        "Paris is the capital of France.",
        "The stock market fell sharply on Monday.",
        "Use only filtered water to avoid limescale.",
        "Gluons bind quarks together inside protons.",
        "The grinder setting controls extraction time.",
        "Vaccines train the immune system.",
        "Clean the milk frother after each use.",
    ]
    config = RerankConfig(model=str(tmp_path / "ce"), backend="onnx-int8")
    int8 = _scores(config, tmp_path / "models", query, texts)
    fp32 = _scores(config.model_copy(update={"backend": "torch"}), None, query, texts)
    assert _spearman(fp32, int8) >= 0.9
    assert int(np.argmax(int8)) == int(np.argmax(fp32))


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    yield


def test_missing_package_is_one_line_with_the_fix(no_onnxruntime: None, tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(EmbeddingConfig(backend="onnx-int8"), tmp_path)
    with pytest.raises(ModelUnavailableError) as caught:
        embedder.embed(["x"])
    message = str(caught.value)
    assert "\n" not in message and "all-MiniLM-L6-v2" in message and "pip install onnxruntime onnx" in message
    reranker = CrossEncoderReranker(RerankConfig(model=str(tmp_path / "nope"), backend="onnx-int8"))
    with pytest.raises(ModelUnavailableError, match="does not exist"):  # a missing folder is still named first
        reranker.load()
    assert not _exports(tmp_path)


def test_a_model_that_cannot_be_exported_is_one_line(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    from pipeline.models.weights import packaged_minilm_path

    static = SentenceTransformer(
        modules=[StaticEmbedding(SentenceTransformer(str(packaged_minilm_path())).tokenizer, embedding_dim=8)]
    )
    static.save(str(tmp_path / "static"))
    embedder = SentenceTransformerEmbedder(EmbeddingConfig(model=str(tmp_path / "static"), backend="onnx-int8"))
    with pytest.raises(ModelUnavailableError, match="cannot use backend 'onnx-int8'.*StaticEmbedding") as caught:
        embedder.embed(["x"])
    assert "\n" not in str(caught.value) and str(tmp_path / "static") in str(caught.value)


def test_a_failed_export_leaves_nothing_and_says_so(
    tiny_embedder_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator\naten::something")

    monkeypatch.setattr(onnx_export, "_export_fp32", broken)
    embedder = SentenceTransformerEmbedder(
        EmbeddingConfig(model=str(tiny_embedder_folder), backend="onnx-int8"), tmp_path
    )
    with pytest.raises(ModelUnavailableError, match="cannot be exported to ONNX int8: unsupported operator") as caught:
        embedder.embed(["x"])
    assert "\n" not in str(caught.value) and 'backend = "torch"' in str(caught.value)
    assert not list(tmp_path.iterdir())  # no export, no scratch folder


def test_vector_caches_key_on_the_backend(tmp_path: Path) -> None:
    """fp32 keys are unchanged (old caches stay valid); int8 gets its own, in the SQLite cache and eval index."""
    fp32 = CachedEmbedder(EmbeddingConfig(backend="torch"), tmp_path / "c.sqlite")
    int8 = CachedEmbedder(EmbeddingConfig(backend="onnx-int8"), tmp_path / "c.sqlite")
    assert fp32.identity == model_identity(fp32.name, fp32.path).encode()
    assert int8.identity != fp32.identity
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "1", "text": "x"}\n', encoding="utf-8")
    config = parse_config({"embedding": {"backend": "torch"}})
    int8_config = parse_config({})
    assert index_fingerprint(corpus, config, "m", "documents") != index_fingerprint(
        corpus, int8_config, "m", "documents"
    )


def test_backend_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="embedding.backend"):
        parse_config({"embedding": {"backend": "onnx"}})
    with pytest.raises(ConfigError, match="CPU only: set backend = \"torch\" for device 'cuda'"):
        parse_config({"embedding": {"backend": "onnx-int8", "device": "cuda"}})
    # int8 is the embedder's default on the CPU (item 8 of issue 14); a GPU with no backend set runs torch.
    assert parse_config({}).embedding.backend == "onnx-int8"
    assert parse_config({"embedding": {"device": "cuda"}}).embedding.backend == "torch"
    assert parse_config({"embedding": {"device": "cpu"}}).embedding.backend == "onnx-int8"
    assert parse_config({"embedding": {"backend": "torch"}}).embedding.backend == "torch"
    assert parse_config({"rerank": {"backend": "onnx-int8"}}).rerank.backend == "onnx-int8"


def test_quantisation_recipe_follows_the_cpu() -> None:
    vnni = quantisation_recipe(frozenset({"avx2", "avx512f", "avx512_vnni"}), "x86_64")
    avx2 = quantisation_recipe(frozenset({"avx2", "fma"}), "x86_64")
    arm = quantisation_recipe(frozenset({"asimddp"}), "aarch64")
    assert (vnni.reduce_range, avx2.reduce_range, arm.reduce_range) == (False, True, False)
    assert vnni.tag != avx2.tag and vnni.tag == arm.tag  # the same weights on VNNI and ARM


def test_a_model_that_refuses_the_additive_mask_gets_the_plain_export(
    tiny_embedder_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export, modes = onnx_export._export_fp32, []

    def additive_refused(st_model: object, target: object, file: Path, additive_mask: bool) -> None:
        modes.append(additive_mask)
        if additive_mask:
            raise TypeError("forward() got a 4-D mask")
        export(st_model, target, file, additive_mask)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx_export, "_export_fp32", additive_refused)
    config = EmbeddingConfig(model=str(tiny_embedder_folder), backend="onnx-int8")
    int8 = SentenceTransformerEmbedder(config, tmp_path).embed(SENTENCES)
    assert modes == [True, False] and len(_exports(tmp_path)) == 1
    fp32 = SentenceTransformerEmbedder(config.model_copy(update={"backend": "torch"})).embed(SENTENCES)
    assert np.min(np.sum(int8 * fp32, axis=1)) >= 0.95


@pytest.mark.slow
@pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason="needs shared/datasets/scifact")
def test_backends_bench_smoke(tiny_cross_encoder: Path, tmp_path: Path) -> None:
    """bench/backends.py runs end to end on a few texts and prints its keys (timings are not asserted)."""
    import json
    import os
    import subprocess

    args = ["--texts", "8", "--repeat", "1", "--rerank-model", str(tiny_cross_encoder)]
    args += ["--rerank-sizes", "2,3", "--rerank-repeat", "1"]
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "backends.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    keys = {"embed_fp32_chunks_per_s", "embed_int8_chunks_per_s", "embed_speedup", "texts", "batch_size"}
    assert keys | {"rerank_fp32_top2_p50_ms", "rerank_int8_top3_p50_ms", "rerank_speedup"} <= set(out)
    assert out["texts"] == 8 and out["embed_cosine_int8_fp32"]["min"] >= 0.95


def test_indexes_share_one_int8_export_in_the_user_cache(
    tiny_embedder_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default backend: two indexes on one machine export the model once, into ~/.cache, not beside each."""
    from pipeline.app import Ragline

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(" ".join(SENTENCES), encoding="utf-8")
    hits = []
    for name in ("one", "two"):
        config = parse_config(
            {
                "index": {"path": str(tmp_path / name)},
                "embedding": {"model": str(tiny_embedder_folder)},
                "chunking": {"chunk_tokens": 100},
            }
        )
        assert config.embedding.backend == "onnx-int8"
        with Ragline(config) as app:
            app.ingest(docs)
            hits.append([h.chunk.id for h in app.search("descale the machine", mode="dense", rerank=False).results])
        assert not (tmp_path / name / "models").exists()
    [export] = _exports(tmp_path / "cache" / "ragline" / "onnx")
    assert (export / "spec.json").is_file() and hits[0] == hits[1] and hits[0]
