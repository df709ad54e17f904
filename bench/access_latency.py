"""What access control costs a query: hybrid search as an admin (no access condition) beside callers whose
principals let them read a part of the index, on one index; prints one JSON object.

The index is copied first (the original is not touched) and every document of the copy is given readers
the way a company share might: each is readable by one to three of ``--groups`` groups (the first groups more
often, as a few big teams own most files) and one in ten by everyone. Callers: an admin (no condition), a
member of the biggest group, a member of one small group, and a member of five groups; each runs the same
queries through ``HybridRetriever`` (the store matches their principals inside both candidate lists), in turn,
each going first once every four queries. Queries are the opening words of sampled chunks.

    python bench/access_latency.py --index ~/.cache/ragline/eval/folder-debian-docs-... [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.app import Ragline
from pipeline.config import load_config, with_index
from pipeline.retrieval import HybridRetriever


def label(app: Ragline, groups: int, seed: int) -> int:
    """Give every document of the copy its readers; returns how many documents there are."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(groups)]  # Zipf: group 0 is the biggest
    store = app.store()
    documents = sorted(store.documents())
    for document in documents:
        readers = {f"group:g{g}" for g in rng.choices(range(groups), weights, k=rng.randint(1, 3))}
        if rng.random() < 0.1:
            readers.add("everyone")
        store.set_readers(document, sorted(readers))
    store.flush()
    return len(documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--config")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragline-access-bench-") as scratch:
        copy = Path(scratch) / "index"
        shutil.copytree(args.index, copy, ignore=shutil.ignore_patterns("lock"))
        config = with_index(load_config(args.config), copy)
        with Ragline(config) as app:
            started = time.perf_counter()
            documents = label(app, args.groups, args.seed)
            labelled_s = time.perf_counter() - started
            store = app.store()
            ids = [p.id for batch in store.export_points(batch=4096) for p in batch]
            sample = random.Random(args.seed).sample(ids, min(args.queries, len(ids)))
            queries = [" ".join(c.text.split()[:8]) for c in store.chunks(sample).values()]
            callers: dict[str, list[str] | None] = {
                "admin": None,
                "biggest_group": ["everyone", "group:g0"],
                "small_group": ["everyone", f"group:g{args.groups - 1}"],
                "five_groups": ["everyone", *(f"group:g{g}" for g in range(0, args.groups, max(1, args.groups // 5)))][
                    :6
                ],
            }
            retriever = HybridRetriever(store, app.embedder, app.retrieval_config, cache_size=0)
            for readers in callers.values():
                retriever.retrieve("warm up", readers=readers)
            times: dict[str, list[float]] = {name: [] for name in callers}
            results: dict[str, int] = dict.fromkeys(callers, 0)
            order = list(callers.items())
            for n, query in enumerate(queries):
                turn = order[n % len(order) :] + order[: n % len(order)]
                for name, readers in turn:
                    t0 = time.perf_counter()
                    found = retriever.retrieve(query, readers=readers)
                    times[name].append((time.perf_counter() - t0) * 1e3)
                    results[name] += len(found.results)
            total = store.count()
            share = {name: round(store.count(readers) / total, 4) for name, readers in callers.items()}
    summary = {
        name: {
            "p50_ms": round(float(np.percentile(t, 50)), 2),
            "p95_ms": round(float(np.percentile(t, 95)), 2),
            "readable_share": share[name],
            "mean_results": round(results[name] / len(queries), 2),
        }
        for name, t in times.items()
    }
    admin_p50 = summary["admin"]["p50_ms"]
    print(
        json.dumps(
            {
                "chunks": total,
                "documents": documents,
                "groups": args.groups,
                "queries": len(queries),
                "label_seconds": round(labelled_s, 1),
                "hybrid": summary,
                "p50_ratio_to_admin": {name: round(s["p50_ms"] / admin_p50, 3) for name, s in summary.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
