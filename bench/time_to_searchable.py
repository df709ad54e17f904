"""How long a folder being synced for the first time takes to answer its first search, and to be indexed
whole; prints one JSON object.

A sync of ``--folder`` into a new index runs in a thread (as an ingest job or the watcher runs it) while this
thread searches the same index every ``--poll-s`` seconds, in BM25 and in hybrid mode, with the questions of
``--queries`` (or the folder's first file name), and samples how many chunks are written and the share with
dense vectors (``coverage``). Reported: seconds to the first search with a result (each mode), to the first
question whose right file is in the first 10 (with ``--queries``); from the sync's own progress, seconds to the
first chunk written, to every file parsed, to every chunk written (all searchable by BM25) and to every chunk
embedded (full hybrid coverage); the whole sync; and the curves of chunks written and coverage.

    python bench/time_to_searchable.py --folder /work/debian-docs --queries ../shared/datasets/debian-dev/queries.tsv
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.app import Ragline
from pipeline.config import parse_config
from pipeline.eval.folder import file_stem, load_queries
from pipeline.stores import dense_coverage


def probes(folder: Path, queries: Path | None) -> list[tuple[str, frozenset[str]]]:
    """(question, right file stems) pairs to search with; without questions, the first file's name."""
    if queries is not None:
        return [(q.text, q.stems) for q in load_queries(queries)]
    first = next(p for p in sorted(folder.rglob("*")) if p.is_file())
    return [(file_stem(first.name).replace("-", " ").replace("_", " "), frozenset({file_stem(first.name)}))]


def watch(
    app: Ragline, asked: list[tuple[str, frozenset[str]]], done: threading.Event, poll_s: float
) -> dict[str, Any]:
    """Search while the sync runs; the first time each kind of answer appears, and the chunks written."""
    started = time.perf_counter()
    first: dict[str, float | None] = {"bm25": None, "hybrid": None, "right_file": None}
    curve: list[tuple[float, int]] = []
    while True:
        finished = done.is_set()  # one more look after the sync ends, so a fast sync is seen whole
        now = round(time.perf_counter() - started, 1)
        try:
            store = app.store(check_model=False)  # two counts: a poll must not take a core from the sync
            curve.append((now, store.count(), round(dense_coverage(store), 4)))
            for mode in ("bm25", "hybrid"):
                if first[mode] is None and app.search(asked[0][0], top_k=1, mode=mode, rerank=False).results:
                    first[mode] = now
            if first["right_file"] is None:
                for text, stems in asked:
                    found = app.search(text, top_k=10, rerank=False).results
                    if any(file_stem(r.chunk.source) in stems for r in found):
                        first["right_file"] = now
                        break
        except Exception:  # noqa: BLE001 - no index yet: the sync creates it with its first write
            pass
        if finished:
            break
        done.wait(poll_s)
    return {"first_result_s": first, "chunks_coverage_curve": curve[:: max(1, len(curve) // 60)]}


class Milestones:
    """The sync's progress callback: when its first chunk was written, and when each phase was last complete."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first_written: float | None = None
        self.complete: dict[str, float] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = round(time.perf_counter() - self.started, 1)
        if phase == "writing" and done and self.first_written is None:
            self.first_written = now
        if total and done == total:
            self.complete[phase] = now

    def report(self) -> dict[str, float | None]:
        return {
            "first_chunk_written_s": self.first_written,
            "all_parsed_s": self.complete.get("parsing"),
            "all_written_bm25_s": self.complete.get("writing"),
            "all_embedded_s": self.complete.get("embedding"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--queries", type=Path, default=None)
    parser.add_argument("--index", type=Path, default=None, help="Where to build (default: a temporary folder).")
    parser.add_argument("--poll-s", type=float, default=1.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        index = args.index or Path(scratch) / "index"
        app = Ragline(parse_config({"index": {"path": str(index)}, "rerank": {"enabled": False}}))
        app.warm_up()  # the model loads before the clock starts, as in a running server
        done = threading.Event()
        result: dict[str, Any] = {}

        milestones = Milestones()

        def sync() -> None:
            t0 = time.perf_counter()
            try:
                report = app.ingest(args.folder, progress=milestones)
                result.update(files=len(report.added), chunks=report.chunks_written, stages_s=report.stages_s)
            finally:
                result["sync_s"] = round(time.perf_counter() - t0, 1)
                done.set()

        worker = threading.Thread(target=sync)
        worker.start()
        polled = watch(app, probes(args.folder, args.queries), done, args.poll_s)
        worker.join()
        backend = app.config.embedding.backend
        app.close()
    out = {"folder": str(args.folder), "backend": backend, **result, "milestones_s": milestones.report(), **polled}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
