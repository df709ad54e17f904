"""Document-aware ranking: a chunk is weighed with the other candidates of its document, and no document
fills the results alone.

A question is usually about a document or a section, not about one 200-token window. A file whose several
windows match the question is more likely the right one than a file with one lucky window that shares a
few rare words with it; the candidate lists already hold that evidence, for free. And a prompt of five
windows of one file has room for nothing else, nor has one of the same passage from five copies of a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from pipeline.retrieval.fusion import Fused
from pipeline.types import ScoredChunk


def with_document_evidence(fused: Sequence[Fused], weight: float, chunks: int) -> list[Fused]:
    """Add to each chunk's score ``weight`` times the summed scores of its document's best ``chunks``
    candidates (each scaled by the best candidate's score, so the blend means the same for every fusion
    method), and re-rank. Within one document the order is kept; 0 leaves the ranking as it is."""
    if weight <= 0 or chunks <= 0 or not fused:
        return list(fused)
    top = max(f.fused for f in fused)
    scale = top if top > 0 else 1.0
    best: dict[str, list[float]] = {}
    for f in fused:  # best first, so each document's list is ordered
        best.setdefault(f.document or f.id, []).append(f.fused / scale)
    evidence = {doc: sum(sorted(scores, reverse=True)[:chunks]) for doc, scores in best.items()}
    rescored = [replace(f, fused=f.fused / scale + weight * evidence[f.document or f.id]) for f in fused]
    return sorted(rescored, key=lambda f: -f.fused)  # stable: ties keep the fusion order


def cap_per_document(ranked: Sequence[Fused], limit: int, per_document: int) -> list[Fused]:
    """The first ``limit`` candidates with at most ``per_document`` of any one document; when too few
    documents are left to fill ``limit``, the held-back ones follow in order. 0: no cap."""
    if per_document <= 0:
        return list(ranked[:limit])
    kept: list[Fused] = []
    held: list[Fused] = []
    count: dict[str, int] = {}
    for f in ranked:
        key = f.document or f.id
        if count.get(key, 0) < per_document:
            count[key] = count.get(key, 0) + 1
            kept.append(f)
            if len(kept) == limit:
                return kept
        else:
            held.append(f)
    return kept + held[: limit - len(kept)]


def collapse_copies(results: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """The results with each text once, in order: a result whose text (whitespace aside) equals a better
    one's joins that one's ``copies``. Folders hold copies (a manual installed twice, a file saved under a
    new name, a disclaimer in every letter); a search that returns the same passage twice tells the reader
    nothing new and pushes a different file down."""
    kept: list[ScoredChunk] = []
    first: dict[str, int] = {}
    for result in results:
        text = " ".join(result.chunk.text.split())
        if text not in first:
            first[text] = len(kept)
            kept.append(result)
            continue
        at = first[text]
        copies = (*kept[at].copies, result.chunk, *result.copies)
        kept[at] = replace(kept[at], copies=copies)
    return kept
