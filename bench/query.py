"""Query latency at scale against the naive stack; prints one JSON object.

The index holds N chunks of real text: the first files of a folder (by default
the Debian documentation folder of ``../shared/corpora/debian-docs.sh``), parsed
and chunked by ragline. It is built once into ``~/.cache/ragline/bench/`` with
embeddings cached on disk, so reruns take minutes. Queries are the opening words
of sampled chunks. ragline and the baseline (rank-bm25 ``BM25Okapi`` + numpy
brute-force cosine + the same fusion in Python) alternate query by query; then each
runs the same queries alone (``*_alone_*``: what a process serving only queries sees,
its model and index still in the CPU caches). Both
embed every query (no query cache): ragline through its query encoder, the baseline with
sentence-transformers. ``--build-backend onnx-int8`` embeds the index's chunks 2.4x
faster when it is first built (vector values do not change search latency; queries
stay fp32). Dense top-10 overlap with brute force counts a hit when its brute-force
score reaches the 10th best: duplicate chunks (one text in several files) tie exactly,
and either copy is a right answer; ``dense_top10_id_overlap`` compares ids alone.

    python bench/query.py --chunks 100000 --folder /tmp/debian-docs
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TOP_K = 10
# PyTorch's OpenMP threads spin for a while after each baseline call, taking the cores from whichever call
# comes next (ragline's too); passive waiting measures each side's own work. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SERVE = """
import json, sys
from pipeline.app import Ragline
from pipeline.config import parse_config
settings, queries = json.loads(sys.stdin.read())
app = Ragline(parse_config(settings))
for query in queries:
    app.retriever.retrieve(query, top_k=10)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report the forking bench's size
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) // 1024, "torch" in sys.modules)
"""


def serving_rss(settings: dict[str, Any], queries: list[str]) -> tuple[int, bool]:
    """Peak RSS (MB) of a new process that opens the index and answers ``queries``; whether it imported torch."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", SERVE], input=json.dumps([settings, queries]), capture_output=True, text=True, check=True
    )
    mb, torch = run.stdout.split()[-2:]
    return int(mb), torch == "True"


def collect_documents(folder: Path, chunks: int, config: Any, embedder: Any) -> list[Any]:
    """Documents from the folder's files in path order, until they hold ``chunks`` chunks.

    Files are parsed 64 at a time, so a folder far larger than needed is never parsed whole."""
    from connectors import FolderSource
    from connectors.parse_pool import parse_files
    from pipeline.stages.chunking import chunk

    scan = FolderSource(folder, include=config.source.include, exclude=config.source.exclude).scan()
    files = sorted(scan.files, key=lambda f: f.source)
    kept: list[Any] = []
    total = 0
    for begin in range(0, len(files), 64):
        group = [(f, None) for f in files[begin : begin + 64]]
        parsed = [p.document for p in parse_files(group, timeout_s=120) if p.document]
        for document in sorted(parsed, key=lambda d: d.source):
            if total >= chunks:
                return kept
            kept.append(document)
            total += len(chunk(document, config.chunking, embedder.tokens))
        print(f"parsed {min(begin + 64, len(files))}/{len(files)} files: {total} chunks", flush=True)
    if total < chunks:
        raise SystemExit(f"{folder} holds only {total} chunks; --chunks asks for {chunks}")
    return kept


def build_index(folder: Path, chunks: int, cache: Path, backend: str) -> Path:
    """The index, built once; ``backend`` embeds its chunks (vector values do not change search latency)."""
    from pipeline.app import Ragline
    from pipeline.config import parse_config
    from pipeline.models.vector_cache import CachedEmbedder

    listing = hashlib.sha256("\n".join(sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))).encode())
    suffix = "" if backend == "torch" else f"-{backend}"
    index = cache / "bench" / f"query-{chunks}-{listing.hexdigest()[:12]}{suffix}"
    done = index / "bench-built.json"
    if done.exists():
        return index
    config = parse_config(
        {"index": {"path": str(index)}, "rerank": {"enabled": False}, "embedding": {"backend": backend}}
    )
    app = Ragline(config, CachedEmbedder(config.embedding, cache / "embeddings.sqlite"))
    documents = collect_documents(folder, chunks, config, app.embedder)
    report = app.ingest_documents(documents, folder.resolve().as_uri(), progress=True)
    app.close()
    done.write_text(json.dumps({"chunks": report.chunks_written, "seconds": report.seconds, "backend": backend}))
    print(f"built {index}: {report.chunks_written} chunks in {report.seconds:.0f} s", flush=True)
    return index


