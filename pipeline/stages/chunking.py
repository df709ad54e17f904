"""Token-aware chunking with langchain-text-splitters.

Sections that share a heading path are split together, so a chunk never mixes
two Markdown/HTML sections but may span a PDF page break (its page becomes a
span). Lengths are counted with the embedder's own tokenizer, and any piece
the splitter could not bring under the limit is cut on token borders, so no
chunk is ever truncated silently by the model.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from pathlib import PurePosixPath

from pipeline.config import ChunkingConfig
from pipeline.types import Chunk, Document, Section, TokenCounter, document_key

CHUNK_NAMESPACE = uuid.UUID("6f1c1f4e-52a4-4d0b-9a55-8c2f3f0b7a11")
INDEXED_TEXT_VERSION = "title-filename-heading-page@1"
"""What ``indexed_text`` puts before a chunk; evaluation caches key on it."""
_NAME_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    page: int | None


def chunk_id(document_id: str, ordinal: int, text: str) -> str:
    """A UUID whose first half is the document's key (``types.document_key``) and whose second half hashes
    the chunk's place and text, so an unchanged chunk keeps its id and its document is read off the id."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    tail = uuid.uuid5(CHUNK_NAMESPACE, f"{document_id}:{ordinal}:{digest}").hex[16:]
    return str(uuid.UUID(hex=document_key(document_id) + tail))


def _hard_split(text: str, limit: int, tokens: TokenCounter) -> list[tuple[int, str]]:
    """Cut text that has no separator left into pieces of at most ``limit`` tokens."""
    offsets = tokens.offsets(text)
    pieces: list[tuple[int, str]] = []
    for i in range(0, len(offsets), limit):
        window = offsets[i : i + limit]
        start, end = window[0][0], window[-1][1]
        pieces.append((start, text[start:end]))
    return pieces


def _split(text: str, config: ChunkingConfig, tokens: TokenCounter) -> list[tuple[int, str]]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    # The splitter measures every piece at least twice (when splitting, when merging): counting each once
    # halves the chunk stage, which runs beside the embedder on the same cores.
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=config.chunk_tokens,
        chunk_overlap=config.overlap_tokens,
        length_function=lru_cache(maxsize=None)(tokens.count),
    )
    pieces: list[tuple[int, str]] = []
    cursor = 0
    for piece in splitter.split_text(text):
        # langchain's own start_index assumes the overlap is counted in characters.
        # A piece starts at or after the overlap window of the one before; only text
        # that repeats itself within that window can still be placed one repeat early.
        start = text.find(piece, cursor)
        if start < 0:
            start = text.find(piece)
        piece_offsets = tokens.offsets(piece)
        back = config.overlap_tokens + 8
        cursor = start + (piece_offsets[-back][0] if len(piece_offsets) > back else 1)
        if len(piece_offsets) <= config.chunk_tokens:
            pieces.append((start, piece))
        else:
            pieces.extend((start + s, t) for s, t in _hard_split(piece, config.chunk_tokens, tokens))
    return pieces


def _section_spans(sections: tuple[Section, ...]) -> list[tuple[Section, int]]:
    spans, offset = [], 0
    for section in sections:
        spans.append((section, offset))
        offset += len(section.text) + len(Document.SECTION_SEPARATOR)
    return spans


def chunk(document: Document, config: ChunkingConfig, tokens: TokenCounter) -> list[Chunk]:
    """Split a document into chunks of at most ``config.chunk_tokens`` tokens."""
    chunks: list[Chunk] = []
    base = {k: document.metadata[k] for k in ("title", "ext", "mime") if k in document.metadata}
    for heading, group in groupby(_section_spans(document.sections), key=lambda s: s[0].heading):
        members = list(group)
        group_start = members[0][1]
        text = Document.SECTION_SEPARATOR.join(s.text for s, _ in members)
        spans = [_Span(off - group_start, off - group_start + len(s.text), s.page) for s, off in members]
        for start, piece in _split(text, config, tokens):
            end = start + len(piece)
            pages = [s.page for s in spans if s.page is not None and s.start < end and s.end > start]
            ordinal = len(chunks)
            chunks.append(
                Chunk(
                    id=chunk_id(document.id, ordinal, piece),
                    document_id=document.id,
                    source=document.source,
                    text=piece,
                    ordinal=ordinal,
                    start=group_start + start,
                    end=group_start + end,
                    page_start=min(pages) if pages else None,
                    page_end=max(pages) if pages else None,
                    heading=heading,
                    metadata=base,
                )
            )
    return chunks


def file_words(source: str) -> str:
    """The words of a file's name, without its extension: ``sql-createpublication.html`` -> ``sql createpublication``.

    Folders are named by people for people; the name often says what the file is about in words its text
    uses rarely (a reference page names its command once, in the title).
    """
    return " ".join(_NAME_WORD.findall(PurePosixPath(source).stem))


def context_lines(chunk: Chunk) -> list[str]:
    """What the chunk is part of, most general first: the document's title and file name, the heading path,
    the page. Repeats are dropped (a title that is also the first heading, a file name the title already says).
    Only chunks of files (``ext`` in the metadata) carry a file name; a corpus entry's id is not one.
    """
    title = str(chunk.metadata.get("title") or "").strip()
    words = file_words(chunk.source) if chunk.metadata.get("ext") else ""
    first = title
    if words and words.lower() not in " ".join(_NAME_WORD.findall(title.lower())):
        first = f"{title} ({words})" if title else words
    heading = [h for h in chunk.heading if h.strip() and h.strip().lower() != title.lower()]
    lines = [first] if first else []
    if heading:
        lines.append(" > ".join(heading))
    if chunk.page is not None:
        lines.append(f"page {chunk.page}")
    return lines


def indexed_text(chunk: Chunk, tokens: TokenCounter, max_tokens: int) -> str:
    """The text that is embedded and BM25-indexed: the chunk's context (title, file name words, heading path,
    page), then the chunk.

    A query names what a document is about ("logical replication"), which the title, the file name or a
    section's heading ("Firmware 2.2") often say while the window itself never repeats them. Context is
    dropped from the most general line down where it would push the chunk past the model's input limit;
    citations show the plain text. A chunk too long for the model on its own (a whole corpus entry) keeps all
    its context: its end is cut whatever is dropped, and its title says more than its last words.
    """
    lines = context_lines(chunk)
    if tokens.count(chunk.text) > max_tokens:
        return "\n".join([*lines, chunk.text])
    for start in range(len(lines) + 1):
        text = "\n".join([*lines[start:], chunk.text])
        if start == len(lines) or tokens.count(text) <= max_tokens:
            return text
    return chunk.text  # pragma: no cover - the loop returns at its last step
