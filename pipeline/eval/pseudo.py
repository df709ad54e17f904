"""Pseudo-questions: questions an index's own chunks answer, drawn with no labels (``ragline tune`` asks them).

Two kinds:

* **headings**: a section heading (or a title) that names one document only; the answer is its document.
* **sentences**: a sentence taken out of a chunk (the inverse cloze task, Lee et al., 2019), so that the
  question's own words are no longer there to match. In a document of several windows, every window that
  holds the sentence leaves the candidates and the rest of the document must be found by its other windows.
  A document of one window (an abstract, an FAQ entry, a short page) has nothing else to be found by, so the
  sentence is cut out of that window instead: the window stays a candidate, scored as if the sentence had
  never been in it (:func:`cut_scores`). Without these, a corpus of one-window documents (SciFact) gives no
  sentence questions at all, and could not be tuned.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline.config import BM25Config
from pipeline.filters import SearchFilter
from pipeline.models.protocols import Embedder
from pipeline.stages import bm25, language
from pipeline.stages.chunking import indexed_text
from pipeline.stores.base import Hit, Store
from pipeline.types import Chunk, SparseVector, document_key

Kind = Literal["heading", "sentence"]
MIN_REST_WORDS = 8
"""A window cut down to fewer words than this is not asked about: too little is left to find it by."""

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
    cut_from: str = ""
    """A one-window document's chunk the sentence was cut out of: put back among the candidates with the
    scores of its rest (``removed`` holds it too)."""


@dataclass(frozen=True)
class CutScores:
    """What the rest of a cut window scores against its question, on each side (None: no BM25 term left)."""

    dense: float
    sparse: float | None


def is_prose(text: str, low: int, high: int) -> bool:
    words = _WORD.findall(text)
    letters = sum(c.isalpha() for c in text)
    return low <= len(words) <= high and letters >= 0.7 * len(text.replace(" ", ""))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if is_prose(s, 8, 30)]


def pseudo_questions(chunks: Iterable[Chunk], count: int, seed: int = 0) -> list[PseudoQuestion]:
    """Headings naming one document, and one sentence per chunk, drawn one document at a time: half of each,
    or sentences for the headings an index lacks (a corpus of untitled entries has none).

    Sentences cut out of one-window documents only make up for too few documents of several windows: such
    an answer has no other window to lend it document evidence, so on a folder of manuals, where real
    answers are long files, they tune the evidence away. On the Debian folder, drawn alongside, they chose
    evidence off and lost 0.15 Success@1 on the real questions; drawn as here, SciFact (one window each)
    gets them all.
    """
    by_document: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_document.setdefault(c.document_id, []).append(c)
    rng = random.Random(seed)
    ordered = sorted(by_document.items())
    hidden = [q for document, its in ordered if len(its) > 1 for q in _hidden_questions(document, its, rng)]
    picked = _round_robin(_heading_questions(by_document), count // 2, rng)
    picked += _round_robin(hidden, count - len(picked), rng)
    if len(picked) == count:
        return picked
    cut_rng = random.Random(seed + 1)
    cut = [q for document, its in ordered if len(its) == 1 for q in _cut_question(document, its[0], cut_rng)]
    return picked + _round_robin(cut, count - len(picked), cut_rng)


def _heading_questions(by_document: dict[str, list[Chunk]]) -> list[PseudoQuestion]:
    headings: dict[str, set[str]] = {}
    for document, its in by_document.items():
        for c in its:
            for h in (*c.heading, str(c.metadata.get("title") or "")):
                if is_prose(h, 2, 12):
                    headings.setdefault(h.strip().lower(), set()).add(document)
    return [
        PseudoQuestion(text, "heading", next(iter(documents)))
        for text, documents in sorted(headings.items())
        if len(documents) == 1  # "Examples", "Description": every reference page has one
    ]


def _hidden_questions(document: str, its: list[Chunk], rng: random.Random) -> list[PseudoQuestion]:
    """One sentence of a chunk at most (questions from one window would not be independent), out of every
    window that holds it (the overlapping neighbours may), so none matches it word for word."""
    questions = []
    for c in its:
        if found := sentences(c.text):
            sentence = rng.choice(found)
            holding = tuple(o.id for o in its if abs(o.ordinal - c.ordinal) <= 1 and sentence in o.text)
            if len(holding) < len(its):
                questions.append(PseudoQuestion(sentence, "sentence", document, holding))
    return questions


def _cut_question(document: str, chunk: Chunk, rng: random.Random) -> list[PseudoQuestion]:
    """A sentence cut out of a document's only window, if enough of the window is left to find it by."""
    if not (found := sentences(chunk.text)):
        return []
    sentence = rng.choice(found)
    if len(_WORD.findall(chunk.text.replace(sentence, "", 1))) < MIN_REST_WORDS:
        return []
    return [PseudoQuestion(sentence, "sentence", document, (chunk.id,), cut_from=chunk.id)]


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


def cut_scores(
    question: PseudoQuestion, query: np.ndarray, chunk: Chunk, store: Store, embedder: Embedder
) -> CutScores | None:
    """The scores ``chunk`` would get from the question (embedded: ``query``) had the sentence never been in
    it, both sides exact.

    Dense: the cosine of the query with the rest of the indexed text, embedded. BM25: the rest's term
    weights, with the collection's IDF, which only the engine knows; so one sparse query, filtered to the
    chunk's document, sends each question term weighted by rest / full weight of that term in the chunk,
    and the engine's score, the sum of IDF x query weight x stored (full) weight, is the rest's BM25 score.
    None when the chunk's terms cannot be recomputed as they were written (another tokenizer version or
    length pivot); the question is then not asked.
    """
    meta = store.meta
    full = indexed_text(chunk, embedder.tokens, embedder.max_tokens)
    rest = full.replace(question.text, "", 1)
    lang = language.chunk_languages(chunk.text, [chunk.text])[0]
    full_terms, rest_terms = (bm25.analyze(t, lang, meta.tokenizer) for t in (full, rest))
    if not meta.avg_len or len(full_terms) != chunk.metadata.get("n_tokens") or rest == full:
        return None
    config = BM25Config(k1=meta.k1, b=meta.b, avg_len=meta.avg_len)
    stored = _weights(bm25.document_vector(full_terms, meta.avg_len, config))
    left = _weights(bm25.document_vector(rest_terms, meta.avg_len, config))
    asked = bm25.query_vector(question.text, tokenizer=meta.tokenizer).indices
    ratios = {i: left[i] / stored[i] for i in asked if left.get(i) and stored.get(i)}
    dense = float(embedder.embed([rest])[0] @ query)
    if not ratios:
        return CutScores(dense, None)
    sparse = SparseVector(tuple(sorted(ratios)), tuple(ratios[i] for i in sorted(ratios)))
    where = SearchFilter(fields=(("document_id", chunk.document_id),))
    _, hits = store.search(None, sparse, 8, where)
    return CutScores(dense, next((h.score for h in hits if h.id == chunk.id), None))


def _weights(vector: SparseVector) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


def put_back(hits: list[Hit], chunk: Chunk, score: float | None, limit: int) -> list[Hit]:
    """``hits`` with the cut chunk in its place by ``score``, if it would have been fetched among ``limit``."""
    if score is None:
        return hits
    at = next((i for i, h in enumerate(hits) if h.score < score), len(hits))
    if at >= limit:
        return hits
    return [*hits[:at], Hit(chunk.id, score, document_key(chunk.document_id)), *hits[at:]][:limit]
