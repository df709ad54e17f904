"""``ragline tune``: ranking settings fitted to one index, with no labels.

The defaults were chosen on three development sets; a team's folder is a fourth kind. ``tune`` asks the
index questions whose answers it knows without anyone labelling them, two kinds, weighed equally:

* **headings**: a section heading (or a title) that names one document only, asked as a question; the
  answer is its document. Users ask for what a heading says.
* **sentences**: a sentence taken out of a chunk, asked as a question, with the windows that hold it removed
  from the candidates (or, in a one-window document, scored without it); the answer is the rest of its
  document. This is the inverse cloze task (Lee et al., 2019): the question's own words are no longer there
  to match, so what finds the document is what finds it for a paraphrase: its other windows or the rest of
  its one, its title and headings, the dense side. ``pipeline.eval.pseudo`` draws both kinds.

Each question's dense and BM25 candidates are fetched once; every setting of a small grid (fusion and its
weight, depth, document evidence) is ranked from them in Python through the retriever's own ``rank()``,
and scored by the mean reciprocal rank of the answering document. The sentences decide and the headings
only veto: the setting best on sentences among those that lose nothing on headings is kept if it beats the
current settings on sentences by ``MIN_GAIN`` in ``SURE`` of paired bootstrap resamples (a few hundred
pseudo-questions cannot tell settings apart more finely than that, and the defaults were chosen on real
questions). Headings favour BM25, since a heading is in its section's indexed text word for word: on the
Debian folder the best setting by the mean of both kinds (dense weight 0.3) won on headings, lost on
sentences, and lost 0.08 Success@1 on the real questions.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.app import Ragline
from pipeline.config import TUNABLE, RetrievalConfig
from pipeline.errors import RaglineError
from pipeline.eval.pseudo import PseudoQuestion, cut_scores, pseudo_questions, put_back
from pipeline.retrieval import rank
from pipeline.stages.bm25 import query_vector
from pipeline.stores.base import Hit
from pipeline.types import document_key

MIN_CHUNKS = 500
"""A smaller index is not tuned: a few dozen windows make too few independent questions."""
MIN_PER_KIND = 10
QUESTIONS = 300
"""Pseudo-questions asked (half of each kind, where the index has enough)."""
MIN_GAIN = 0.01
"""What the best setting must beat the defaults by (mean reciprocal rank) to be kept."""
SURE = 0.95
"""... and in this share of paired bootstrap resamples of the questions (a gain that a few questions make
is not kept)."""
BOOTSTRAP = 1000
DEPTH = 10
"""Reciprocal rank is counted over the first ``DEPTH`` documents."""
TUNING_VERSION = 1


@dataclass(frozen=True)
class TuneReport:
    questions: dict[str, int]
    """Per kind, how many were asked."""
    default: dict[str, float]
    """The current settings' score: per kind and ``mean`` (MRR@10 of the answering document)."""
    best: dict[str, float]
    """The best setting's score, as ``default``."""
    chosen: dict[str, Any]
    """The settings saved with the index (empty: the defaults were not beaten by ``MIN_GAIN``)."""
    best_settings: dict[str, Any]
    sure: float
    """The share of bootstrap resamples of the questions in which the best beat the current settings."""
    settings_tried: int
    chunks: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": TUNING_VERSION,
            "settings": self.chosen,
            "questions": self.questions,
            "default": self.default,
            "best": self.best,
            "best_settings": self.best_settings,
            "gain": round(self.best["sentence"] - self.default["sentence"], 5),
            "min_gain": MIN_GAIN,
            "sure": round(self.sure, 3),
            "min_sure": SURE,
            "settings_tried": self.settings_tried,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 1),
        }


def settings_grid(base: RetrievalConfig) -> list[dict[str, Any]]:
    """The current settings first, then fusion × weight × depth × document evidence."""
    fusions = [{"fusion": "weighted", "dense_weight": w} for w in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)] + [
        {"fusion": "rrf", "rrf_k": k} for k in (20, 60)
    ]
    evidence = [{"document_weight": 0.0, "document_chunks": 1}] + [
        {"document_weight": w, "document_chunks": n} for w, n in itertools.product((0.1, 0.25, 0.5), (2, 3))
    ]
    current = {k: getattr(base, k) for k in TUNABLE}
    current["fusion"] = base.fusion.value
    grid = [current]
    for fusion, document, depth in itertools.product(fusions, evidence, (100, 400)):
        setting = {**current, **fusion, **document, "candidates": depth}
        if setting not in grid:
            grid.append(setting)
    return grid


def _reciprocal_ranks(
    questions: Sequence[PseudoQuestion],
    lists: Sequence[tuple[list[Hit], list[Hit]]],
    setting: dict[str, Any],
    base: RetrievalConfig,
) -> np.ndarray:
    """Per question, 1 / the rank of its answering document among the first ``DEPTH`` (0: not there)."""
    config = RetrievalConfig.model_validate({**base.model_dump(), **setting})
    depth = config.candidates
    out = np.zeros(len(questions))
    for i, (q, (dense, sparse)) in enumerate(zip(questions, lists, strict=True)):
        ranked = rank(dense[:depth], sparse[:depth], "hybrid", config, DEPTH * max(config.max_per_document, 1))
        documents = list(dict.fromkeys(f.document for f in ranked))[:DEPTH]
        if (key := document_key(q.document)) in documents:
            out[i] = 1.0 / (documents.index(key) + 1)
    return out


