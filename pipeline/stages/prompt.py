"""Prompt building: numbered, cited context blocks within a token budget.

Adjacent (or overlapping) chunks of one document are merged into one block, so
the model reads continuous text once. Blocks that do not fit the budget are
dropped whole, never cut, and the prompt says how many were left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.config import PromptConfig
from pipeline.types import Chunk, ScoredChunk, TokenCounter


@dataclass(frozen=True)
class ContextBlock:
    number: int
    source: str
    page: str | None
    heading: tuple[str, ...]
    text: str
    chunk_ids: tuple[str, ...]
    score: float

    @property
    def citation(self) -> str:
        parts = [self.source]
        if self.page:
            parts.append(f"p. {self.page}")
        if self.heading:
            parts.append(" > ".join(self.heading))
        return ", ".join(parts)

    def render(self) -> str:
        return f"[{self.number}] {self.citation}\n{self.text}"


@dataclass(frozen=True)
class Prompt:
    text: str
    blocks: tuple[ContextBlock, ...]
    token_count: int
    budget: int
    dropped_chunks: int
    low_confidence: bool = False


def _page_label(start: int | None, end: int | None) -> str | None:
    if start is None:
        return None
    return str(start) if end in (None, start) else f"{start}-{end}"


@dataclass
class _Group:
    chunks: list[Chunk]
    score: float

    def touches(self, chunk: Chunk) -> bool:
        last = self.chunks[-1]
        return (
            last.document_id == chunk.document_id
            and last.heading == chunk.heading
            and chunk.ordinal == last.ordinal + 1
        )

    def text(self) -> str:
        text = self.chunks[0].text
        end = self.chunks[0].end
        for c in self.chunks[1:]:
            if c.start < end:  # overlapping window: keep only the new part
                text += c.text[end - c.start :]
            else:
                text += "\n" + c.text
            end = c.end
        return text


def merge_adjacent(results: Sequence[ScoredChunk]) -> list[_Group]:
    """Group chunks of one document with consecutive ordinals; groups keep their best score."""
    by_doc = sorted(results, key=lambda r: (r.chunk.document_id, r.chunk.ordinal))
    groups: list[_Group] = []
    for r in by_doc:
        if groups and groups[-1].touches(r.chunk):
            groups[-1].chunks.append(r.chunk)
            groups[-1].score = max(groups[-1].score, r.score)
        else:
            groups.append(_Group([r.chunk], r.score))
    groups.sort(key=lambda g: -g.score)
    return groups


LOW_CONFIDENCE_NOTE = (
    "(Retrieval confidence is low: these blocks may not contain the answer. If they do not, say you do not know.)"
)


def build_prompt(
    question: str,
    results: Sequence[ScoredChunk],
    config: PromptConfig,
    tokens: TokenCounter,
    budget: int | None = None,
    low_confidence: bool = False,
) -> Prompt:
    """Fill the template with as many blocks, best first, as the context budget allows; when retrieval was
    not confident, the context says so, so the model can decline rather than answer from weak context."""
    budget = budget or config.max_context_tokens
    groups = merge_adjacent(results) if config.merge_adjacent else [_Group([r.chunk], r.score) for r in results]
    blocks: list[ContextBlock] = []
    used = 0
    dropped = 0
    for group in groups:
        first = group.chunks[0]
        pages = [p for c in group.chunks for p in (c.page_start, c.page_end) if p is not None]
        block = ContextBlock(
            number=len(blocks) + 1,
            source=first.path,
            page=_page_label(min(pages), max(pages)) if pages else None,
            heading=first.heading,
            text=group.text(),
            chunk_ids=tuple(c.id for c in group.chunks),
            score=group.score,
        )
        cost = tokens.count(block.render()) + 2
        if used + cost > budget:
            dropped += len(group.chunks)
            continue
        blocks.append(block)
        used += cost
    context = "\n\n".join(b.render() for b in blocks) or "(no context found)"
    if dropped:
        context += f"\n\n({dropped} more retrieved chunk(s) left out to fit the {budget}-token context budget)"
    if low_confidence and blocks:
        context = f"{LOW_CONFIDENCE_NOTE}\n\n{context}"
    text = config.template.format(context=context, question=question)
    return Prompt(
        text=text,
        blocks=tuple(blocks),
        token_count=tokens.count(text),
        budget=budget,
        dropped_chunks=dropped,
        low_confidence=low_confidence and bool(blocks),
    )
