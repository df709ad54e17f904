"""First-stage query latency of document-aware ranking beside plain fusion, on one index; prints one JSON object.

Document evidence and the per-document cap need each candidate's document id, one payload field per
candidate. Both rankings run on the same index, query by query in turn (so both see the same caches), with
no query cache: ``plain`` is fusion alone as before issue 14 (no document ids fetched, no evidence, no cap),
``document-aware`` is the configured ranking. Queries are the opening words of sampled chunks.

    python bench/ranking_latency.py --index ~/.cache/ragline/eval/folder-debian-docs-... --config int8.toml
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from pipeline.app import Ragline
from pipeline.config import load_config, with_index
from pipeline.retrieval import HybridRetriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--config")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    config = with_index(load_config(args.config), args.index)
    plain = config.retrieval.model_copy(update={"document_weight": 0.0, "max_per_document": 0})
    with Ragline(config) as app:
        store = app.store()
        ids = [p.id for batch in store.export_points(batch=4096) for p in batch]
        sample = random.Random(0).sample(ids, args.queries)
        queries = [" ".join(c.text.split()[:8]) for c in store.chunks(sample).values()]
        retrievers = {
            "plain": HybridRetriever(store, app.embedder, plain, cache_size=0),
            "document-aware": HybridRetriever(store, app.embedder, config.retrieval, cache_size=0),
        }
        for retriever in retrievers.values():
            retriever.retrieve("warm up")
        times: dict[str, list[float]] = {name: [] for name in retrievers}
        for query in queries:
            for name, retriever in retrievers.items():
                started = time.perf_counter()
                retriever.retrieve(query)
                times[name].append((time.perf_counter() - started) * 1e3)
        chunks = store.count()
    summary = {
        name: {"p50_ms": round(float(np.percentile(t, 50)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2)}
        for name, t in times.items()
    }
    ratio = summary["document-aware"]["p50_ms"] / summary["plain"]["p50_ms"]
    settings = config.retrieval.model_dump(mode="json")
    print(
        json.dumps(
            {
                "chunks": chunks,
                "queries": len(queries),
                "hybrid": summary,
                "p50_ratio": round(ratio, 3),
                "retrieval": settings,
            }
        )
    )


if __name__ == "__main__":
    main()
