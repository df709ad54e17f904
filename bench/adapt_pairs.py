"""Write the pairs ``ragline adapt`` mines from an index, with hybrid-mined negatives, as ``--pairs`` JSONL;
prints one JSON object (the counts).

What ``adapt --reranker`` would have trained on, so that a cross-encoder trained on it can be measured on
real questions before it is built (docs/training.md: it lost on both the Debian and the SciFact questions):

    python bench/adapt_pairs.py --index IDX --out pairs.jsonl [--limit 485]
    ragline train-reranker --pairs pairs.jsonl --out MODEL
    ragline eval --folder DIR --queries Q.tsv --eval-index IDX --modes hybrid,hybrid+rerank --reranker MODEL
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from pipeline.app import Ragline
from pipeline.config import load_config, with_index
from pipeline.retrieval import HybridRetriever
from pipeline.training.adapt import AdaptSettings, index_pairs, mined_negatives


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the JSONL file to write")
    parser.add_argument("--config")
    parser.add_argument("--negatives", type=int, default=4, help="mined negatives per pair")
    parser.add_argument("--limit", type=int, default=0, help="at most this many pairs, drawn at random (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with Ragline(with_index(load_config(args.config), args.index)) as app:
        chunks, texts, pairs = index_pairs(app, AdaptSettings(seed=args.seed))
        mined = len(pairs)
        if args.limit:
            pairs = random.Random(args.seed).sample(pairs, min(args.limit, mined))
        retriever = HybridRetriever(app.store(), app.embedder, app.retrieval_config, cache_size=0)
        by_id = {c.id: c for c in chunks}
        negatives = mined_negatives(pairs, by_id, texts, retriever, args.negatives, sys.stderr.isatty())
    with args.out.open("w", encoding="utf-8") as out:
        for i, pair in enumerate(pairs):
            out.write(json.dumps({"query": pair.query, "positive": pair.positive, "negatives": negatives[i]}) + "\n")
    print(
        json.dumps(
            {
                "chunks": len(chunks),
                "mined": mined,
                "written": len(pairs),
                "negatives": sum(len(n) for n in negatives.values()),
                "documents": len({p.document_id for p in pairs}),
                "out": str(args.out),
            }
        )
    )


if __name__ == "__main__":
    main()
