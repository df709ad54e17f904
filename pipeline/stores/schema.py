"""The payload schema: what every chunk point carries, read and written by sync, both stores and migrate.

A point is one chunk. Its payload holds what a citation and the filters need (the chunk's fields and its
document's metadata) and its document's sync state (:data:`DOC_STATE_FIELDS`). Whether a document is fully
written is derived from the points themselves (all share one ``content_hash`` and there are
``chunk_count`` of them), so a crash at any moment is detected and repaired by the next sync: the index is
its own sync record. Changing a name here changes the index format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.types import Chunk

DENSE = "dense"
"""The named dense vector (cosine)."""
SPARSE = "bm25"
"""The named sparse vector of BM25 term weights (Qdrant's IDF modifier)."""
ACCESS = "access"
"""The principals that may read a chunk's document (``pipeline.access``): matched inside every query when
access control is on."""
PENDING = "pending"
"""``"dense"`` on a point written for BM25 before its dense vector (``pipeline.sync``): searchable by BM25 at
once, by dense search once the embedder has caught up and the key is removed. Counted for ``coverage``."""
AWAITING_DENSE = "dense"
INDEXED_FIELDS = ("document_id", "source", "ext", ACCESS, PENDING)
"""Keyword payload indexes: deletes by document, path and file-type filters, the readers' match, the count
of points still waiting for their dense vector."""
CHUNK_FIELDS = frozenset(
    {"document_id", "source", "text", "ordinal", "start", "end", "page_start", "page_end", "heading"}
)
DOC_STATE_FIELDS = ["document_id", "source", "root", "content_hash", "chunk_count", "n_tokens", ACCESS]
PAYLOAD_FIELDS = {
    "source": "the file's path under its folder, e.g. guides/setup.md (--path matches it, and label/path)",
    "root": "the URI of the folder it was synced from, file:///...",
    "ext": "the file type, pdf, md, html, ... (--type matches it)",
    "title": "the document's title (its metadata, first heading, or file name)",
    "heading": "the headings above the chunk, outermost first (matches any of them)",
    "page_start": "the page the chunk starts on (PDF, PPTX slides), 1-based",
    "page_end": "the page the chunk ends on",
    "ordinal": "the chunk's place in its document, 0 first",
    "start": "the chunk's first character in the document's text",
    "end": "the character after the chunk's last",
    "mime": "the file's media type, application/pdf, ...",
    "size": "the file's size in bytes",
    "mtime": "the file's modification time, seconds since 1970",
    "author": "the document's author (DOCX)",
    "subject": "an email's subject (EML), also its title",
    "from": "an email's sender (EML)",
    "to": "an email's recipients (EML)",
    "cc": "an email's copy recipients (EML)",
    "date": "an email's date header (EML)",
    "pages_failed": "pages of a PDF whose text could not be read",
    "document_id": "the document's id (a UUID from its folder and path)",
    "content_hash": "the SHA-256 of the file's bytes",
    "chunk_count": "how many chunks the document has",
    "n_tokens": "the chunk's BM25 length in tokens",
    PENDING: "'dense' while the chunk waits for its dense vector (BM25 finds it already); absent once embedded",
    ACCESS: "who may read the document: everyone, user:NAME, group:NAME (with [access] enabled; docs/access.md)",
}
"""Every payload field a chunk point can carry, and what it holds: what ``--where key=value`` matches exactly
(the chunk ``text`` itself is searched, not matched). Documented in docs/filters.md."""


def document_fields(
    content_hash: str, chunk_count: int, n_tokens: int, root: str, mtime: Any, readers: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """The sync state each point of a document carries (``n_tokens``: this chunk's BM25 length; ``readers``:
    who may read it, with access control on)."""
    fields = {
        "content_hash": content_hash,
        "chunk_count": chunk_count,
        "n_tokens": n_tokens,
        "root": root,
        "mtime": mtime,
    }
    if readers is not None:
        fields[ACCESS] = list(readers)
    return fields


def chunk_payload(chunk: Chunk, extra: Mapping[str, Any]) -> dict[str, Any]:
    payload = {
        "document_id": chunk.document_id,
        "source": chunk.source,
        "text": chunk.text,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "heading": list(chunk.heading),
        **dict(chunk.metadata.items()),
    }
    payload.update(extra)
    return payload


def chunk_from_payload(point_id: Any, payload: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=str(point_id),
        document_id=payload["document_id"],
        source=payload["source"],
        text=payload["text"],
        ordinal=int(payload["ordinal"]),
        start=int(payload["start"]),
        end=int(payload["end"]),
        page_start=payload.get("page_start"),
        page_end=payload.get("page_end"),
        heading=tuple(payload.get("heading") or ()),
        metadata={k: v for k, v in payload.items() if k not in CHUNK_FIELDS and k != PENDING},
    )


@dataclass(frozen=True)
class DocumentState:
    """A document as the index holds it, summarised from its points."""

    document_id: str
    source: str
    root: str
    content_hashes: frozenset[str]
    chunk_count: int
    points: int
    n_tokens: int
    access: frozenset[tuple[str, ...] | None] = frozenset()
    """The readers its points name, each as sorted principals (None: a point with no ``access``): one value
    when all agree."""

    @property
    def readers(self) -> tuple[str, ...] | None:
        """The principals every point of the document names; None when a point names none, or they differ."""
        return next(iter(self.access)) if len(self.access) == 1 else None

    @property
    def content_hash(self) -> str | None:
        return next(iter(self.content_hashes)) if len(self.content_hashes) == 1 else None

    @property
    def complete(self) -> bool:
        return self.content_hash is not None and self.points == self.chunk_count


def summarise_documents(payloads: Iterable[Mapping[str, Any]]) -> dict[str, DocumentState]:
    """Fold the ``DOC_STATE_FIELDS`` of every point into one state per document."""
    acc: dict[str, dict[str, Any]] = {}
    for p in payloads:
        state = acc.setdefault(
            p["document_id"],
            {
                "source": p["source"],
                "root": p.get("root", ""),
                "hashes": set(),
                "chunk_count": 0,
                "points": 0,
                "n_tokens": 0,
                "access": set(),
            },
        )
        state["hashes"].add(p["content_hash"])
        state["chunk_count"] = max(state["chunk_count"], int(p["chunk_count"]))
        state["points"] += 1
        state["n_tokens"] += int(p["n_tokens"])
        readers = p.get(ACCESS)
        state["access"].add(tuple(sorted(readers)) if isinstance(readers, list) else None)
    return {
        doc_id: DocumentState(
            doc_id,
            s["source"],
            s["root"],
            frozenset(s["hashes"]),
            s["chunk_count"],
            s["points"],
            s["n_tokens"],
            frozenset(s["access"]),
        )
        for doc_id, s in acc.items()
    }
