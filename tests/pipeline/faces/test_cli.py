"""The CLI contract that scripts rely on: exit codes, JSON shapes, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.faces.cli import main
from tests.conftest import DEMO_DOCS, ChatServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli")
    docs = base / "docs"
    shutil.copytree(DEMO_DOCS, docs)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return base / "index", docs


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_ingest_strict_and_summary(cli_index: tuple[Path, Path]) -> None:
    index, docs = cli_index
    result = run("--index", str(index), "ingest", str(docs), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["added"] == 5 and summary["chunks_written"] > 0
    assert [s["source"] for s in summary["skipped"]] == ["broken.pdf"]

    again = run("--index", str(index), "ingest", str(docs), "--strict")
    assert again.exit_code == 3
    assert "nothing changed" in again.stdout and "skipped broken.pdf:" in again.stdout


def test_stats_json(cli_index: tuple[Path, Path]) -> None:
    index, docs = cli_index
    result = run("--index", str(index), "stats", "--json")
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert set(stats) == {"documents", "chunks", "coverage", "model", "dimension", "store", "location", "roots"}
    assert stats["coverage"] == 1.0  # every chunk has its dense vector once a sync has finished
    assert [(r["folder"], r["documents"], r["present"]) for r in stats["roots"]] == [(str(docs.resolve()), 5, True)]
    assert stats["documents"] == 5 and stats["dimension"] == 384 and stats["model"] == "all-MiniLM-L6-v2"
    assert stats["store"] == "qdrant-edge" and stats["location"] == str(index.resolve())


def test_search_json_contract(cli_index: tuple[Path, Path]) -> None:
    index, _ = cli_index
    result = run("--index", str(index), "search", "descaling every 8 weeks", "--json", "-k", "3", "--no-rerank")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["query"] == "descaling every 8 weeks" and len(data["results"]) == 3
    first = data["results"][0]
    assert set(first) >= {"rank", "chunk_id", "source", "page", "heading", "text", "scores"}
    assert first["rank"] == 1 and first["source"] == "aurora-2-manual.pdf" and first["page"] == "2"
    assert set(first["scores"]) == {"dense", "bm25", "fused", "rerank"} and first["scores"]["rerank"] is None
    assert isinstance(data["timings_ms"], dict) and "retrieve" in data["timings_ms"]


def test_index_from_environment(cli_index: tuple[Path, Path]) -> None:
    index, _ = cli_index
    result = run("stats", "--json", env={"RAGLINE_INDEX": str(index)})
    assert json.loads(result.stdout)["documents"] == 5


def test_errors_are_one_line(cli_index: tuple[Path, Path], tmp_path: Path) -> None:
    index, _ = cli_index
    missing = run("--index", str(tmp_path / "none"), "stats")
    assert missing.exit_code == 1 and missing.stderr.strip().count("\n") == 0
    assert "no index at" in missing.stderr and "ragline ingest" in missing.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text('[retrieval]\nfusion = "max"\n', encoding="utf-8")
    result = run("--config", str(bad), "--index", str(index), "stats")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: {bad}: retrieval.fusion: Input should be 'rrf', 'dbsf' or 'weighted' (got 'max')"
    )

    typo = tmp_path / "typo.toml"
    typo.write_text("[rerank]\nenabeld = false\n", encoding="utf-8")
    assert "rerank.enabeld: unknown setting" in run("--config", str(typo), "stats").stderr


def test_second_process_gets_lock_error(cli_index: tuple[Path, Path]) -> None:
    """The embedded index belongs to one process; another one is told who holds it."""
    index, _ = cli_index
    from pipeline.stores.edge import EdgeStore

    with EdgeStore.open(index):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.faces.cli", "--index", str(index), "stats"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another process" in lines[0] and "pid" in lines[0]
    assert "if that is `ragline serve`, ask the server (GET /stats, POST /search)" in lines[0]


def test_ask_prints_prompt_and_sources(cli_index: tuple[Path, Path]) -> None:
    index, _ = cli_index
    result = run("--index", str(index), "ask", "How often should I descale?", "--no-rerank")
    assert result.exit_code == 0
    out = result.stdout
    assert "== prompt" in out and "Question: How often should I descale?" in out
    assert "[1] aurora-2-manual.pdf, p. 2" in out
    assert "no LLM endpoint configured" in out


def test_ask_sends_prompt_to_llm(cli_index: tuple[Path, Path], chat_server: ChatServer, tmp_path: Path) -> None:
    index, _ = cli_index
    config = tmp_path / "llm.toml"
    config.write_text(
        f'[llm]\nbase_url = "{chat_server.url}"\nmodel = "tiny-chat"\n[rerank]\nenabled = false\n', encoding="utf-8"
    )
    result = run(
        "--config",
        str(config),
        "--index",
        str(index),
        "ask",
        "How often should I descale?",
        "--json",
        env={"OPENAI_API_KEY": "sk-test"},
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] == "Every 8 weeks [1]."
    assert data["sources"][0]["citation"] == "aurora-2-manual.pdf, p. 2, Descaling"  # the PDF outline names it
    sent = chat_server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"]["model"] == "tiny-chat"
    assert sent["body"]["messages"][0]["content"] == data["prompt"] and "8 weeks" in data["prompt"]
