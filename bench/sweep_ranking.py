"""Choose the ranking defaults jointly on three development sets; prints one JSON object.

The sets: a folder of real documents with file-level questions (``--folder DIR=QUESTIONS.tsv``, repeatable:
the Debian documentation with ``debian-dev``, the demo and sample documents with ``bench/questions/``), and a
BEIR *train* split (``--beir``, SciFact). Each query's dense and BM25 candidate lists are fetched once, with
query terms counted once and as often as they occur; every setting (fusion method and weight, RRF constant,
candidate depth, document evidence) is then ranked in Python through the retriever's own ``rank()``.
Score: MRR@10 of the first right file on a folder, nDCG@10 on BEIR; the default maximises their mean.

    python bench/sweep_ranking.py --config int8.toml [--vary dense_weight=0.5,0.7 --vary min_dense_range=0,0.1] \\
        --folder /work/debian-docs=../shared/datasets/debian-dev/queries.tsv \\
        --folder demo_docs=bench/questions/demo_docs.tsv \\
        --folder ../shared/datasets/sample_docs=bench/questions/sample_docs.tsv \\
        --beir ../shared/datasets/scifact --split train
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devsets import development_sets

from pipeline.app import Ragline
from pipeline.config import AppConfig, RetrievalConfig
from pipeline.eval.beir import load_beir
from pipeline.eval.evaluate import DEPTH, eval_index
from pipeline.eval.folder import first_right, folder_index, folder_metrics, load_queries
from pipeline.eval.metrics import evaluate_run
from pipeline.retrieval import rank
from pipeline.stages.bm25 import query_vector
from pipeline.stores.base import Hit
from pipeline.types import document_key

FUSIONS = [{"fusion": "rrf", "rrf_k": k} for k in (20, 60)] + [{"fusion": "weighted"}, {"fusion": "dbsf"}]
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7)
CANDIDATES = (100, 400)
DOCUMENT = [{"document_weight": 0.0, "document_chunks": 1}] + [
    {"document_weight": w, "document_chunks": n} for w, n in itertools.product((0.1, 0.25, 0.5, 1.0), (2, 3))
]


@dataclass
class Candidates:
    """One set's queries with their candidate lists, and how to score a ranking of them."""

    name: str
    lists: dict[str, dict[str, tuple[list[Hit], list[Hit]]]]
    """Per query-term counting ("once", "counted"), per query: the dense and BM25 candidates."""
    score: Callable[[dict[str, list[str]]], dict[str, float]]
    """Metrics of a run (query -> sources in order); ``primary`` is the one maximised."""
    sources: dict[str, str]
    """Document id -> source."""


def _fetch(app: Ragline, queries: dict[str, str], depth: int) -> dict[str, dict[str, tuple[list[Hit], list[Hit]]]]:
    store = app.store()
    out: dict[str, dict[str, tuple[list[Hit], list[Hit]]]] = {"once": {}, "counted": {}}
    for query_id, text in queries.items():
        dense_vector = app.embedder.embed_query(text)  # as search embeds it
        for style in out:
            dense, sparse = store.search(
                dense_vector, query_vector(text, counted=style == "counted"), depth, documents=True
            )
            out[style][query_id] = (dense, sparse)
    return out


def folder_set(folder: Path, questions: Path, config: AppConfig) -> Candidates:
    queries = load_queries(questions)
    with folder_index(folder.expanduser().resolve(), config, progress=sys.stderr.isatty()) as (app, _):
        lists = _fetch(app, {q.id: q.text for q in queries}, max(CANDIDATES))
        sources = {document_key(d.document_id): d.source for d in app.store().documents().values()}

    def score(run: dict[str, list[str]]) -> dict[str, float]:
        metrics = folder_metrics([first_right(run[q.id], q.stems) for q in queries])
        return {**metrics, "primary": metrics["mrr@10"]}

    return Candidates(f"{folder.name} ({questions.name})", lists, score, sources)


