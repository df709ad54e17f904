"""SIGKILL a real `ragline ingest` at many moments; the next run must repair everything.

The index after repeated kills and one completing run must equal a clean run's:
the same chunk ids, the same BM25 vectors (so the same average length), every
document complete, nothing duplicated. A file rewritten while a sync reads it
is indexed as one whole version, never a torn mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.loader import READ_ATTEMPTS
from pipeline.stores.edge import EdgeStore
from pipeline.sync import WINDOW_BATCHES
from tests.conftest import DEMO_DOCS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FILES = 200
BATCH = 1  # embedding batch of 1: write windows of 32 chunks (WINDOW_BATCHES), so a run has many moments to kill
LONG = 102  # the file (Markdown) with more chunks than a write window

# Runs the real CLI, and SIGKILLs it right after the first write that leaves a document half-written: a moment
# too short to hit from outside now that BM25 writes run ahead of embedding (the half-written rest of a document
# is written as soon as the next window is).
KILL_WHEN_HALF_WRITTEN = """
import os, runpy, signal
from collections import Counter
from pipeline.stores.edge import EdgeStore

written, upsert = Counter(), EdgeStore.upsert

def upsert_then_die_if_half_written(self, chunks, dense, sparse, extra):
    upsert(self, chunks, dense, sparse, extra)
    written.update(chunk.document_id for chunk in chunks)
    if any(written[chunk.document_id] < fields["chunk_count"] for chunk, fields in zip(chunks, extra)):
        os.kill(os.getpid(), signal.SIGKILL)

