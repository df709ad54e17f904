"""Fit the search confidence (pipeline/retrieval/confidence.py) on the development sets; prints one JSON object.

For every question of every set, the dense and BM25 candidates are fetched once, ranked per mode as search
ranks them, and the confidence signals are read with the label "the first result is right" (a right file on
a folder set; a relevant document on BEIR). One logistic regression per mode (scikit-learn) is fitted with
each set weighed equally, and its coefficients are printed ready to paste into ``MODEL``. Reported per set
and mode: the ROC AUC in-sample and with that set left out of the fit (how it carries to a folder it has
never seen), and the share of questions flagged ``low_confidence`` at the configured threshold
(``retrieval.low_confidence``), with how many of those flagged were in fact wrong.

    python bench/fit_confidence.py --config int8.toml \\
        --folder /work/debian-docs=../shared/datasets/debian-dev/queries.tsv \\
        --folder demo_docs=bench/questions/demo_docs.tsv \\
        --folder ../shared/datasets/sample_docs=bench/questions/sample_docs.tsv \\
        --beir ../shared/datasets/scifact --split train
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from devsets import development_sets

from pipeline.app import Ragline
from pipeline.config import AppConfig
from pipeline.eval.beir import load_beir
from pipeline.eval.evaluate import eval_index
from pipeline.eval.folder import file_stem, folder_index, load_queries
from pipeline.eval.metrics import roc_auc
from pipeline.retrieval import MODES, SIGNAL_DEPTH, rank
from pipeline.retrieval.confidence import FEATURES, features
from pipeline.stages.bm25 import query_terms, query_vector
from pipeline.types import document_key


@dataclass
class Signals:
    """One set: per mode, each question's signals and whether its first result was right."""

    name: str
    rows: dict[str, list[dict[str, float]]] = field(default_factory=lambda: {m: [] for m in MODES})
    right: dict[str, list[bool]] = field(default_factory=lambda: {m: [] for m in MODES})


def _collect(app: Ragline, name: str, queries: dict[str, str], is_right: Any) -> Signals:
    """``is_right(query_id, source)``: whether a first result from ``source`` answers the question."""
    store, config = app.store(), app.config.retrieval
    sources = {document_key(d.document_id): d.source for d in store.documents().values()}
    out = Signals(name)
    for query_id, text in queries.items():
        sparse_vector = query_vector(text)
        dense, sparse = store.search(app.embedder.embed_query(text), sparse_vector, config.candidates, documents=True)
        for mode in MODES:
            lists = (dense if mode != "bm25" else [], sparse if mode != "dense" else [])
            ranked = rank(*lists, mode, config, SIGNAL_DEPTH)
            if not ranked:
                continue
            out.rows[mode].append(features(*lists, ranked, len(query_terms(text))))
            out.right[mode].append(bool(is_right(query_id, sources.get(ranked[0].document, ""))))
    return out


def folder_signals(folder: Path, questions: Path, config: AppConfig) -> Signals:
    queries = {q.id: q for q in load_queries(questions)}
    with folder_index(folder.expanduser().resolve(), config, progress=sys.stderr.isatty()) as (app, _):
        return _collect(
            app,
            f"{folder.name} ({questions.name})",
            {q.id: q.text for q in queries.values()},
            lambda q, source: file_stem(source) in queries[q].stems,
        )


def beir_signals(folder: Path, split: str, config: AppConfig) -> Signals:
    dataset = load_beir(folder, split)
    with eval_index(dataset, config, progress=sys.stderr.isatty()) as (app, _):
        return _collect(
            app,
            f"{dataset.name} {split}",
            dataset.queries,
            lambda q, source: dataset.qrels.get(q, {}).get(source, 0) > 0,
        )


def _matrix(sets: list[Signals], mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and weights (each set sums to one) of the given sets."""
    names = FEATURES[mode]
    x = np.array([[row[n] for n in names] for s in sets for row in s.rows[mode]], dtype=np.float64)
    y = np.array([r for s in sets for r in s.right[mode]], dtype=np.int64)
    w = np.concatenate([np.full(len(s.right[mode]), 1.0 / max(len(s.right[mode]), 1)) for s in sets])
    return x, y, w


def _fit(sets: list[Signals], mode: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y, w = _matrix(sets, mode)
    return LogisticRegression(C=1.0, max_iter=1000).fit(x, y, sample_weight=w * len(w) / w.sum())


def _probabilities(model: Any, s: Signals, mode: str) -> list[float]:
    x, _, _ = _matrix([s], mode)
    return [float(p) for p in model.predict_proba(x)[:, 1]]


def report(sets: list[Signals], threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {"models": {}, "sets": {s.name: {} for s in sets}, "low_confidence": threshold}
    for mode in MODES:
        if len({r for s in sets for r in s.right[mode]}) < 2:
            out["models"][mode] = None  # every first result right, or every one wrong: nothing to fit
            continue
        model = _fit(sets, mode)
        names = FEATURES[mode]
        out["models"][mode] = {
            "intercept": round(float(model.intercept_[0]), 4),
            "weights": {n: round(float(c), 4) for n, c in zip(names, model.coef_[0], strict=True)},
        }
        probabilities = [_probabilities(model, s, mode) for s in sets]
        for s, p in zip(sets, probabilities, strict=True):
            others = [o for o in sets if o is not s]
            both = len({r for o in others for r in o.right[mode]}) == 2
            held_out = _probabilities(_fit(others, mode), s, mode) if others and both else p
            flagged = [y for pi, y in zip(p, s.right[mode], strict=True) if pi < threshold]
            auc, auc_out = roc_auc(p, s.right[mode]), roc_auc(held_out, s.right[mode])
            out["sets"][s.name][mode] = {
                "questions": len(p),
                "first_right": round(float(np.mean(s.right[mode])), 4),
                "auc": None if auc is None else round(auc, 4),
                "auc_set_left_out": None if auc_out is None else round(auc_out, 4),
                "flagged_low": round(len(flagged) / max(len(p), 1), 4),
                "flagged_were_wrong": round(1 - float(np.mean(flagged)), 4) if flagged else None,
            }
    return out


def main() -> None:
    started = time.perf_counter()
    _, config, sets = development_sets(__doc__.splitlines()[0], folder_signals, beir_signals)
    threshold = config.retrieval.low_confidence
    print(json.dumps({**report(sets, threshold), "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
