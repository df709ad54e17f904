"""The whole-file BM25 baseline beside ragline on a folder of real documents; prints one JSON object.

The baseline is what a newcomer writes in 30 lines: every file parsed to text (ragline's own parsers, so both
read the same words), lowercased, split into words, no stemming and no stopwords, scored whole with
rank-bm25's ``BM25Okapi`` (k1 1.5, b 0.75). ragline runs ``eval --folder`` on the same folder and questions
in the same run, with the config given (the index is re-used while nothing changed).

    python bench/wholefile_bm25.py --folder DIR --queries FILE.tsv [--config int8.toml] [--modes hybrid]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from connectors import FolderSource
from connectors.parse_pool import parse_files
from pipeline.config import load_config
from pipeline.eval.evaluate import parse_modes
from pipeline.eval.folder import evaluate_folder, first_right, folder_metrics, load_queries
from pipeline.faces.render import folder_eval_dict

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def whole_file_bm25(folder: Path, queries_file: Path) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    started = time.perf_counter()
    files = FolderSource(folder).scan().files
    sources, texts = [], []
    for outcome in parse_files([(f, None) for f in files]):
        if outcome.document is not None:
            sources.append(outcome.document.source)
            texts.append(words(outcome.document.text))
    parsed = time.perf_counter()
    bm25 = BM25Okapi(texts)
    queries = load_queries(queries_file)
    ranks: dict[str, int | None] = {}
    for query in queries:
        scores = bm25.get_scores(words(query.text))
        ranked = sorted(range(len(sources)), key=lambda i: -scores[i])[:10]
        ranks[query.id] = first_right([sources[i] for i in ranked], query.stems)
    return {
        "files": len(sources),
        "metrics": {k: round(v, 5) for k, v in folder_metrics(list(ranks.values())).items()},
        "ranks": ranks,
        "seconds": {"parse": round(parsed - started, 1), "index_and_query": round(time.perf_counter() - parsed, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--queries", required=True, type=Path)
    parser.add_argument("--config", help="ragline's config (TOML); default: built-in defaults")
    parser.add_argument("--modes", default="bm25,dense,hybrid", help="ragline's modes (eval --modes)")
    args = parser.parse_args()
    folder = args.folder.expanduser().resolve()
    baseline = whole_file_bm25(folder, args.queries)
    print(f"whole-file BM25: {baseline['metrics']}", file=sys.stderr)
    report = evaluate_folder(folder, args.queries, load_config(args.config), parse_modes(args.modes))
    print(json.dumps({"whole_file_bm25": baseline, "ragline": folder_eval_dict(report)}))


if __name__ == "__main__":
    main()
