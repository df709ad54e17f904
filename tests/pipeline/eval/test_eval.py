"""`ragline eval` end to end on a small BEIR folder cut from SciFact, with the real MiniLM and Qdrant Edge."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.faces.cli import main
from tests.conftest import SHARED

pytestmark = pytest.mark.integration

SCIFACT = SHARED / "datasets" / "scifact"
N_QUERIES, N_DOCS = 30, 300


@pytest.fixture(scope="module")
def mini_scifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 test queries, their judged abstracts, and other abstracts up to 300 documents."""
    if not SCIFACT.is_dir():
        pytest.skip(f"SciFact is not at {SCIFACT}")
    qrels: dict[str, list[str]] = {}
    for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, doc, _ = line.split("\t")
        qrels.setdefault(query, []).append(doc)
    chosen = sorted(qrels, key=int)[:N_QUERIES]
    judged = {d for q in chosen for d in qrels[q]}
    corpus = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").read_text().splitlines()]
    keep = [d for d in corpus if d["_id"] in judged]
    keep += [d for d in corpus if d["_id"] not in judged][: N_DOCS - len(keep)]
    queries = [json.loads(line) for line in (SCIFACT / "queries.jsonl").read_text().splitlines()]

    folder = tmp_path_factory.mktemp("beir") / "scifact-mini"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in keep))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    rows = [f"{q}\t{d}\t1" for q in chosen for d in qrels[q]]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Eval indexes and the embedding cache go under a test folder, never ~/.cache."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.getbasetemp() / "xdg-cache")}


