"""Choose the retrieval defaults on a BEIR *train* split; prints one JSON object.

Step 1 sweeps BM25 k1 and b (one index per pair; dense vectors come from the
embedding cache, so only the first index pays for embedding). Step 2 fetches,
once per query, the dense and BM25 candidate lists from the best BM25 index and
re-fuses them with every fusion method, weight, RRF constant and candidate
depth, through the same ``fuse()`` the retriever uses.

    python bench/sweep_defaults.py --beir ../shared/datasets/scifact --split train
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from typing import Any

from pipeline.config import Fusion, config_to_dict, parse_config
from pipeline.eval.beir import load_beir
from pipeline.eval.evaluate import DEPTH, eval_index, run_mode
from pipeline.eval.metrics import evaluate_run
from pipeline.retrieval import fuse
from pipeline.stages.bm25 import query_vector

K1 = (0.6, 0.9, 1.2, 1.5)
B = (0.4, 0.6, 0.75, 0.9)
CANDIDATES = (100, 200, 400)
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
RRF_K = (5, 10, 20, 40, 60, 100)


def _round(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 5) for k, v in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", required=True)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    if args.split == "test":
        sys.exit("choose defaults on a training split, not on test")
    dataset = load_beir(args.beir, args.split)
    base = config_to_dict(parse_config({}))
    started = time.perf_counter()

    bm25_grid = []
    for k1, b in itertools.product(K1, B):
        config = parse_config({**base, "bm25": {"k1": k1, "b": b}})
        with eval_index(dataset, config, progress=sys.stderr.isatty()) as (app, _):
            run = run_mode(app, dataset.queries, "bm25", DEPTH).ranked
        bm25_grid.append({"k1": k1, "b": b, **_round(evaluate_run(dataset.qrels, run))})
        print(f"bm25 k1={k1} b={b}: {bm25_grid[-1]['ndcg@10']}", file=sys.stderr)
    best_bm25 = max(bm25_grid, key=lambda r: r["ndcg@10"])

    config = parse_config({**base, "bm25": {"k1": best_bm25["k1"], "b": best_bm25["b"]}})
    with eval_index(dataset, config) as (app, _):
        store, embedder = app.store(), app.embedder
        texts = list(dataset.queries.values())
        dense_vectors = embedder.embed(texts)
        lists = [
            store.search(vector, query_vector(text), max(CANDIDATES), None)
            for vector, text in zip(dense_vectors, texts)
        ]
        ids = {h.id for dense, sparse in lists for h in (*dense, *sparse)}
        sources = {cid: chunk.source for cid, chunk in store.chunks(list(ids)).items()}

    fusion_grid: list[dict[str, Any]] = []
    settings: list[dict[str, Any]] = [
        {"fusion": "rrf", "rrf_k": k, "dense_weight": w} for k, w in itertools.product(RRF_K, WEIGHTS)
    ]
    settings += [{"fusion": f, "dense_weight": w} for f in ("dbsf", "weighted") for w in WEIGHTS]
    for setting, depth in itertools.product(settings, CANDIDATES):
        run = {}
        for query_id, (dense, sparse) in zip(dataset.queries, lists):
            fused = fuse(
                dense[:depth],
                sparse[:depth],
                Fusion(setting["fusion"]),
                setting.get("rrf_k", 60),
                setting["dense_weight"],
                DEPTH,
            )
            run[query_id] = list(dict.fromkeys(sources[f.id] for f in fused))
        fusion_grid.append({**setting, "candidates": depth, **_round(evaluate_run(dataset.qrels, run))})
    fusion_grid.sort(key=lambda r: -r["ndcg@10"])
    best_per_method = {
        method: next(r for r in fusion_grid if r["fusion"] == method) for method in ("rrf", "dbsf", "weighted")
    }
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "split": args.split,
                "queries": len(dataset.queries),
                "bm25_grid": sorted(bm25_grid, key=lambda r: -r["ndcg@10"]),
                "best_bm25": best_bm25,
                "best_fusion": fusion_grid[0],
                "best_per_method": best_per_method,
                "fusion_grid": fusion_grid,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
