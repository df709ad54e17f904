"""Prompt building: numbered, cited context blocks within a token budget.

Adjacent (or overlapping) chunks of one document are merged into one block, so
the model reads continuous text once; where a merged part starts on another page,
the block says so in its text, so each part keeps its page. Blocks that do not fit
the budget are dropped whole, never cut; how many is reported beside the prompt
(:attr:`Prompt.note`), not told to the model, which can do nothing with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pipeline.config import PromptConfig
from pipeline.stages.highlights import keep_best
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
    pages: tuple[str | None, ...] = ()
    """Each merged part's page, in the order of ``chunk_ids``."""
    position: str | None = None
    """Where in its document the block lies ("chunk 3 of 7"), given when another block has the same citation."""

    @property
    def citation(self) -> str:
        parts = [self.source]
        if self.page:
            parts.append(f"p. {self.page}")
        if self.heading:
            parts.append(" > ".join(self.heading))
        if self.position:
            parts.append(self.position)
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

    @property
    def note(self) -> str | None:
        """What the budget left out, for the caller (the prompt itself does not say)."""
        if not self.dropped_chunks:
            return None
        if not self.blocks:
            return f"none of the {self.dropped_chunks} retrieved chunk(s) fit the {self.budget}-token context budget"
        return f"{self.dropped_chunks} more retrieved chunk(s) left out to fit the {self.budget}-token context budget"


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
        """The parts' text once each; a part that starts on another page than the one before is marked
        ``(p. 4)``, so an answer on p. 3 of a block cited p. 3-4 can be told from one on p. 4."""
        text = self.chunks[0].text
        end, page = self.chunks[0].end, self.chunks[0].page_start
        for c in self.chunks[1:]:
            new = c.text[end - c.start :] if c.start < end else c.text  # overlapping window: only the new part
            if c.page_start is not None and c.page_start != page:
                text += f"\n(p. {c.page_start}) " + new.lstrip()
            else:
                text += new if c.start < end else "\n" + new
            end, page = c.end, c.page_end if c.page_end is not None else c.page_start
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


NO_CONTEXT = "(no context found)"


def _block(group: _Group) -> ContextBlock:
    first = group.chunks[0]
    pages = [p for c in group.chunks for p in (c.page_start, c.page_end) if p is not None]
    return ContextBlock(
        number=0,
        source=first.path,
        page=_page_label(min(pages), max(pages)) if pages else None,
        heading=first.heading,
        text=group.text(),
        chunk_ids=tuple(c.id for c in group.chunks),
        score=group.score,
        pages=tuple(c.page for c in group.chunks),
    )


def _told_apart(blocks: list[ContextBlock], groups: list[_Group]) -> list[ContextBlock]:
    """Blocks that would share a citation (two parts of an FAQ with no headings) each say where they lie."""
    seen = Counter(b.citation for b in blocks)
    return [
        replace(b, position=_position(g.chunks)) if seen[b.citation] > 1 else b
        for b, g in zip(blocks, groups, strict=True)
    ]


def _position(chunks: list[Chunk]) -> str:
    first, last = chunks[0].ordinal + 1, chunks[-1].ordinal + 1
    count = chunks[0].metadata.get("chunk_count")
    span = f"chunk {first}" if first == last else f"chunks {first}-{last}"
    return f"{span} of {count}" if count else span


def build_prompt(
    question: str,
    results: Sequence[ScoredChunk],
    config: PromptConfig,
    tokens: TokenCounter,
    budget: int | None = None,
    low_confidence: bool = False,
    searched: str | None = None,
) -> Prompt:
    """Fill the template with as many blocks, best first, as the context budget allows; when retrieval was
    not confident, the context says so, so the model can decline rather than answer from weak context.
    With ``config.best_sentences``, each block keeps only its sentences that best match ``searched`` (the
    query that was searched; default ``question``)."""
    budget = budget or config.max_context_tokens
    groups = merge_adjacent(results) if config.merge_adjacent else [_Group([r.chunk], r.score) for r in results]
    blocks: list[ContextBlock] = []
    used = 0
    dropped = 0
    candidates = _told_apart([_block(group) for group in groups], groups)
    if config.best_sentences:
        query = searched or question
        candidates = [replace(b, text=keep_best(query, b.text, config.best_sentences)) for b in candidates]
    for block, group in zip(candidates, groups, strict=True):
        block = replace(block, number=len(blocks) + 1)
        cost = tokens.count(block.render()) + 2
        if used + cost > budget:
            dropped += len(group.chunks)
            continue
        blocks.append(block)
        used += cost
    empty = "(no context: the retrieved passages were too long for the context budget)" if dropped else NO_CONTEXT
    context = "\n\n".join(b.render() for b in blocks) or empty
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
