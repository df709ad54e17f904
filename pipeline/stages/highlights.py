"""Evidence spans: the sentences of a chunk that best match the query, as character spans a UI can mark.

Computed from what retrieval already has, so it costs microseconds per chunk: the query's BM25 terms
(same analysis as the index: stems, stopwords, codes) against each sentence's terms. A term that occurs
in every returned chunk tells the sentences apart less than a rare one, so each term weighs by its
inverse frequency across the results (a per-response IDF). A paraphrase that shares no term with the
chunk gets no highlight rather than a guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pipeline.stages import bm25
from pipeline.types import Span

# A sentence ends at . ! ? (followed by space) or at a line break; a table row ("Header: value") is one line.
_SENTENCE = re.compile(r"[^\n]+?(?:[.!?](?=\s)|\n|$)", re.S)
_MIN_CHARS = 3


def sentences(text: str) -> list[Span]:
    """Each sentence's span, leading and trailing blanks trimmed."""
    spans: list[Span] = []
    for match in _SENTENCE.finditer(text):
        piece = match.group(0)
        start = match.start() + len(piece) - len(piece.lstrip())
        end = match.end() - (len(piece) - len(piece.rstrip()))
        if end - start >= _MIN_CHARS:
            spans.append(Span(start, end))
    return spans


class QueryTerms:
    """A query's terms, analysed once for all the chunks of a response."""

    def __init__(self, query: str) -> None:
        self.terms = frozenset(bm25.query_terms(query))
        self.languages = {t.split(":", 1)[0] for t in self.terms if ":" in t}

    def of(self, text: str) -> frozenset[str]:
        """The query terms that ``text`` holds, analysed as English and as the query's other language."""
        found = set(bm25.tokenize(text))
        for language in self.languages:
            found.update(bm25.tokenize(text, language))
        return frozenset(found & self.terms)


def _weights(query: QueryTerms, texts: Sequence[str]) -> dict[str, float]:
    """Inverse frequency of each query term across ``texts`` (smoothed: a term in every text still counts)."""
    held = [query.of(text) for text in texts]
    n = len(texts)
    return {term: math.log(1 + (n + 1) / (1 + sum(term in h for h in held))) for term in query.terms}


def best_sentences(query: QueryTerms, text: str, weights: dict[str, float], limit: int) -> tuple[Span, ...]:
    """Up to ``limit`` sentences of ``text`` scoring at least half the best one, in text order."""
    scored = []
    for span in sentences(text):
        score = sum(weights.get(term, 0.0) for term in query.of(text[span.start : span.end]))
        if score > 0:
            scored.append((score, span))
    if not scored:
        return ()
    top = max(score for score, _ in scored)
    kept = sorted((s for s in scored if s[0] >= top / 2), key=lambda s: (-s[0], s[1].start))[:limit]
    return tuple(sorted((span for _, span in kept), key=lambda span: span.start))


def highlight(query: str, texts: Sequence[str], limit: int = 2) -> list[tuple[Span, ...]]:
    """Each text's evidence spans for ``query`` (``limit`` sentences at most per text)."""
    terms = QueryTerms(query)
    if not terms.terms or limit < 1:
        return [() for _ in texts]
    weights = _weights(terms, texts)
    return [best_sentences(terms, text, weights, limit) for text in texts]


def keep_best(query: str, text: str, limit: int) -> str:
    """``text`` cut to its ``limit`` best sentences for ``query``, joined by " … " where text was left out;
    the whole text when it has no more sentences than that or none matches."""
    spans = sentences(text)
    if len(spans) <= limit:
        return text
    best = highlight(query, [text], limit)[0]
    if not best:
        return text
    order = [spans.index(span) for span in best]
    out, last = [], -1
    for index in order:
        if index > last + 1:
            out.append("…")
        out.append(text[spans[index].start : spans[index].end])
        last = index
    if last < len(spans) - 1:
        out.append("…")
    return " ".join(out)
