"""Training plumbing with tiny models built from a config (never quality): the loss falls, the saved
folders reload and carry a card, the same-model guard fires, and reindex re-embeds without parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.faces.cli import main
from tests.conftest import DEMO_DOCS, SHARED

pytestmark = pytest.mark.integration

SCIFACT = SHARED / "datasets" / "scifact"
SMALL_CHUNKS = (
    "[chunking]\nchunk_tokens = 100\noverlap_tokens = 16\n[rerank]\nenabled = false\n"  # tiny models read 126 tokens
)


@pytest.fixture(scope="module")
def mini_train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 SciFact *train* claims, their abstracts, and 90 other abstracts."""
    if not SCIFACT.is_dir():
        pytest.skip(f"SciFact is not at {SCIFACT}")
    qrels: dict[str, list[str]] = {}
    for line in (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query, doc, _ = line.split("\t")
        qrels.setdefault(query, []).append(doc)
    chosen = sorted(qrels, key=int)[:30]
    judged = {d for q in chosen for d in qrels[q]}
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    keep = [d for d in corpus if d["_id"] in judged] + [d for d in corpus if d["_id"] not in judged][:90]
    folder = tmp_path_factory.mktemp("train") / "scifact-train-mini"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in keep))
    (folder / "queries.jsonl").write_text((SCIFACT / "queries.jsonl").read_text())
    rows = "\n".join(f"{q}\t{d}\t1" for q in chosen for d in qrels[q])
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows + "\n")
    return folder


@pytest.fixture
def env(tmp_path: Path, tiny_embedder_folder: Path) -> dict[str, str]:
    config = tmp_path / "tiny.toml"
    config.write_text(f'[embedding]\nmodel = "{tiny_embedder_folder}"\n{SMALL_CHUNKS}')
    return {"RAGLINE_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def ragline(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _falls(losses: list[float]) -> bool:
    third = max(1, len(losses) // 3)
    return sum(losses[-third:]) / third < sum(losses[:third]) / third


FAST = ("--epochs", "4", "--batch-size", "8", "--lr", "1e-3", "--max-length", "64", "--json")


def test_train_embedder_then_guard_then_reindex(mini_train: Path, env: dict[str, str], tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "embedder"
    result = ragline("train-embedder", "--beir", str(mini_train), "--out", str(out), *FAST, env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "embedder" and report["steps"] > 0 and _falls(report["losses"])
    assert report["validation_queries"] == 3 and report["curve"][0]["step"] == 0
    card = (out / "README.md").read_text()
    assert "InfoNCE" in card and "temperature: 0.05" in card and "Validation curve" in card
    assert json.loads((out / "ragline_training.json").read_text())["best"] == report["best"]
    assert SentenceTransformer(str(out), device="cpu").encode(["a claim"]).shape == (1, 32)

    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(DEMO_DOCS), env=env).exit_code == 0
    guarded = ragline("--index", str(index), "search", "descale", env={**env, "RAGLINE_CONFIG": _config(tmp_path, out)})
    assert guarded.exit_code == 1 and f"ragline reindex --embedder {out}" in guarded.stderr

    chunks_before = json.loads(ragline("--index", str(index), "stats", "--json", env=env).stdout)["chunks"]
    done = ragline("--index", str(index), "reindex", "--embedder", str(out), "--json", env=env)
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["points"] == chunks_before
    after = ragline(
        "--index", str(index), "search", "descale", "--json", env={**env, "RAGLINE_CONFIG": _config(tmp_path, out)}
    )
    assert after.exit_code == 0 and json.loads(after.stdout)["results"]
    assert not (tmp_path / "index.reindex").exists() and not (tmp_path / "index.old").exists()


def _config(tmp_path: Path, model: Path) -> str:
    config = tmp_path / "trained.toml"
    config.write_text(f'[embedding]\nmodel = "{model}"\n{SMALL_CHUNKS}')
    return str(config)


def test_train_reranker_loads_as_the_reranker(
    mini_train: Path, env: dict[str, str], tmp_path: Path, tiny_cross_encoder: Path
) -> None:
    from pipeline.config import RerankConfig
    from pipeline.models.reranker import CrossEncoderReranker
    from pipeline.types import Chunk, ScoredChunk

    out = tmp_path / "reranker"
    args = ("train-reranker", "--beir", str(mini_train), "--out", str(out), "--base", str(tiny_cross_encoder))
    # a 32-wide random model needs a large step to move its near-constant scores apart
    result = ragline(*args, "--negatives", "3", *FAST, "--lr", "1e-2", env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "reranker" and _falls(report["losses"])
    weight = json.loads((out / "ragline_rerank.json").read_text())["interpolation"]
    assert 0.0 <= weight <= 1.0 and report["best"]["weight"] == weight
    assert "listwise" in (out / "README.md").read_text()

    reranker = CrossEncoderReranker(RerankConfig(model=str(out)))
    chunks = [ScoredChunk(Chunk(f"c{i}", "d", "s", f"text {i}", i, 0, 6), fused=1.0 - i / 10) for i in range(4)]
    reranked = reranker.rerank("a claim", chunks, top_n=4)
    assert reranker.weight == weight and sorted(c.chunk.id for c in reranked) == ["c0", "c1", "c2", "c3"]


def test_training_refuses_the_test_split_and_a_full_output_folder(
    mini_train: Path, env: dict[str, str], tmp_path: Path
) -> None:
    on_test = ragline(
        "train-embedder", "--beir", str(mini_train), "--split", "test", "--out", str(tmp_path / "o"), env=env
    )
    assert on_test.exit_code == 1 and "test split is for the final report only" in on_test.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    again = ragline("train-embedder", "--beir", str(mini_train), "--out", str(full), *FAST, env=env)
    assert again.exit_code == 1 and "is not empty" in again.stderr
