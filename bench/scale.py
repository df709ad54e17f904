"""A million chunks on one machine: build embedded indexes of N chunks and measure them; prints one JSON object.

Points: the real chunks of ``--from`` (an index ragline built: texts, BM25 vectors, dense vectors), then, up to
N, copies of them under new documents (``copy-K/<path>``) whose dense vector is the original's plus Gaussian
noise (``--noise``, renormalised) and whose BM25 vector is the original's. So the collection grows with real
vector geometry and real term statistics (each term's document frequency grows with the copies); the copies
are synthetic, and the output says how many there are.

For each size in ``--points`` and each layout in ``--layouts`` (``full``: float32 vectors in RAM; ``int8``:
int8-quantized copies searched first and rescored; ``int8-disk``: the same with full vectors and payloads on
disk), it reports the build (write and optimize seconds), the index's size on disk, and, from a fresh serving
process: the time to open the index and answer a first search, hybrid / dense / BM25 latency p50 and p95
through ``Ragline.search`` (query embedding included, no reranking) over the questions of ``--queries``, the
process's peak RSS while it answers them, and the dense top-10 overlap with exact search (at the config's
``[index] hnsw_ef`` and at each breadth of ``--hnsw-ef-sweep``, with the dense search's own time).

    python bench/scale.py --from DEBIAN_INDEX --queries ../shared/datasets/debian-dev/queries.tsv \\
        --points 100000,300000,1000000 --layouts full,int8-disk --work /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS = {
    "full": {"quantization": "none", "on_disk": False},
    "int8": {"quantization": "int8", "on_disk": False},
    "int8-disk": {"quantization": "int8", "on_disk": True},
}
BATCH = 2048


def source_points(index: Path) -> tuple[Any, dict[str, Any], list[Any]]:
    """The index's meta, roots and every point."""
    from pipeline.stores.edge import EdgeStore

    with EdgeStore.open(index) as store:
        return store.meta, store.roots(), [p for batch in store.export_points(BATCH) for p in batch]


def grown(points: list[Any], total: int, noise: float, seed: int = 0) -> Iterator[list[Any]]:
    """``points``, then noisy copies under new documents, ``total`` in all, a batch at a time."""
    from pipeline.stages.chunking import chunk_id
    from pipeline.types import document_id

    rng = np.random.default_rng(seed)
    batch: list[Any] = []
    for n in range(total):
        copy, original = divmod(n, len(points))
        point = points[original]
        if copy:
            payload = dict(point.payload)
            payload["source"] = f"copy-{copy}/{payload['source']}"
            payload["document_id"] = document_id(payload["root"], payload["source"])
            vector = np.asarray(point.dense, dtype=np.float32) + rng.normal(0, noise, len(point.dense))
            vector /= np.linalg.norm(vector)
            point = replace(
                point,
                id=chunk_id(payload["document_id"], payload["ordinal"], payload["text"]),
                dense=vector.tolist(),
                payload=payload,
            )
        batch.append(point)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build(
    source: tuple[Any, dict[str, Any], list[Any]], total: int, folder: Path, noise: float, layout: str
) -> dict[str, Any]:
    """A new index of ``total`` points in ``folder`` with ``layout``: seconds to write and optimize, size on disk."""
    from pipeline.config import IndexConfig
    from pipeline.stores.edge import EdgeStore

    meta, roots, points = source
    settings = IndexConfig(path=str(folder), **LAYOUTS[layout])
    meta = replace(meta, quantization="" if settings.quantization == "none" else settings.quantization)
    shutil.rmtree(folder, ignore_errors=True)
    with EdgeStore.open(folder, meta, layout=settings) as store:
        t0 = time.perf_counter()
        for batch in grown(points, total, noise):
            store.import_points(batch)
        t1 = time.perf_counter()
        store.optimize()
        store.flush()
        t2 = time.perf_counter()
        store.save_roots(roots)
    size = sum(f.stat().st_blocks * 512 for f in folder.rglob("*") if f.is_file())  # allocated, not sparse size
    return {"write_s": round(t1 - t0, 1), "optimize_s": round(t2 - t1, 1), "disk_mb": round(size / 2**20, 1)}