def _summary(kinds: np.ndarray, reciprocal: np.ndarray) -> dict[str, float]:
    """MRR@10 per kind, and their ``mean`` (each kind weighs the same, however many it has)."""
    scores = {str(kind): float(reciprocal[kinds == kind].mean()) for kind in np.unique(kinds)}
    return {**scores, "mean": float(np.mean(list(scores.values())))}


def _sure_gain(kinds: np.ndarray, default: np.ndarray, best: np.ndarray, seed: int) -> float:
    """The share of paired bootstrap resamples of the questions in which ``best`` beats ``default``."""
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(BOOTSTRAP):
        sample = rng.integers(0, len(kinds), len(kinds))
        wins += _summary(kinds[sample], best[sample])["mean"] > _summary(kinds[sample], default[sample])["mean"]
    return wins / BOOTSTRAP


def tune(app: Ragline, count: int = QUESTIONS, seed: int = 0, progress: bool = False) -> TuneReport:
    """Fit the ranking settings to the app's index and save them with it (or forget earlier ones when the
    defaults hold)."""
    started = time.perf_counter()
    store = app.store()
    chunks = [c for page in store.all_chunks() for c in page]
    if len(chunks) < MIN_CHUNKS:
        raise RaglineError(
            f"the index is too small to tune: {len(chunks)} chunks ({MIN_CHUNKS} needed); its questions could not "
            "tell settings apart, and the defaults stay"
        )
    questions = pseudo_questions(chunks, count, seed)
    asked: Counter[str] = Counter(q.kind for q in questions)
    if asked["sentence"] < MIN_PER_KIND:
        raise RaglineError(
            f"the index gives too few pseudo-questions to tune on: {asked['sentence']} sentences "
            f"({MIN_PER_KIND} needed); the defaults stay"
        )
    base = app.config.retrieval
    grid = settings_grid(base)
    questions, lists = _ask(app, questions, max(s["candidates"] for s in grid), progress)
    kinds = np.array([q.kind for q in questions])
    scored = [_reciprocal_ranks(questions, lists, s, base) for s in _progress(grid, "settings", progress)]
    summaries = [_summary(kinds, r) for r in scored]
    # The sentences decide, the headings only veto: a sentence with its windows hidden is asked as a paraphrase
    # is, while a heading is in its section's indexed text word for word, which favours BM25 whatever real
    # questions need. So a setting must not lose on headings and must gain on sentences.
    # An index with too few headings to veto (a corpus of untitled entries) is tuned on sentences alone.
    vetoed = asked["heading"] >= MIN_PER_KIND
    fair = [i for i in range(len(grid)) if not vetoed or summaries[i]["heading"] >= summaries[0]["heading"]]
    best_at = max(fair, key=lambda i: summaries[i]["sentence"])  # the first of equals: the current
    default, best = summaries[0], summaries[best_at]
    sentences = kinds == "sentence"
    sure = _sure_gain(kinds[sentences], scored[0][sentences], scored[best_at][sentences], seed)
    keep = best["sentence"] >= default["sentence"] + MIN_GAIN and sure >= SURE
    report = TuneReport(
        questions=dict(Counter(q.kind for q in questions)),
        default={k: round(v, 5) for k, v in default.items()},
        best={k: round(v, 5) for k, v in best.items()},
        chosen=grid[best_at] if keep else {},
        best_settings=grid[best_at],
        sure=sure,
        settings_tried=len(grid),
        chunks=len(chunks),
        seconds=time.perf_counter() - started,
    )
    store.save_tuning(report.as_dict())
    app.forget_retriever()
    return report


def _ask(
    app: Ragline, questions: list[PseudoQuestion], depth: int, progress: bool
) -> tuple[list[PseudoQuestion], list[tuple[list[Hit], list[Hit]]]]:
    """Each question's dense and BM25 candidates to ``depth``, its hidden windows removed and a cut window put
    back with the scores of its rest; a cut question whose rest cannot be scored exactly is dropped."""
    store = app.store()
    cut = store.chunks([q.cut_from for q in questions if q.cut_from])
    kept, lists = [], []
    for q in _progress(questions, "asking", progress):
        query = app.embedder.embed_query(q.text)
        limit = depth + len(q.removed)
        dense, sparse = store.search(query, query_vector(q.text), limit, documents=True)
        dense, sparse = ([h for h in hits if h.id not in q.removed][:depth] for hits in (dense, sparse))
        if q.cut_from:
            chunk = cut[q.cut_from]
            if (scores := cut_scores(q, query, chunk, store, app.embedder)) is None:
                continue
            dense, sparse = put_back(dense, chunk, scores.dense, depth), put_back(sparse, chunk, scores.sparse, depth)
        kept.append(q)
        lists.append((dense, sparse))
    return kept, lists


def _progress(items: Sequence[Any], what: str, shown: bool) -> Iterable[Any]:
    if not shown:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, leave=False)