def ragline(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def eval_json(folder: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    result = ragline("eval", "--beir", str(folder), "--json", *extra, env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout


def test_eval_reports_every_mode_and_reuses_the_index(mini_scifact: Path, cache_env: dict[str, str]) -> None:
    first = eval_json(mini_scifact, cache_env, "--modes", "bm25,dense,hybrid")
    assert (first["dataset"], first["split"], first["queries"]) == ("scifact-mini", "test", N_QUERIES)
    assert set(first["modes"]) == {"bm25", "dense", "hybrid"}
    for mode in first["modes"].values():
        assert {"ndcg@10", "recall@100", "mrr@10", "latency_ms_p50"} <= set(mode)
        assert 0 < mode["latency_ms_p50"] <= mode["latency_ms_p95"]
        # 30 SciFact claims against 300 abstracts: every real retriever finds most cited abstracts.
        assert mode["ndcg@10"] > 0.6 and mode["recall@100"] > 0.9
    assert set(first["modes"]["hybrid"]["stages_ms"]) == {"embed", "retrieve", "fuse", "payload", "total"}
    assert first["index"]["chunks_written"] == N_DOCS and not first["index"]["reused"]
    assert Path(first["index"]["path"]).is_relative_to(cache_env["XDG_CACHE_HOME"])
    # Abstracts go through the embedding cache; queries never do, so their latency is the model's.
    with sqlite3.connect(Path(cache_env["XDG_CACHE_HOME"]) / "ragline" / "embeddings.sqlite") as db:
        assert db.execute("SELECT count(*) FROM vectors").fetchone() == (N_DOCS,)

    again = eval_json(mini_scifact, cache_env, "--modes", "hybrid")
    assert again["index"] == {
        **first["index"],
        "reused": True,
        "chunks_written": 0,
        "seconds": again["index"]["seconds"],
    }
    assert again["modes"]["hybrid"]["ndcg@10"] == first["modes"]["hybrid"]["ndcg@10"]

    rows = eval_json(mini_scifact, cache_env, "--modes", "hybrid", "--per-query")["modes"]["hybrid"]["per_query"]
    assert len(rows) == N_QUERIES
    assert sum(q["ndcg@10"] for q in rows) / N_QUERIES == pytest.approx(first["modes"]["hybrid"]["ndcg@10"], abs=1e-3)
    for q in rows:
        assert q["query"] and q["relevant"] and len(q["top"]) == 3
        assert (q["rank"] == 1) == (q["top"][0] in q["relevant"]) and (q["rank"] is None) == (q["mrr@10"] == 0)


def test_chunked_documents_rank_by_their_best_chunk(mini_scifact: Path, cache_env: dict[str, str]) -> None:
    whole = eval_json(mini_scifact, cache_env, "--modes", "bm25")
    chunked = eval_json(mini_scifact, cache_env, "--modes", "bm25", "--units", "chunks")
    assert chunked["units"] == "chunks" and chunked["index"]["path"] != whole["index"]["path"]
    assert chunked["index"]["chunks_written"] > N_DOCS  # abstracts longer than 200 tokens were split
    assert chunked["modes"]["bm25"]["recall@100"] > 0.9


def test_hybrid_plus_rerank_reorders_only_the_head(
    mini_scifact: Path, cache_env: dict[str, str], tiny_cross_encoder: Path, tmp_path: Path
) -> None:
    config = tmp_path / "ragline.toml"
    config.write_text(f'[rerank]\nmodel = "{tiny_cross_encoder}"\ncandidates = 20\n')
    env = {**cache_env, "RAGLINE_CONFIG": str(config)}
    report = eval_json(mini_scifact, env, "--modes", "hybrid,hybrid+rerank")
    hybrid, reranked = report["modes"]["hybrid"], report["modes"]["hybrid+rerank"]
    assert "rerank" in reranked["stages_ms"]
    # The reranker reorders the first 20 of the same hundred documents: Recall@100 cannot move.
    assert reranked["recall@100"] == hybrid["recall@100"]


def test_missing_reranker_fails_before_indexing(mini_scifact: Path, tmp_path: Path) -> None:
    config = tmp_path / "ragline.toml"
    config.write_text(f'[rerank]\nmodel = "{tmp_path / "no-such-model"}"\n')
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = ragline("--config", str(config), "eval", "--beir", str(mini_scifact), "--modes", "hybrid+rerank", env=env)
    assert result.exit_code == 1
    assert "reranker model folder" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "cache" / "ragline" / "eval").exists()


def test_eval_refuses_an_index_that_holds_other_documents(
    mini_scifact: Path, cache_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.conftest import DEMO_DOCS

    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(DEMO_DOCS), env=cache_env).exit_code == 0
    before = sorted(os.listdir(index))
    result = ragline("eval", "--beir", str(mini_scifact), "--eval-index", str(index), env=cache_env)
    assert result.exit_code == 1 and "holds documents of other sources" in result.stderr
    assert sorted(os.listdir(index)) == before
    stats = json.loads(ragline("--index", str(index), "stats", "--json", env=cache_env).stdout)
    assert stats["documents"] == 5  # the demo documents are untouched


def test_bad_beir_folder_and_mode_are_one_line_errors(mini_scifact: Path, cache_env: dict[str, str]) -> None:
    result = ragline("eval", "--beir", str(mini_scifact), "--split", "dev", env=cache_env)
    assert (
        result.exit_code == 1 and result.stderr.strip() == "error: BEIR folder has no qrels/dev.tsv; splits found: test"
    )
    result = ragline("eval", "--beir", str(mini_scifact), "--modes", "bm25,colbert", env=cache_env)
    assert result.exit_code == 1 and "unknown eval mode colbert" in result.stderr


def test_a_corpus_entry_is_indexed_as_title_then_text_and_cited_without_its_title(token_counter) -> None:
    from pipeline.eval.evaluate import whole_document
    from pipeline.stages.chunking import indexed_text
    from pipeline.types import Document, Section

    body = "Alterations of the architecture of cerebral white matter in the developing human brain. " * 20
    entry = Document("d1", "4983", (Section(body),), "hash", {"title": "Microstructural development"})
    (chunk,) = whole_document(entry)
    assert chunk.text == body and chunk.metadata["title"] == "Microstructural development"
    # Too long for the model, yet the title stays first: BEIR's "title text", word for word.
    assert token_counter.count(body) > 254
    assert indexed_text(chunk, token_counter, 254).split() == f"Microstructural development {body}".split()
