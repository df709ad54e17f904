"""First-stage query latency of document-aware ranking beside plain fusion, on one index; prints one JSON object.

Document evidence, the per-document cap and the confidence need the documents of the first candidates: read
off the chunk ids, or in an index from before they held them, a payload read each. Both run on the same
index, query by query in turn, each going first every other query (so both see the same caches),
with no query cache: ``plain`` is the search as it was before issue 14 (embed, both lists, fusion, the
payloads of the ``top_k`` results; no documents, evidence, cap or confidence), ``document-aware`` is
``HybridRetriever`` with the configured ranking, and ``copies kept`` the same with ``collapse_copies`` off
(copies of a result's text are then results of their own; on, their places are refilled from below, which
may read payloads twice). Queries are the opening words of sampled chunks.

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
from pipeline.retrieval import HybridRetriever, fuse
from pipeline.stages.bm25 import query_vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--config")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--warm",
        action="store_true",
        help="read every payload once first, as a server that has run a while has them in the page cache",
    )
    args = parser.parse_args()
    config = with_index(load_config(args.config), args.index)
    with Ragline(config) as app:
        store = app.store()
        ids = [p.id for batch in store.export_points(batch=4096) for p in batch]
        if args.warm:
            for batch in store.all_chunks():
                del batch
        sample = random.Random(0).sample(ids, args.queries)
        queries = [" ".join(c.text.split()[:8]) for c in store.chunks(sample).values()]
        retrieval = config.retrieval

        def plain(query: str) -> None:
            dense, sparse = store.search(
                app.embedder.embed_query(query),
                query_vector(query, tokenizer=store.meta.tokenizer),
                retrieval.candidates,
            )
            fused = fuse(dense, sparse, retrieval.fusion, retrieval.rrf_k, retrieval.dense_weight, retrieval.top_k)
            store.chunks([f.id for f in fused])

        collapsed: list[int] = []
        aware = HybridRetriever(store, app.embedder, retrieval, cache_size=0)

        def document_aware(query: str) -> None:
            collapsed.append(sum(len(r.copies) for r in aware.retrieve(query).results))

        kept = retrieval.model_copy(update={"collapse_copies": False})
        retrievers = {
            "plain": plain,
            "document-aware": document_aware,
            "copies kept": HybridRetriever(store, app.embedder, kept, cache_size=0).retrieve,
        }
        for retrieve in retrievers.values():
            retrieve("warm up")
        times: dict[str, list[float]] = {name: [] for name in retrievers}
        for n, query in enumerate(queries):
            order = list(retrievers.items())
            for name, retrieve in order if n % 2 else order[::-1]:  # each goes first every other query
                started = time.perf_counter()
                retrieve(query)
                times[name].append((time.perf_counter() - started) * 1e3)
        chunks = store.count()
    summary = {
        name: {"p50_ms": round(float(np.percentile(t, 50)), 2), "p95_ms": round(float(np.percentile(t, 95)), 2)}
        for name, t in times.items()
    }
    ratio = summary["document-aware"]["p50_ms"] / summary["plain"]["p50_ms"]
    copies_ratio = summary["document-aware"]["p50_ms"] / summary["copies kept"]["p50_ms"]
    settings = config.retrieval.model_dump(mode="json")
    print(
        json.dumps(
            {
                "chunks": chunks,
                "queries": len(queries),
                "hybrid": summary,
                "p50_ratio": round(ratio, 3),
                "p50_ratio_to_copies_kept": round(copies_ratio, 3),
                "queries_with_copies_collapsed": sum(n > 0 for n in collapsed[1:]),  # not the warm-up
                "page_cache": "warmed" if args.warm else "as found",
                "retrieval": settings,
            }
        )
    )


if __name__ == "__main__":
    main()
