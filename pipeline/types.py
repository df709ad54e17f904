"""Frozen values that flow between stages.

Stages never mutate these: a later stage derives a new value with
``dataclasses.replace`` so earlier results stay valid for logging and tests.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol


def _frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


class TokenCounter(Protocol):
    """Counts tokens as the embedder's tokenizer does (chunking cuts on its token borders; prompts budget with it)."""

    def count(self, text: str) -> int: ...

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token."""
        ...


def document_id(root_uri: str, source: str) -> str:
    """The one document id: the sync root's URI and the path under it, so re-indexing a changed
    file replaces its chunks, and the same relative path under two roots stays two documents."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{root_uri}/{source}"))


def document_key(document_id: str) -> str:
    """16 hex digits that tell one document from another. Every chunk id begins with its document's key,
    so ranking groups candidates by document from their ids alone: reading a payload field per candidate
    cost more than the whole search on a cold page cache."""
    return hashlib.sha1(document_id.encode("utf-8")).hexdigest()[:16]


def id_document_key(point_id: str) -> str:
    """The document key a chunk id begins with (in an index whose meta says its ids do)."""
    return point_id.replace("-", "")[:16]


@dataclass(frozen=True)
class Section:
    """A run of text that shares one page number and one heading path."""

    text: str
    page: int | None = None
    heading: tuple[str, ...] = ()


@dataclass(frozen=True)
class Document:
    """A parsed source file.

    ``text`` is the sections joined by ``SECTION_SEPARATOR``; chunk character
    offsets point into it, so a citation can be traced back to the exact span.
    """

    id: str
    source: str
    sections: tuple[Section, ...]
    content_hash: str
    metadata: Mapping[str, Any] = field(default_factory=_frozen_map)

    SECTION_SEPARATOR = "\n\n"

    @property
    def text(self) -> str:
        return self.SECTION_SEPARATOR.join(s.text for s in self.sections)

    @property
    def title(self) -> str:
        return str(self.metadata.get("title") or self.source)


@dataclass(frozen=True)
class Chunk:
    """A retrievable span of one document, with everything a citation needs."""

    id: str
    document_id: str
    source: str
    text: str
    ordinal: int
    start: int
    end: int
    page_start: int | None = None
    page_end: int | None = None
    heading: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=_frozen_map)
    root_label: str = ""
    """The short name of the folder the document was synced from, set when the index holds several ("": one)."""

    @property
    def path(self) -> str:
        """The source under its root's label, ``teamA/notes.md``: what tells two folders' ``notes.md`` apart
        (just the source in an index of one folder)."""
        return f"{self.root_label}/{self.source}" if self.root_label else self.source

    @property
    def page(self) -> str | None:
        """Page label for citations: "3" or a span "3-4"."""
        if self.page_start is None:
            return None
        if self.page_end is None or self.page_end == self.page_start:
            return str(self.page_start)
        return f"{self.page_start}-{self.page_end}"

    @property
    def citation(self) -> str:
        parts = [self.path]
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.heading:
            parts.append(" > ".join(self.heading))
        return ", ".join(parts)


@dataclass(frozen=True)
class Span:
    """Characters ``start``..``end`` (end exclusive) of a chunk's text."""

    start: int
    end: int


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk with the score each retrieval stage gave it (None: stage not run), and its evidence spans:
    the sentences that best match the query, set on the results a search returns."""

    chunk: Chunk
    dense: float | None = None
    bm25: float | None = None
    fused: float | None = None
    rerank: float | None = None
    highlights: tuple[Span, ...] = ()
    copies: tuple[Chunk, ...] = ()
    """Chunks of the same text that this result stands for (a copied file, a paragraph repeated across files):
    each took no place of its own in the results (``retrieval.collapse_copies``)."""

    @property
    def score(self) -> float:
        """The score of the last stage that ran, which decides the order."""
        for value in (self.rerank, self.fused, self.dense, self.bm25):
            if value is not None:
                return value
        return 0.0

    def scores(self) -> dict[str, float | None]:
        return {"dense": self.dense, "bm25": self.bm25, "fused": self.fused, "rerank": self.rerank}


@dataclass(frozen=True)
class Turn:
    """One message of a chat so far: what the user asked or what the assistant answered."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class SkippedFile:
    """A file the run could not index, and why (shown in the run's report)."""

    source: str
    reason: str


@dataclass(frozen=True)
class SparseVector:
    """BM25 term weights of one text: term indices (a stable hash of each term) and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.indices)
