"""Ingest speed of a real folder against bare `SentenceTransformer.encode`; prints one JSON object.

ragline syncs DIR into a fresh index (parse in worker processes, chunk, embed,
BM25, upsert); the baseline encodes the very same chunk texts, duplicates
included, with the same loaded model and batch size: what a user's own script
spends on the model alone. Runs alternate (ragline, baseline, ...) and medians
are reported; peak RSS includes the parser worker processes.

    ../shared/corpora/debian-docs.sh /tmp/debian-docs
    python bench/ingest.py /tmp/debian-docs
    python bench/ingest.py /tmp/debian-docs --every 10   # a 10 % sample of the same mix, in minutes
    python bench/ingest.py /tmp/debian-docs --every 50 --backend onnx-int8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Samples this process and its children every 50 ms; yields a dict that gets ``mb`` on exit."""
    import psutil

    me, peak, stop = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            peak[0] = max(peak[0], total)
            stop.wait(0.05)

    result: dict[str, float] = {}
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["mb"] = peak[0] / 2**20


def timed(run: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, peak RSS in MB)."""
    with peak_rss() as rss:
        started = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - started
    return result, seconds, rss["mb"]


def indexed_texts(index: Path) -> list[str]:
    """Every chunk's embedded text (heading path + text), one per chunk, as ragline wrote them."""
    from pipeline.models.embedder import SentenceTransformerEmbedder
    from pipeline.stages.chunking import indexed_text
    from pipeline.stores.edge import EdgeStore
    from pipeline.stores.schema import chunk_from_payload

    tokens = SentenceTransformerEmbedder().tokens
    with EdgeStore.open(index) as store:
        return [
            indexed_text(chunk_from_payload(p.id, p.payload), tokens, 254)
            for batch in store.export_points()
            for p in batch
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=1, help="Alternating runs of each (median reported).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--every", type=int, default=1, help="Index every K-th file only (path order).")
    parser.add_argument("--backend", help="embedding.backend (default: the config's); the same for both sides")
    args = parser.parse_args()

    from pipeline.config import parse_config
    from pipeline.models.embedder import SentenceTransformerEmbedder

    chosen = {"batch_size": args.batch_size, **({"backend": args.backend} if args.backend else {})}
    embedder = SentenceTransformerEmbedder(parse_config({"embedding": chosen}).embedding)
    embedder.embed(["warm up the model before any clock starts"])
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, float]] = []
    texts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ragline-bench-") as scratch:
        folder = args.folder if args.every == 1 else sample(args.folder, args.every, Path(scratch) / "sample")
        for n in range(args.repeat):
            report, seconds, rss = timed(lambda: _ragline(Path(scratch) / f"index-{n}", folder, embedder))
            ours.append({"report": report, "seconds": seconds, "rss": rss})
            if not texts:
                texts = indexed_texts(Path(scratch) / f"index-{n}")
            _, base_seconds, base_rss = timed(lambda: embedder.model.encode(texts, batch_size=args.batch_size))
            theirs.append({"seconds": base_seconds, "rss": base_rss})

    median = sorted(ours, key=lambda r: r["seconds"])[len(ours) // 2]
    report = median["report"]
    chunks = report.chunks_written
    files = report.unchanged + len(report.added) + len(report.updated) + len(report.skipped)
    base_seconds = statistics.median(t["seconds"] for t in theirs)
    print(
        json.dumps(
            {
                "files": files,
                "files_indexed": len(report.added),
                "files_skipped": len(report.skipped),
                "chunks": chunks,
                "distinct_texts": len(set(texts)),
                "seconds": round(median["seconds"], 2),
                "files_per_s": round(files / median["seconds"], 2),
                "chunks_per_s": round(chunks / median["seconds"], 1),
                "baseline_seconds": round(base_seconds, 2),
                "baseline_chunks_per_s": round(len(texts) / base_seconds, 1),
                "ratio": round((chunks / median["seconds"]) / (len(texts) / base_seconds), 3),
                "peak_rss_mb": round(max(r["rss"] for r in ours)),
                "baseline_peak_rss_mb": round(max(t["rss"] for t in theirs)),
                "stages_s": {k: round(v, 2) for k, v in report.stages_s.items()},
                "runs": args.repeat,
                "sample": f"every {args.every}th file" if args.every > 1 else "all files",
                "batch_size": args.batch_size,
                "model": embedder.name,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )


def sample(folder: Path, every: int, into: Path) -> Path:
    """A copy of every ``every``-th file in path order (same relative paths): the folder's mix, smaller."""
    import shutil

    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files[::every]:
        target = into / file.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    return into


def _ragline(index: Path, folder: Path, embedder: Any) -> Any:
    from pipeline.app import Ragline
    from pipeline.config import parse_config

    app = Ragline(parse_config({"index": {"path": str(index)}, "embedding": embedder.config.model_dump()}))
    app.embedder = embedder
    try:
        return app.ingest(folder)
    finally:
        app.close()


if __name__ == "__main__":
    main()
