"""Training pairs an index's own chunks hold, with no labels: what ``ragline adapt`` learns from.

Two kinds, both drawn from the stored chunks (no file is read again):

* **heading**: a section heading or a document title that names one document only, paired with the first
  window of that section (its plain text: the indexed text repeats the heading word for word);
* **sentence**: a sentence taken out of a window, paired with the rest of the window as it is indexed (the
  inverse cloze task, Lee et al., 2019), so the question's own words are not there to match.

A pair whose question copies its answer teaches nothing, so one whose words are mostly in the answer is
dropped; questions asked of two documents are dropped (which one would be right?), and each document gives
at most ``per_document`` pairs, so that one long manual does not make the training set.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pipeline.eval.pseudo import is_prose, sentences
from pipeline.types import Chunk

PairKind = Literal["heading", "sentence"]
MAX_OVERLAP = 0.75
"""A pair is dropped when this share of its question's words are in its answer."""
PER_DOCUMENT = 8
_WORD = re.compile(r"\w{3,}")


@dataclass(frozen=True)
class Pair:
    query: str
    positive: str
    """The answer's text as the model is trained to read it."""
    kind: PairKind
    chunk_id: str
    """The window the pair came from."""
    document_id: str


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def overlap(query: str, answer: str) -> float:
    """The share of the query's words (3 letters or more) that the answer holds."""
    asked = words(query)
    return len(asked & words(answer)) / len(asked) if asked else 1.0


def mine_pairs(chunks: Iterable[tuple[Chunk, str]], per_document: int = PER_DOCUMENT, seed: int = 0) -> list[Pair]:
    """Pairs from ``(chunk, indexed text)`` items: heading and title pairs first, then sentences, at most
    ``per_document`` of a document, deduplicated, and none whose two sides overlap more than ``MAX_OVERLAP``."""
    rng = random.Random(seed)
    by_document: dict[str, list[tuple[Chunk, str]]] = {}
    for chunk, text in chunks:
        by_document.setdefault(chunk.document_id, []).append((chunk, text))
    # Documents in the order of their paths, not of their ids (hashes of the folder's absolute place): the same
    # folder gives the same pairs wherever it lies.
    order = sorted(by_document, key=lambda d: (by_document[d][0][0].source, d))
    candidates = _heading_pairs(by_document, order) + [
        pair for document in order for pair in _sentence_pairs(by_document[document], rng)
    ]
    asked: dict[str, set[str]] = {}
    for pair in candidates:
        asked.setdefault(pair.query.lower(), set()).add(pair.document_id)
    taken: dict[str, int] = {}
    seen_answers: set[str] = set()
    pairs = []
    for pair in candidates:
        if len(asked[pair.query.lower()]) > 1 or pair.positive in seen_answers:
            continue
        if overlap(pair.query, pair.positive) > MAX_OVERLAP or taken.get(pair.document_id, 0) >= per_document:
            continue
        taken[pair.document_id] = taken.get(pair.document_id, 0) + 1
        seen_answers.add(pair.positive)
        pairs.append(pair)
    return pairs


def _heading_pairs(by_document: dict[str, list[tuple[Chunk, str]]], order: list[str]) -> list[Pair]:
    """The deepest heading of each section with its first window, and the title with the document's first
    window (a window paired with its heading already is not paired again)."""
    pairs = []
    for document in order:
        its = sorted(by_document[document], key=lambda item: item[0].ordinal)
        first: dict[str, Chunk] = {}
        for chunk, _ in its:
            title = str(chunk.metadata.get("title") or "")
            for name, longest in ((chunk.heading[-1] if chunk.heading else "", 12), (title, 30)):
                if name.strip() and is_prose(name, 2, longest):
                    first.setdefault(name.strip(), chunk)
        pairs += [Pair(name, c.text, "heading", c.id, document) for name, c in first.items() if c.text.strip()]
    return pairs


def _sentence_pairs(its: list[tuple[Chunk, str]], rng: random.Random) -> list[Pair]:
    """One sentence of each window, paired with the rest of the window's indexed text."""
    pairs = []
    for chunk, text in its:
        if found := sentences(chunk.text):
            sentence = rng.choice(found)
            rest = text.replace(sentence, " ", 1)
            if len(words(rest)) >= 8:
                pairs.append(Pair(sentence, rest, "sentence", chunk.id, chunk.document_id))
    return pairs