def beir_set(folder: Path, split: str, config: AppConfig) -> Candidates:
    dataset = load_beir(folder, split)
    with eval_index(dataset, config, progress=sys.stderr.isatty()) as (app, _):
        lists = _fetch(app, dataset.queries, max(CANDIDATES))
        sources = {document_key(d.document_id): d.source for d in app.store().documents().values()}

    def score(run: dict[str, list[str]]) -> dict[str, float]:
        metrics = evaluate_run(dataset.qrels, run, 10, DEPTH)
        return {**metrics, "primary": metrics["ndcg@10"]}

    return Candidates(f"{dataset.name} {split}", lists, score, sources)


def evaluate(candidates: Candidates, setting: dict[str, Any], base: RetrievalConfig) -> dict[str, float]:
    config = base.model_copy(update={k: v for k, v in setting.items() if k not in ("candidates", "query_tf")})
    depth = setting["candidates"]
    run = {}
    for query_id, (dense, sparse) in candidates.lists[setting["query_tf"]].items():
        ranked = rank(dense[:depth], sparse[:depth], "hybrid", config, DEPTH)
        run[query_id] = list(dict.fromkeys(candidates.sources.get(f.document, f.id) for f in ranked))
    return {k: round(v, 5) for k, v in candidates.score(run).items()}


def settings() -> list[dict[str, Any]]:
    grid = []
    for fusion, weight, depth, document, query_tf in itertools.product(
        FUSIONS, WEIGHTS, CANDIDATES, DOCUMENT, ("once", "counted")
    ):
        grid.append(
            {
                **fusion,
                "dense_weight": weight,
                "min_dense_range": 0.0,
                "candidates": depth,
                **document,
                "query_tf": query_tf,
                "max_per_document": 0,
            }
        )
    return grid


def varied(default: dict[str, Any], vary: list[str]) -> list[dict[str, Any]]:
    """The default with each ``KEY=V1,V2,...`` of ``--vary`` taken through its values (every combination)."""
    axes: dict[str, list[Any]] = {}
    for spec in vary:
        key, _, values = spec.partition("=")
        if key not in default or not values:
            sys.exit(f"--vary {spec!r}: give KEY=V1,V2 with KEY one of {sorted(default)}")
        axes[key] = [v if isinstance(default[key], str) else json.loads(v) for v in values.split(",")]
    return [{**default, **dict(zip(axes, combo))} for combo in itertools.product(*axes.values())]


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vary",
        action="append",
        default=[],
        help="KEY=V1,V2 (repeatable): sweep only these settings around the default, not the whole grid",
    )
    args, config, sets = development_sets(parser.description or "", folder_set, beir_set, parser)
    fetched = time.perf_counter()
    retrieval = config.retrieval
    default: dict[str, Any] = {
        "fusion": retrieval.fusion.value,
        "rrf_k": retrieval.rrf_k,
        "dense_weight": retrieval.dense_weight,
        "min_dense_range": retrieval.min_dense_range,
        "candidates": retrieval.candidates,
        "document_weight": retrieval.document_weight,
        "document_chunks": retrieval.document_chunks,
        "document_candidates": retrieval.document_candidates,
        "query_tf": "once",
        "max_per_document": 0,
    }
    rows: list[dict[str, Any]] = []
    for setting in [default, *(varied(default, args.vary) if args.vary else settings())]:
        per_set = {c.name: evaluate(c, setting, config.retrieval) for c in sets}
        mean = sum(m["primary"] for m in per_set.values()) / len(per_set)
        rows.append({"setting": setting, "mean": round(mean, 5), "sets": per_set})
    baseline, grid = rows[0], sorted(rows[1:], key=lambda r: -r["mean"])
    best_per_set = {c.name: max(grid, key=lambda r: r["sets"][c.name]["primary"]) for c in sets}
    print(
        json.dumps(
            {
                "sets": [c.name for c in sets],
                "current_default": baseline,
                "best": grid[0],
                "best_per_set": best_per_set,
                "top": grid[:25],
                "settings": len(grid),
                "seconds": {"fetch": round(fetched - started, 1), "sweep": round(time.perf_counter() - fetched, 1)},
            }
        )
    )


if __name__ == "__main__":
    main()
