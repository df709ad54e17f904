"""``ragline tune``: ranking settings fitted to one index, with no labels.

The defaults were chosen on three development sets; a team's folder is a fourth kind. ``tune`` asks the
index questions whose answers it knows without anyone labelling them, two kinds, weighed equally:

* **headings**: a section heading (or a title) that names one document only, asked as a question; the
  answer is its document. Users ask for what a heading says.
* **sentences**: a sentence taken out of a chunk, asked as a question, with that chunk removed from the
  candidates; the answer is the rest of its document. This is the inverse cloze task (Lee et al., 2019):
  the question's own words are no longer there to match, so what finds the document is what finds it for a
  paraphrase: its other windows, its title and headings, the dense side.

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
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.app import Ragline
from pipeline.config import TUNABLE, RetrievalConfig
from pipeline.errors import RaglineError
from pipeline.retrieval import rank
from pipeline.stages.bm25 import query_vector
from pipeline.stores.base import Hit
from pipeline.types import Chunk, document_key

Kind = Literal["heading", "sentence"]
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

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class PseudoQuestion:
    text: str
    kind: Kind
    document: str
    """The answering document's id."""
    removed: tuple[str, ...] = ()
    """The chunks taken out of the candidates (sentence questions): the windows that hold the question's words."""


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


def _is_prose(text: str, low: int, high: int) -> bool:
    words = _WORD.findall(text)
    letters = sum(c.isalpha() for c in text)
    return low <= len(words) <= high and letters >= 0.7 * len(text.replace(" ", ""))


def pseudo_questions(chunks: Iterable[Chunk], count: int = QUESTIONS, seed: int = 0) -> list[PseudoQuestion]:
    """Questions whose answers the index itself knows: headings naming one document, and sentences taken
    out of chunks of documents that have other chunks to be found by."""
    by_document: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_document.setdefault(c.document_id, []).append(c)
    headings: dict[str, set[str]] = {}
    for document, its in by_document.items():
        for c in its:
            for h in (*c.heading, str(c.metadata.get("title") or "")):
                if _is_prose(h, 2, 12):
                    headings.setdefault(h.strip().lower(), set()).add(document)
    heading_questions = [
        PseudoQuestion(text, "heading", next(iter(documents)))
        for text, documents in sorted(headings.items())
        if len(documents) == 1  # "Examples", "Description": every reference page has one
    ]
    rng = random.Random(seed)
    sentence_questions = []
    for document, its in sorted(by_document.items()):
        if len(its) < 2:
            continue
        for c in its:  # one sentence of a chunk at most: questions from one window would not be independent
            sentences = [s.strip() for s in _SENTENCE.split(c.text) if _is_prose(s, 8, 30)]
            if not sentences:
                continue
            sentence = rng.choice(sentences)
            # Out of every window that holds it (the overlapping neighbours may), so none matches it word for word.
            near = [o for o in its if abs(o.ordinal - c.ordinal) <= 1]
            holding = tuple(o.id for o in near if sentence in o.text)
            if len(holding) < len(its):
                sentence_questions.append(PseudoQuestion(sentence, "sentence", document, holding))
    return _round_robin(heading_questions, count // 2, rng) + _round_robin(sentence_questions, count - count // 2, rng)


def _round_robin(pool: list[PseudoQuestion], count: int, rng: random.Random) -> list[PseudoQuestion]:
    """``count`` questions drawn one per document in turn (shuffled), so that one long manual does not
    decide, while a folder of a few documents still yields enough."""
    by_document: dict[str, list[PseudoQuestion]] = {}
    for q in pool:
        by_document.setdefault(q.document, []).append(q)
    queues = list(by_document.values())
    rng.shuffle(queues)
    for queue in queues:
        rng.shuffle(queue)
    picked: list[PseudoQuestion] = []
    while queues and len(picked) < count:
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop())
        queues = [q for q in queues if q]
    return picked


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
    if min(asked["heading"], asked["sentence"]) < MIN_PER_KIND:
        raise RaglineError(
            f"the index gives too few pseudo-questions to tune on: {asked['heading']} headings and "
            f"{asked['sentence']} sentences ({MIN_PER_KIND} of each needed; a sentence needs a document of "
            "several windows); the defaults stay"
        )
    base = app.config.retrieval
    grid = settings_grid(base)
    depth = max(s["candidates"] for s in grid)
    lists = []
    for q in _progress(questions, "asking", progress):
        limit = depth + len(q.removed)
        dense, sparse = store.search(app.embedder.embed_query(q.text), query_vector(q.text), limit, documents=True)
        lists.append(([h for h in dense if h.id not in q.removed], [h for h in sparse if h.id not in q.removed]))
    kinds = np.array([q.kind for q in questions])
    scored = [_reciprocal_ranks(questions, lists, s, base) for s in _progress(grid, "settings", progress)]
    summaries = [_summary(kinds, r) for r in scored]
    # The sentences decide, the headings only veto: a sentence with its windows hidden is asked as a paraphrase
    # is, while a heading is in its section's indexed text word for word, which favours BM25 whatever real
    # questions need. So a setting must not lose on headings and must gain on sentences.
    fair = [i for i in range(len(grid)) if summaries[i]["heading"] >= summaries[0]["heading"]]
    best_at = max(fair, key=lambda i: summaries[i]["sentence"])  # the first of equals: the current
    default, best = summaries[0], summaries[best_at]
    sentences = kinds == "sentence"
    sure = _sure_gain(kinds[sentences], scored[0][sentences], scored[best_at][sentences], seed)
    keep = best["sentence"] >= default["sentence"] + MIN_GAIN and sure >= SURE
    report = TuneReport(
        questions=dict(asked),
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


def _progress(items: Sequence[Any], what: str, shown: bool) -> Iterable[Any]:
    if not shown:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, leave=False)
