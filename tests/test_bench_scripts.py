"""The benchmark scripts run end to end on small inputs and print the JSON keys others rely on.

Smoke runs only: the figures themselves come from full runs (bench/RESULTS.md);
no test here asserts a timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_DOCS, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def bench(script: str, *args: str, home: Path) -> dict[str, Any]:
    env = {**os.environ, "XDG_CACHE_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_ingest_bench(tmp_path: Path) -> None:
    out = bench("ingest.py", str(DEMO_DOCS), home=tmp_path)
    assert {"files", "chunks", "chunks_per_s", "baseline_chunks_per_s", "ratio", "peak_rss_mb", "stages_s"} <= set(out)
    assert out["files"] == 5 and out["chunks"] > 0 and out["baseline_chunks_per_s"] > 0
    assert set(out["stages_s"]) == {"parse", "chunk", "embed", "bm25", "upsert", "optimize"}


def test_query_bench(tmp_path: Path) -> None:
    out = bench("query.py", "--chunks", "20", "--folder", str(DEMO_DOCS), "--queries", "5", home=tmp_path)
    keys = {"chunks", "hybrid_p50_ms", "hybrid_p95_ms", "baseline_hybrid_p50_ms", "speedup_p50", "bm25_qps"}
    assert keys | {"baseline_bm25_qps", "bm25_speedup", "dense_top10_overlap"} <= set(out)
    assert out["chunks"] >= 20 and 0.0 <= out["dense_top10_overlap"] <= 1.0
    assert out["dense_top10_overlap"] == 1.0  # a small index is searched exactly: the same top 10 as numpy


def test_rerank_bench(tmp_path: Path, tiny_cross_encoder: Path) -> None:
    out = bench("rerank.py", "--model", str(tiny_cross_encoder), "--repeat", "2", home=tmp_path)
    assert {"top20_p50_ms", "top50_p50_ms", "top20_p95_ms", "baseline_top20_p50_ms"} <= set(out)


def test_coldstart_bench(tmp_path: Path) -> None:
    out = bench("coldstart.py", "--repeat", "1", home=tmp_path)
    assert out["first_result_s"] > 0 and out["import_s"] > 0


def _demo_questions(tmp_path: Path) -> Path:
    questions = tmp_path / "questions.tsv"
    lines = (REPO / "bench" / "questions" / "demo_docs.tsv").read_text(encoding="utf-8").splitlines()
    questions.write_text("\n".join(line for line in lines if line.startswith(("demo01", "demo08", "demo15"))) + "\n")
    return questions


def test_whole_file_bm25_bench_runs_beside_ragline(tmp_path: Path) -> None:
    out = bench(
        "wholefile_bm25.py",
        "--folder",
        str(DEMO_DOCS),
        "--queries",
        str(_demo_questions(tmp_path)),
        "--modes",
        "bm25",
        home=tmp_path,
    )
    baseline, ragline = out["whole_file_bm25"], out["ragline"]
    assert baseline["files"] == 5 and set(baseline["ranks"]) == {"demo01", "demo08", "demo15"}
    assert {"success@1", "success@5", "mrr@10"} <= set(baseline["metrics"])
    assert ragline["queries"] == 3 and set(ragline["modes"]) == {"bm25"}


def test_ranking_sweep_and_latency_benches(tmp_path: Path) -> None:
    questions = _demo_questions(tmp_path)
    out = bench("sweep_ranking.py", "--folder", f"{DEMO_DOCS}={questions}", home=tmp_path)
    assert out["settings"] > 100 and out["best"]["mean"] >= out["current_default"]["mean"]
    assert {"fusion", "dense_weight", "document_weight", "query_tf"} <= set(out["best"]["setting"])
    index = next((tmp_path / "ragline" / "eval").glob("folder-demo_docs-*"))
    latency = bench("ranking_latency.py", "--index", str(index), "--queries", "5", home=tmp_path)
    assert set(latency["hybrid"]) == {"plain", "document-aware", "copies kept"} and latency["chunks"] > 0
    assert latency["queries_with_copies_collapsed"] == 0  # the demo folder holds no copies
    pairs = bench("adapt_pairs.py", "--index", str(index), "--out", str(tmp_path / "p.jsonl"), home=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == pairs["written"] == pairs["mined"] > 0 and pairs["negatives"] > 0
    assert all(r["query"] and r["positive"] and r["positive"] not in r["negatives"] for r in rows)
    from pipeline.training.data import load_pairs

    assert len(load_pairs(tmp_path / "p.jsonl").queries) == len({r["query"] for r in rows})  # train-reranker reads it
    access = bench("access_latency.py", "--index", str(index), "--queries", "5", "--groups", "4", home=tmp_path)
    assert set(access["hybrid"]) == {"admin", "biggest_group", "small_group", "five_groups"}
    assert access["hybrid"]["admin"]["readable_share"] == 1.0 and access["documents"] == 5
    assert all(0 < s["readable_share"] <= 1 for s in access["hybrid"].values())
    from pipeline.stores.edge import EdgeStore

    with EdgeStore.open(index) as original:  # a copy was labelled, not the index given
        assert all(state.readers is None for state in original.documents().values())


def test_confidence_fit_reports_each_set_and_mode(tmp_path: Path) -> None:
    questions = REPO / "bench" / "questions" / "demo_docs.tsv"
    out = bench("fit_confidence.py", "--folder", f"{DEMO_DOCS}={questions}", home=tmp_path)
    assert set(out["models"]) == {"hybrid", "dense", "bm25"}
    assert set(out["models"]["hybrid"]["weights"]) == {
        "dense_top",
        "dense_gap",
        "bm25_gap",
        "fused_gap",
        "agree_dense",
        "agree_bm25",
        "overlap",
    }
    (demo,) = out["sets"].values()
    assert demo["hybrid"]["questions"] == 20 and 0.0 <= demo["hybrid"]["first_right"] <= 1.0
    assert out["low_confidence"] == 0.5


def test_noop_sync_bench(tmp_path: Path) -> None:
    out = bench("noop_sync.py", "--repeat", "1", "--baseline", str(REPO), home=tmp_path)
    assert set(out["noop_sync_s"]) == {"now", "baseline"} and out["stats_s"] > 0
    assert all(len(runs) == 1 for runs in out["noop_sync_runs_s"].values())


def test_watch_bench(tmp_path: Path) -> None:
    out = bench("watch_latency.py", "--saves", "2", "--files", "12", home=tmp_path)
    assert out["saves"] == 2 and out["save_to_searchable_s"]["p50"] > 0 and out["errors"] == 0
    burst = out["burst"]
    assert (
        burst["files"] == 12
        and burst["chunks"] >= 12 + 2
        and burst["against_one_clean_sync"]["same_points_texts_and_bm25"]
    )
    assert burst["against_one_clean_sync"]["dense_min_cosine"] > 0.95


def test_time_to_searchable_bench(tmp_path: Path) -> None:
    out = bench(
        "time_to_searchable.py",
        "--folder",
        str(DEMO_DOCS),
        "--queries",
        str(REPO / "bench/questions/demo_docs.tsv"),
        "--poll-s",
        "0.1",
        home=tmp_path,
    )
    assert out["files"] == 5 and out["chunks"] > 5 and out["sync_s"] > 0
    first = out["first_result_s"]
    assert all(
        first[kind] is not None and first[kind] <= out["sync_s"] + 1 for kind in ("bm25", "hybrid", "right_file")
    )
    assert out["chunks_coverage_curve"][-1][1:] == [out["chunks"], 1.0]  # the look after the sync: all embedded
    milestones = out["milestones_s"]
    assert 0 < milestones["first_chunk_written_s"] <= milestones["all_written_bm25_s"] <= milestones["all_embedded_s"]
    assert milestones["all_parsed_s"] <= out["sync_s"]


def test_scale_bench(tmp_path: Path) -> None:
    index = tmp_path / "index"
    cli = [sys.executable, "-c", "from pipeline.faces.cli import main; main()", "--index", str(index)]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    subprocess.run([*cli, "ingest", str(DEMO_DOCS)], check=True, env=env, capture_output=True, timeout=600)
    queries = str(REPO / "bench/questions/demo_docs.tsv")
    out = bench(
        "scale.py",
        "--from",
        str(index),
        "--queries",
        queries,
        "--points",
        "60",
        "--layouts",
        "full,int8-disk",
        "--repeat",
        "1",
        "--work",
        str(tmp_path / "scale"),
        home=tmp_path,
    )
    assert out["real_chunks"] > 5 and [r["layout"] for r in out["runs"]] == ["full", "int8-disk"]
    for run in out["runs"]:
        assert run["points"] == 60 and run["disk_mb"] > 0 and run["peak_rss_mb"] > 0
        assert set(run["latency_ms"]) == {"hybrid", "dense", "bm25"} and run["dense_overlap_at_10"] == 1.0
        assert {"0", "64", "128", "256"} <= set(run["dense_by_hnsw_ef"])
        assert all(ef["overlap_at_10"] == 1.0 for ef in run["dense_by_hnsw_ef"].values())  # 60 points: exact


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Tesseract is not installed (apt install tesseract-ocr)")
def test_ocr_bench(tmp_path: Path) -> None:
    out = bench("ocr.py", "--pages", "1", home=tmp_path)
    assert out["pages"] == 1 and out["pages_per_s"] > 0 and len(out["cer_per_page"]) == 1
    assert out["cer_max"] <= 0.03