EdgeStore.upsert = upsert_then_die_if_half_written
runpy.run_module("pipeline.faces.cli", run_name="__main__", alter_sys=True)
"""


def _corpus(folder: Path) -> None:
    """200 files of varied length in three formats, some identical (the dedup path), one longer than a write
    window (so one run at least leaves a document half-written, whenever it is killed)."""
    words = " ".join(p.read_text(encoding="utf-8", errors="ignore") for p in sorted(DEMO_DOCS.glob("*.md"))).split()
    rng = random.Random(7)
    previous = ("", "")
    for n in range(FILES):
        paragraphs = [" ".join(rng.choices(words, k=rng.randint(30, 90))) for _ in range(rng.randint(1, 3))]
        if n == LONG:
            paragraphs = [" ".join(rng.choices(words, k=150)) for _ in range(WINDOW_BATCHES * BATCH + 12)]
        if n % 3 == 0:
            name, text = f"notes/file {n:03d}.md", "\n\n".join(f"## Part {i}\n\n{p}" for i, p in enumerate(paragraphs))
        elif n % 3 == 1:
            name, text = f"pages/page-{n:03d}.html", "".join(f"<p>{p}</p>" for p in paragraphs)
            text = f"<html><body><h1>Page {n}</h1>{text}</body></html>"
        else:
            name, text = f"plain/{n:03d}.txt", "\n\n".join(paragraphs)
        if n % 20 == 19:  # a copy of the previous file under another name
            name, text = f"copies/{n:03d}{Path(previous[0]).suffix}", previous[1]
        previous = (name, text)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _ingest(
    index: Path, folder: Path, *extra: str, runner: tuple[str, ...] = ("-m", "pipeline.faces.cli")
) -> subprocess.Popen[str]:
    config = folder.parent / "ragline.toml"
    config.write_text(f"[embedding]\nbatch_size = {BATCH}\n")
    command = ["--index", str(index), "--config", str(config), "ingest", str(folder), "--progress", "log", *extra]
    return subprocess.Popen(
        [sys.executable, *runner, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _kill_at(index: Path, folder: Path, phase: str, fraction: float, delay: float) -> str:
    """Run an ingest until ``phase`` reaches ``fraction`` of its total, wait ``delay`` s, SIGKILL it
    (phase ``half-written``: the ingest kills itself once a document is half-written)."""
    if phase == "half-written":
        process = _ingest(index, folder, runner=("-c", KILL_WHEN_HALF_WRITTEN))
        _, err = process.communicate(timeout=600)
        assert process.returncode == -signal.SIGKILL, f"no document was ever half-written: {err[-2000:]}"
        progress = [line for line in err.splitlines() if line.partition(" ")[0] in {"parsing", "writing"}]
        return f"half-written after {(progress or ['no progress line'])[-1]}"
    process = _ingest(index, folder)
    assert process.stderr is not None
    seen = ""
    for line in process.stderr:
        name, _, counts = line.strip().partition(" ")
        if name == phase and "/" in counts:
            done, total = (int(x) for x in counts.split("/"))
            if total and done >= fraction * total:
                seen = line.strip()
                break
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the sync ended before the kill moment {phase} {fraction}"
    return seen


def _verify(index: Path) -> dict[str, Any]:
    """``ragline verify --json`` on the index: the oracle that the index matches its folder."""
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.faces.cli", "--index", str(index), "verify", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    found = json.loads(done.stdout)
    assert done.returncode == (0 if found["ok"] else 1), done.stderr
    return dict(found)


def _snapshot(index: Path) -> dict[str, Any]:
    with EdgeStore.open(index) as store:
        points = [p for batch in store.export_points() for p in batch]
        return {
            "ids": sorted(p.id for p in points),
            "count": store.count(),
            "documents": store.documents(),
            "sparse": {p.id: p.sparse for p in points},
            "dense": {p.id: p.dense for p in points},
            "texts": [(p.payload["document_id"], p.payload["text"]) for p in points],
            "n_tokens": sum(int(p.payload["n_tokens"]) for p in points),
        }


def test_sigkill_at_many_moments_then_resume_equals_a_clean_run(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    _corpus(folder)
    clean_index, crashed_index = tmp_path / "clean", tmp_path / "crashed"

    clean = _ingest(clean_index, folder, "--json")
    out, err = clean.communicate(timeout=600)
    assert clean.returncode == 0, err
    clean_report = json.loads(out)
    assert clean_report["added"] == FILES and clean_report["chunks_written"] > 8 * WINDOW_BATCHES * BATCH

    # Each run starts where the killed ones left off; the moments cover every phase.
    moments = [
        ("half-written", 0.0, 0.0),  # first, while every document is still to write (LONG spans two windows)
        ("parsing", 0.0, 0.0),
        ("parsing", 0.5, 0.0),
        ("writing", 0.0, 0.05),  # inside the first upsert (BM25 only: writing runs ahead of embedding)
        ("writing", 0.2, 0.0),  # between batches: some documents complete, one half written
        ("embedding", 0.0, 0.3),  # inside the first embedding window
        ("writing", 0.3, 0.02),
        ("writing", 0.0, 0.0),
        ("writing", 0.3, 0.1),
        ("writing", 0.0, 0.01),
        ("writing", 1.0, 0.0),  # every chunk searchable by BM25, most without dense vectors yet
        ("embedding", 0.3, 0.0),  # the next run has nothing to parse: killed a third into embedding those
    ]
    seen, half_written = [], []
    for moment in moments:
        seen.append(_kill_at(crashed_index, folder, *moment))
        with EdgeStore.open(crashed_index) as store:
            half_written.append(sum(not s.complete for s in store.documents().values()))
    assert len(seen) >= 10 and all(seen)
    assert half_written[0] >= 1, "a kill right after a half-written write left no half-written document"
    incomplete = half_written[-1]
    killed = _verify(crashed_index)
    assert not killed["ok"]
    assert sum(d["kind"] == "incomplete" for d in killed["differences"]) == incomplete
    kinds = {d["kind"] for d in killed["differences"]}
    assert "unembedded" in kinds and kinds <= {"incomplete", "missing", "unembedded"}
    with EdgeStore.open(crashed_index) as store:
        documents, marked = store.documents(), store.awaiting_dense(clean_report["chunks_written"])
        assert len(marked) == store.unembedded()
    # A complete document's marked points are embedded by the resume's backfill; a half-written document is
    # rewritten whole (its points embedded as new ones), so its marked points are not the backfill's to count.
    waiting = sum(documents[chunk.document_id].complete for chunk in marked)
    assert 0 < waiting < clean_report["chunks_written"]

    resumed = _ingest(crashed_index, folder, "--json")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    report = json.loads(out)
    assert report["skipped"] == [] and report["removed"] == 0
    assert report["added"] + report["updated"] + report["unchanged"] == FILES
    assert report["updated"] >= incomplete  # every half-written document was rewritten
    assert report["backfilled"] == waiting  # and every point left without its dense vector embedded, once

    got, want = _snapshot(crashed_index), _snapshot(clean_index)
    assert got["count"] == want["count"] == clean_report["chunks_written"]
    assert got["ids"] == want["ids"]
    assert all(state.complete for state in got["documents"].values())
    assert {d: s.content_hash for d, s in got["documents"].items()} == {
        d: s.content_hash for d, s in want["documents"].items()
    }
    assert len(got["documents"]) == FILES
    duplicates = [key for key, n in Counter(got["texts"]).items() if n > 1]
    assert duplicates == []
    repaired, clean_check = _verify(crashed_index), _verify(clean_index)
    assert repaired["ok"] and clean_check["ok"] and repaired["differences"] == []
    assert (
        (repaired["documents"], repaired["points"])
        == (clean_check["documents"], clean_check["points"])
        == (
            FILES,
            got["count"],
        )
    )
    # BM25 statistics: the same token counts and the same saturated term weights on every point.
    assert got["n_tokens"] == want["n_tokens"]
    for point_id, vector in want["sparse"].items():
        assert got["sparse"][point_id].indices == vector.indices
        assert got["sparse"][point_id].values == pytest.approx(vector.values, rel=1e-6)
    # Dense vectors: the same text embedded, whether in the sync that chunked it or in a later one's backfill.
    for point_id, vector in want["dense"].items():
        assert len(got["dense"][point_id]) == len(vector) > 0
        assert got["dense"][point_id] == pytest.approx(vector, abs=1e-4)

    print(
        f"crash safety: {FILES} files, {got['count']} chunks, {len(seen)} SIGKILLs at {seen}; "
        f"half-written documents after each kill: {half_written}; {report['updated']} rewritten by the resume"
    )
    again = _ingest(crashed_index, folder, "--json")
    out, _ = again.communicate(timeout=600)
    assert (json.loads(out)["chunks_written"], json.loads(out)["backfilled"]) == (0, 0)


def test_a_file_rewritten_during_a_sync_is_indexed_as_one_version(tmp_path: Path, embedder: Any) -> None:
    from tests.conftest import make_app

    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(40):
        (folder / f"other-{n:02d}.txt").write_text(f"Background note {n} about espresso and milk foam.\n" * 30)
    target = folder / "moving.txt"
    versions = [f"Version {name} says the limit is {i * 111} units. " * 400 for i, name in enumerate("ABCDEFGH")]
    target.write_text(versions[0])
    stop = threading.Event()

    def rewrite() -> None:  # in place and slowly, so a reader can catch a half-written file
        n = 0
        while not stop.is_set():
            n += 1
            data = versions[n % len(versions)].encode()
            with target.open("wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                time.sleep(0.002)
                handle.write(data[len(data) // 2 :])

    writer = threading.Thread(target=rewrite)
    app = make_app(tmp_path / "index", embedder)
    writer.start()
    try:
        report = app.ingest(folder)
    finally:
        stop.set()
        writer.join()
    skipped = {s.source: s.reason for s in report.skipped}
    if "moving.txt" in skipped:  # caught mid-write, or just after the truncation: nothing torn is indexed
        assert skipped["moving.txt"] in {
            "empty file",
            f"the file kept changing while it was read ({READ_ATTEMPTS} attempts)",
        }
    else:
        state, texts = _indexed(app)
        assert state.complete
        assert len(set(re.findall(r"Version (\w)", " ".join(texts)))) == 1, "chunks of two versions were mixed"

    app.ingest(folder)  # quiet now: the next sync brings the file's final version
    state, texts = _indexed(app)
    assert state.complete and state.content_hash == hashlib.sha256(target.read_bytes()).hexdigest()
    assert set(re.findall(r"Version (\w)", " ".join(texts))) == {target.read_text().split()[1]}
    app.close()


def _indexed(app: Any) -> tuple[Any, list[str]]:
    store = app.store()
    [state] = [s for s in store.documents().values() if s.source == "moving.txt"]
    texts = [p.payload["text"] for batch in store.export_points() for p in batch if p.payload["source"] == "moving.txt"]
    return state, texts
