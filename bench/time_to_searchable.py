"""How long a folder being synced for the first time takes to answer its first search, and to be indexed
whole; prints one JSON object.

A sync of ``--folder`` into a new index runs in a thread (as an ingest job or the watcher runs it) while this
thread searches the same index every ``--poll-s`` seconds, in BM25 and in hybrid mode, with the questions of
``--queries`` (or the folder's first file name), and samples how many chunks are written. Reported: seconds to
the first search with a result (each mode), to the first question whose right file is in the first 10 (with
``--queries``), the whole sync, and the written-chunks curve.

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
            curve.append((now, app.store(check_model=False).count()))
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
    return {"first_result_s": first, "chunks_written_curve": curve[:: max(1, len(curve) // 60)]}


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

        def sync() -> None:
            t0 = time.perf_counter()
            try:
                report = app.ingest(args.folder)
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
    print(json.dumps({"folder": str(args.folder), "backend": backend, **result, **polled}))


if __name__ == "__main__":
    main()