def percentile(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values), q)), 3)


def clock(run: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = run()
    return result, (time.perf_counter() - started) * 1e3


class Baseline:
    """What a user would write: rank-bm25 over the same tokens, numpy cosine, fusion in Python."""

    def __init__(self, ids: list[str], texts: list[str], dense: np.ndarray, config: Any) -> None:
        from rank_bm25 import BM25Okapi

        from pipeline.stages import bm25

        self.ids, self.dense, self.config = ids, dense, config
        self.tokenize = bm25.tokenize
        self.bm25 = BM25Okapi([bm25.tokenize(t) for t in texts], k1=config.bm25.k1, b=config.bm25.b)

    def bm25_top(self, query: str, k: int) -> list[tuple[str, float]]:
        scores = self.bm25.get_scores(self.tokenize(query))
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top]

    def dense_top(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        scores = self.dense @ vector
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top]

    def hybrid(self, query: str, embed: Callable[[str], np.ndarray]) -> list[str]:
        from pipeline.retrieval import fuse
        from pipeline.stores.base import Hit

        depth = self.config.retrieval.candidates
        dense = [Hit(i, s) for i, s in self.dense_top(embed(query), depth)]
        sparse = [Hit(i, s) for i, s in self.bm25_top(query, depth)]
        retrieval = self.config.retrieval
        fused = fuse(
            dense, sparse, retrieval.fusion, retrieval.rrf_k, retrieval.dense_weight, TOP_K, retrieval.min_dense_range
        )
        return [f.id for f in fused]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/debian-docs"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=None, help="Default: ~/.cache/ragline")
    parser.add_argument(
        "--build-backend",
        choices=("torch", "onnx-int8"),
        default="torch",
        help="Backend that embeds the index's chunks (once); queries always use the default torch fp32",
    )
    parser.add_argument("--backend", choices=("torch", "onnx-int8"), default="torch", help="ragline's query backend")
    parser.add_argument("--candidates", type=int, default=400, help="Candidates per side, both stacks (default 400)")
    args = parser.parse_args()

    import psutil

    from pipeline.app import Ragline
    from pipeline.config import cache_home, parse_config
    from pipeline.filters import SearchFilter
    from pipeline.retrieval import HybridRetriever

    index = build_index(args.folder, args.chunks, args.cache or cache_home(), args.build_backend)
    settings: dict[str, Any] = {"index": {"path": str(index)}, "rerank": {"enabled": False}}
    settings.update(embedding={"backend": args.backend}, retrieval={"candidates": args.candidates})
    app = Ragline(parse_config(settings))
    store = app.store()
    ids, texts, vectors, exts = [], [], [], []
    for batch in store.export_points(batch=2048):
        for p in batch:
            ids.append(p.id)
            texts.append(p.payload["text"])
            vectors.append(p.dense)
            exts.append(str(p.payload.get("ext")))
    dense = np.asarray(vectors, dtype=np.float32)
    baseline = Baseline(ids, texts, dense, app.config)
    rng = random.Random(0)
    queries = [" ".join(texts[i].split()[:8]) for i in rng.sample(range(len(texts)), args.queries)]
    from sentence_transformers import SentenceTransformer

    naive_model = SentenceTransformer(app.embedder.path, device="cpu")

    def embed_one(q: str) -> np.ndarray:
        """The baseline's query embedding: what a user would write."""
        return np.asarray(naive_model.encode([q], normalize_embeddings=True)[0])

    # Fusion alone, as the baseline does it: no document evidence or cap (bench/ranking_latency.py measures those).
    plain = app.config.retrieval.model_copy(update={"document_weight": 0.0, "max_per_document": 0})
    retriever = HybridRetriever(store, app.embedder, plain, 0)  # 0: no query cache
    exact = HybridRetriever(store, app.embedder, plain.model_copy(update={"exact": True}), 0)
    common_ext = max(set(exts), key=exts.count)
    where = SearchFilter(file_types=(common_ext,))
    embed_one("warm up")
    # The baseline's 100k BM25 dicts would make every full garbage collection walk them, in whichever
    # side's call it falls: set-up objects are frozen out of the collector, for both sides alike.
    gc.collect()
    gc.freeze()
    _ = app.embedder.model  # loading it writes the ONNX query encoder once, if this machine has none yet
    retriever.retrieve(queries[0], top_k=TOP_K)

    times: dict[str, list[float]] = {
        k: []
        for k in (
            "hybrid",
            "hybrid_filtered",
            "dense",
            "dense_filtered",
            "bm25",
            "bm25_filtered",
            "baseline_hybrid",
            "baseline_bm25",
            "baseline_dense",
        )
    }
    overlap, overlap_hnsw, id_overlap = [], [], []
    stages: dict[str, list[float]] = {}
    position = {cid: i for i, cid in enumerate(ids)}
    rss_peak = psutil.Process().memory_info().rss
    for query in queries:
        for mode in ("hybrid", "dense", "bm25"):
            got, ms = clock(lambda: retriever.retrieve(query, top_k=TOP_K, mode=mode))
            times[mode].append(ms)
            if mode == "hybrid":
                for stage, stage_ms in got.timings_ms.items():
                    stages.setdefault(stage, []).append(stage_ms)
            if mode == "dense":
                hnsw_dense = {r.chunk.id for r in got.results}
                exact_dense = {r.chunk.id for r in exact.retrieve(query, top_k=TOP_K, mode="dense").results}
            _, ms = clock(lambda: retriever.retrieve(query, top_k=TOP_K, mode=mode, where=where))
            times[f"{mode}_filtered"].append(ms)
        _, ms = clock(lambda: baseline.hybrid(query, embed_one))
        times["baseline_hybrid"].append(ms)
        _, ms = clock(lambda: baseline.bm25_top(query, TOP_K))
        times["baseline_bm25"].append(ms)
        vector = embed_one(query)
        brute, ms = clock(lambda: baseline.dense_top(vector, TOP_K))
        times["baseline_dense"].append(ms)
        # Duplicate chunks (the same text in several files) tie exactly: a hit counts when its brute-force
        # score reaches the 10th best (1e-5: the two sides embed the query with different runtimes).
        scores, tenth = dense @ vector, brute[-1][1] - 1e-5
        overlap.append(sum(scores[position[i]] >= tenth for i in exact_dense) / TOP_K)
        overlap_hnsw.append(sum(scores[position[i]] >= tenth for i in hnsw_dense) / TOP_K)
        id_overlap.append(len({i for i, _ in brute} & exact_dense) / TOP_K)
        rss_peak = max(rss_peak, psutil.Process().memory_info().rss)

    # What a process that only serves queries sees: no baseline call between two searches to evict the
    # model's weights and the index from the CPU caches.
    alone = [clock(lambda: retriever.retrieve(query, top_k=TOP_K))[1] for query in queries]
    baseline_alone = [clock(lambda: baseline.hybrid(query, embed_one))[1] for query in queries]
    bm25_ms = times["bm25"]
    query_encoder = f"ONNX ({args.backend})" if app.embedder.query_encoder else "sentence-transformers"
    app.close()  # the serving process below must take the index's lock
    serving_mb, serving_torch = serving_rss(settings, queries)
    print(
        json.dumps(
            {
                "chunks": len(ids),
                "queries": len(queries),
                **{f"{k}_p{q}_ms": percentile(v, q) for k, v in times.items() for q in (50, 95)},
                "hybrid_alone_p50_ms": percentile(alone, 50),
                "hybrid_alone_p95_ms": percentile(alone, 95),
                "baseline_hybrid_alone_p50_ms": percentile(baseline_alone, 50),
                "speedup_alone_p50": round(percentile(baseline_alone, 50) / percentile(alone, 50), 1),
                "hybrid_stages_p50_ms": {k: percentile(v, 50) for k, v in stages.items()},
                "speedup_p50": round(percentile(times["baseline_hybrid"], 50) / percentile(times["hybrid"], 50), 1),
                "bm25_qps": round(1e3 / float(np.mean(bm25_ms)), 1),
                "baseline_bm25_qps": round(1e3 / float(np.mean(times["baseline_bm25"])), 2),
                "bm25_speedup": round(float(np.mean(times["baseline_bm25"])) / float(np.mean(bm25_ms)), 1),
                "dense_top10_overlap": round(float(np.mean(overlap)), 4),
                "dense_top10_overlap_hnsw": round(float(np.mean(overlap_hnsw)), 4),
                "dense_top10_id_overlap": round(float(np.mean(id_overlap)), 4),
                "filter": f"file type {common_ext} ({exts.count(common_ext) / len(exts):.0%} of chunks)",
                "peak_rss_mb": serving_mb,
                "serving_imports_torch": serving_torch,
                "bench_process_peak_rss_mb": round(rss_peak / 2**20),
                "query_encoder": query_encoder,
                "candidates": args.candidates,
                "index": str(index),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )


if __name__ == "__main__":
    main()