def memory_mb() -> dict[str, float]:
    """This process's peak RSS (``VmHWM``; not ``getrusage``, whose ``ru_maxrss`` on Linux survives ``exec``, so
    a serving process would report the builder's peak), and its RSS now split into anonymous memory (heap: what
    the process needs) and file pages (the memory-mapped index: page cache the kernel may take back)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb = {key: int(status[key].split()[0]) for key in ("VmHWM", "RssAnon", "RssFile") if key in status}
    if not kb:  # not Linux: no exec in question
        return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    return {
        "peak_rss_mb": round(kb["VmHWM"] / 1024),
        "rss_anon_mb": round(kb["RssAnon"] / 1024),
        "rss_file_mb": round(kb["RssFile"] / 1024),
    }


def serve(index: Path, queries: Path, layout: dict[str, Any], repeat: int, sweep: list[int]) -> dict[str, Any]:
    """In this (fresh) process: open, answer, and measure. Memory is read when the questions are answered, before
    the overlap check, whose exact searches read every full vector (the bench's work, not serving's)."""
    from pipeline.app import Ragline
    from pipeline.config import parse_config
    from pipeline.eval.folder import load_queries

    questions = [q.text for q in load_queries(queries)]
    t0 = time.perf_counter()
    app = Ragline(parse_config({"index": {"path": str(index), **layout}, "rerank": {"enabled": False}}))
    app.search(questions[0], top_k=10)
    opened = time.perf_counter() - t0
    latency: dict[str, dict[str, float]] = {}
    for mode in ("hybrid", "dense", "bm25"):
        took = []
        for _ in range(repeat):
            for text in questions:
                t = time.perf_counter()
                app.search(text, top_k=10, mode=mode)
                took.append((time.perf_counter() - t) * 1e3)
        cuts = statistics.quantiles(took, n=20)
        latency[mode] = {"p50": round(statistics.median(took), 2), "p95": round(cuts[18], 2)}
    memory = memory_mb()
    store: Any = app.store()
    vectors = [app.embedder.embed_query(text) for text in questions]
    exact = [{h.id for h in store.search(v, None, 10, None, True)[0]} for v in vectors]
    configured, overlap = store.hnsw_ef, {}
    for ef in sorted({configured, *sweep}):  # the dense search breadth: overlap with exact, and its time
        store.hnsw_ef = ef
        took, shared = [], []
        for vector, truth in zip(vectors, exact, strict=True):
            t = time.perf_counter()
            approx = store.search(vector, None, 10, None, False)[0]
            took.append((time.perf_counter() - t) * 1e3)
            shared.append(len({h.id for h in approx} & truth) / max(len(truth), 1))
        overlap[ef] = {"overlap_at_10": round(statistics.mean(shared), 4), "p50_ms": round(statistics.median(took), 2)}
    app.close()
    return {
        "open_and_first_search_s": round(opened, 2),
        "latency_ms": latency,
        **memory,
        "hnsw_ef": configured,
        "dense_overlap_at_10": overlap[configured]["overlap_at_10"],
        "dense_by_hnsw_ef": overlap,
    }


def warm(index: Path) -> None:
    """Export the query encoder once, so that no serving process pays for it (or counts its memory)."""
    from pipeline.app import Ragline
    from pipeline.config import parse_config

    Ragline(parse_config({"index": {"path": str(index)}})).embedder.embed_query("warm up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="An index ragline built: the real chunks.")
    parser.add_argument("--queries", type=Path, required=True, help="Questions (the TSV of `eval --folder`).")
    parser.add_argument("--points", default="100000,300000,1000000")
    parser.add_argument("--layouts", default="full,int8-disk")
    parser.add_argument("--noise", type=float, default=0.02, help="Gaussian noise per dimension of a copy.")
    parser.add_argument("--repeat", type=int, default=3, help="Times each question is asked per mode.")
    parser.add_argument(
        "--hnsw-ef-sweep",
        default="0,64,128,256",
        help="Dense search breadths (0: Qdrant's default) whose overlap with exact search and time are also reported "
        "(dense store search alone, no query embedding); the served searches use the config's [index] hnsw_ef.",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/ragline-scale"))
    parser.add_argument("--keep", action="store_true", help="Keep each built index in --work (else removed).")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the serving process's own mode
    parser.add_argument("--layout", default="full", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sweep = [int(ef) for ef in args.hnsw_ef_sweep.split(",") if ef]
        print(json.dumps(serve(args.serve, args.queries, LAYOUTS[args.layout], args.repeat, sweep)))
        return
    if args.source is None:
        parser.error("--from is required")
    source = source_points(args.source)
    warm(args.source)
    runs = []
    for total in (int(n) for n in args.points.split(",")):
        for name in args.layouts.split(","):
            folder = args.work / f"{name}-{total}"
            built = build(source, total, folder, args.noise, name)
            command = [sys.executable, __file__, "--serve", str(folder), "--layout", name]
            command += ["--queries", str(args.queries), "--repeat", str(args.repeat)]
            command += ["--hnsw-ef-sweep", args.hnsw_ef_sweep]
            served = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            runs.append({"points": total, "layout": name, **LAYOUTS[name], **built, **served})
            print(json.dumps(runs[-1]), file=sys.stderr)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"real_chunks": len(source[2]), "noise": args.noise, "synthetic_note": SYNTHETIC, "runs": runs}))


SYNTHETIC = "beyond real_chunks, points are noisy copies of real ones (dense + N(0, noise) renormalised, same BM25)"


if __name__ == "__main__":
    main()
