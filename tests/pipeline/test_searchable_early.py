"""A sync makes documents searchable by BM25 before their dense vectors exist, and says how far embedding is.

The real embedder, a real Qdrant Edge index; the progress callback searches the index the moment the first
chunks are written, before the first embedding window has run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.app import Ragline
from pipeline.faces.jobs import Job
from pipeline.faces.render import job_dict, search_dict
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, make_app

pytestmark = pytest.mark.integration

QUESTION = "How often should I descale the espresso machine?"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    for n in range(30):  # enough chunks for several embedding windows of 4 batches of 1
        (folder / f"notes/note-{n:02d}.md").parent.mkdir(exist_ok=True)
        (folder / f"notes/note-{n:02d}.md").write_text(
            f"# Note {n}\n\nThe grinder setting {n} suits a {n * 3} second shot of espresso.\n\n"
            f"## Cleaning\n\nRinse the portafilter after shot {n} and wipe the steam wand.\n",
            encoding="utf-8",
        )
    return folder


def test_documents_are_found_by_bm25_before_they_are_embedded(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeline.sync.WINDOW_BATCHES", 4)  # small windows: many moments between them
    folder = _folder(tmp_path)
    app = make_app(tmp_path / "index", embedder, embedding={"batch_size": 1})
    seen: dict[str, Any] = {}
    phases: list[tuple[str, int, int]] = []

    def progress(phase: str, done: int, total: int) -> None:
        phases.append((phase, done, total))
        if phase == "writing" and done and "bm25" not in seen:  # the first chunks are written, none embedded
            seen["bm25"] = app.search(QUESTION, mode="bm25")
            seen["hybrid"] = app.search(QUESTION, mode="hybrid")
            seen["dense"] = app.search(QUESTION, mode="dense")
            seen["stats"] = app.stats()

    report = app.ingest(folder, progress=progress)
    assert report.chunks_written > 16 and report.backfilled == 0

    bm25, hybrid, dense, stats = seen["bm25"], seen["hybrid"], seen["dense"], seen["stats"]
    assert bm25.results and hybrid.results and not dense.results
    assert bm25.coverage == hybrid.coverage == stats["coverage"] == 0.0
    assert all(r.dense is None and r.bm25 is not None for r in hybrid.results)
    assert any("0% of the chunks have dense vectors so far" in n for n in hybrid.notices)
    assert not any("dense vectors" in n for n in bm25.notices)  # BM25 alone misses nothing
    assert search_dict(hybrid)["coverage"] == 0.0

    # Writing runs ahead of embedding: every chunk was written before the last one was embedded.
    written = [i for i, (phase, done, total) in enumerate(phases) if phase == "writing" and done == total]
    embedded = [i for i, (phase, done, total) in enumerate(phases) if phase == "embedding" and done == total]
    assert written and embedded and written[0] < embedded[0]

    after = app.search(QUESTION, mode="hybrid")
    assert after.coverage == 1.0 and not any("dense vectors" in n for n in after.notices)
    assert after.results[0].dense is not None and app.search(QUESTION, mode="dense").results
    assert app.stats()["coverage"] == 1.0 and app.store().unembedded() == 0
    app.close()


def test_an_ingest_job_reports_its_coverage(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    job = Job(id="j", source="docs")
    assert job_dict(job)["progress"]["coverage"] is None  # nothing written yet
    app: Ragline = make_app(tmp_path / "index", embedder)
    from pipeline.faces.jobs import Jobs

    jobs = Jobs(app)
    try:
        job = jobs.submit("docs", str(_folder(tmp_path)))
        jobs.shutdown()  # waits for the job
    finally:
        app.close()
    assert job.status == "done" and job.written == job.embedded == job.report.chunks_written > 0  # type: ignore[union-attr]
    assert job_dict(job)["progress"]["coverage"] == 1.0


def test_bm25_keeps_up_with_parsing_when_embedding_lags_far_behind(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a slow machine a window takes many seconds to embed; the documents parsed meanwhile must not wait for
    embedding to be written for BM25 (they did: one window of them per window embedded)."""
    monkeypatch.setattr("pipeline.sync.WINDOW_BATCHES", 4)
    monkeypatch.setattr("pipeline.sync.DRAIN_S", 0.0)  # embed whenever a window is full, as a slow machine does
    real = embedder.embed

    def slow(texts: list[str]) -> Any:  # the real model, a machine several times slower
        time.sleep(0.5)
        return real(texts)

    monkeypatch.setattr(embedder, "embed", slow)
    app = make_app(tmp_path / "index", embedder, embedding={"batch_size": 1})
    phases: list[tuple[str, int, int]] = []
    report = app.ingest(_folder(tmp_path), progress=lambda *event: phases.append(event))
    app.close()

    chunks = report.chunks_written
    all_written = next(i for i, (phase, done, _) in enumerate(phases) if phase == "writing" and done == chunks)
    embedded = max((done for phase, done, _ in phases[:all_written] if phase == "embedding"), default=0)
    assert chunks > 32 and embedded <= chunks // 2, (embedded, chunks)
