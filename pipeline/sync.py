"""Incremental, idempotent sync of a folder into a store.

The index itself is the record of what was synced: each point carries its
document's content hash and chunk count. Unchanged files are skipped by hash;
a changed file's new chunks are written before its old ones are deleted, so a
document is never missing; a crash leaves a document "incomplete" (mixed hashes
or too few points) and the next run rewrites it. Files that cannot be read keep
whatever version was indexed before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from connectors import FolderSource, load_document
from pipeline import bm25
from pipeline.chunking import TokenCounting, chunk
from pipeline.config import AppConfig
from pipeline.errors import ConfigError, UnreadableFileError
from pipeline.store import DocumentState, Store
from pipeline.types import Chunk, Document, SkippedFile

WRITE_BATCH_CHUNKS = 256


class Embedding(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    @property
    def tokens(self) -> TokenCounting: ...

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class SyncReport:
    root: str
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: int = 0
    removed: tuple[str, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    chunks_written: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "skipped": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "chunks_written": self.chunks_written,
            "seconds": round(self.seconds, 3),
            "changed": self.changed,
        }


@dataclass
class _Pending:
    document: Document
    chunks: list[Chunk]
    texts: list[str]
    tokens: list[list[str]]
    written: list[str] = field(default_factory=list)


def document_id(root_uri: str, source: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{root_uri}/{source}"))


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


ProgressCallback = Callable[[str, int, int], None]
"""Called with (phase, done, total) as a sync goes: "parsing" files, then "embedding" chunks."""
Progress = bool | ProgressCallback


class _Phase:
    """One phase of a sync, shown as a tqdm bar (progress=True) or reported to a callback."""

    def __init__(self, progress: Progress, name: str, total: int, unit: str) -> None:
        self.name, self.total, self.done = name, total, 0
        self._callback = progress if callable(progress) else None
        self._bar = None
        if progress is True and total:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=name, unit=unit, leave=False)
        self.advance(0)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None and n:
            self._bar.update(n)
        if self._callback is not None:
            self._callback(self.name, self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


Splitter = Callable[[Document], list[Chunk]]


def sync_folder(
    root: str | Path,
    store: Store,
    embedder: Embedding,
    config: AppConfig,
    progress: Progress = False,
) -> SyncReport:
    """Bring the index in step with ``root``: add, update and remove documents."""
    started = time.perf_counter()
    _check_chunk_size(config, embedder)
    folder = Path(root).expanduser().resolve()
    scan = FolderSource(
        folder,
        include=config.source.include,
        exclude=config.source.exclude,
        max_file_bytes=int(config.source.max_file_mb * 1_000_000),
    ).scan()
    root_uri = folder.as_uri()
    indexed = _indexed(store, root_uri)

    skipped: list[SkippedFile] = list(scan.skipped)
    present = {document_id(root_uri, f.source) for f in scan.files} | {
        document_id(root_uri, s.source) for s in scan.skipped
    }
    pending: list[_Pending] = []
    unchanged = 0
    split = _default_splitter(config, embedder)
    parsing = _Phase(progress, "parsing", len(scan.files), "file")
    for file in scan.files:
        parsing.advance()
        doc_id = document_id(root_uri, file.source)
        state = indexed.get(doc_id)
        try:
            if state is not None and state.complete and state.content_hash == file_hash(file.path):
                unchanged += 1
                continue
            document = dataclasses.replace(load_document(file), id=doc_id)
            pending.append(_prepare(document, split, embedder))
        except UnreadableFileError as exc:
            skipped.append(SkippedFile(file.source, str(exc)))
        except OSError as exc:
            skipped.append(SkippedFile(file.source, f"cannot read: {exc.strerror or exc}"))
    parsing.close()

    written, removed = _commit(pending, indexed, present, store, embedder, config, root_uri, progress)
    return _report(str(folder), pending, indexed, unchanged, removed, skipped, written, started)


def sync_documents(
    documents: Iterable[Document],
    root_uri: str,
    store: Store,
    embedder: Embedding,
    config: AppConfig,
    split: Splitter | None = None,
    progress: Progress = False,
) -> SyncReport:
    """Sync documents that arrive parsed (a BEIR corpus, say), by the same rules as a folder.

    ``root_uri`` names the collection: documents under it that are not in
    ``documents`` are removed. ``split`` replaces the chunker (the evaluation
    indexes whole documents, as BEIR does).
    """
    started = time.perf_counter()
    if split is None:
        _check_chunk_size(config, embedder)
        split = _default_splitter(config, embedder)
    indexed = _indexed(store, root_uri)
    pending: list[_Pending] = []
    present: set[str] = set()
    unchanged = 0
    skipped: list[SkippedFile] = []
    for document in documents:
        present.add(document.id)
        state = indexed.get(document.id)
        if state is not None and state.complete and state.content_hash == document.content_hash:
            unchanged += 1
            continue
        try:
            pending.append(_prepare(document, split, embedder))
        except UnreadableFileError as exc:
            skipped.append(SkippedFile(document.source, str(exc)))
    written, removed = _commit(pending, indexed, present, store, embedder, config, root_uri, progress)
    return _report(root_uri, pending, indexed, unchanged, removed, skipped, written, started)


def _check_chunk_size(config: AppConfig, embedder: Embedding) -> None:
    if config.chunking.chunk_tokens > embedder.max_tokens:
        raise ConfigError(
            f"chunking.chunk_tokens = {config.chunking.chunk_tokens} is more than the embedder "
            f"{embedder.name!r} reads ({embedder.max_tokens} tokens): lower it"
        )


def _indexed(store: Store, root_uri: str) -> dict[str, DocumentState]:
    return {doc_id: s for doc_id, s in store.documents().items() if s.root == root_uri}


def _default_splitter(config: AppConfig, embedder: Embedding) -> Splitter:
    return lambda document: chunk(document, config.chunking, embedder.tokens)


def _commit(
    pending: list[_Pending],
    indexed: dict[str, DocumentState],
    present: set[str],
    store: Store,
    embedder: Embedding,
    config: AppConfig,
    root_uri: str,
    progress: Progress,
) -> tuple[int, list[str]]:
    """Write the pending documents, then remove the ones no longer present."""
    rewritten = {p.document.id for p in pending}
    kept = [s for d, s in indexed.items() if d in present and d not in rewritten]
    kept_tokens = sum(s.n_tokens for s in kept)
    kept_chunks = sum(s.points for s in kept)
    new_tokens = sum(len(t) for p in pending for t in p.tokens)
    new_chunks = sum(len(p.chunks) for p in pending)
    avg_len = (kept_tokens + new_tokens) / max(kept_chunks + new_chunks, 1)

    written = _write(pending, store, embedder, config, avg_len, root_uri, progress)

    gone = sorted((s for d, s in indexed.items() if d not in present), key=lambda s: s.source)
    for state in gone:
        store.delete_document(state.document_id)
    store.flush()
    return written, [s.source for s in gone]


def _report(
    root: str,
    pending: list[_Pending],
    indexed: dict[str, DocumentState],
    unchanged: int,
    removed: list[str],
    skipped: list[SkippedFile],
    written: int,
    started: float,
) -> SyncReport:
    return SyncReport(
        root=root,
        added=tuple(p.document.source for p in pending if p.document.id not in indexed),
        updated=tuple(p.document.source for p in pending if p.document.id in indexed),
        unchanged=unchanged,
        removed=tuple(removed),
        skipped=tuple(sorted(skipped, key=lambda s: s.source)),
        chunks_written=written,
        seconds=time.perf_counter() - started,
    )


def indexed_text(chunk: Chunk, tokens: TokenCounting, max_tokens: int) -> str:
    """The text that is embedded and BM25-indexed: the heading path, then the chunk.

    A section's heading ("Firmware 2.2") often carries the words a query needs
    while the body never repeats them. The heading is left out where it would
    push the chunk past the model's input limit; citations show the plain text.
    """
    if not chunk.heading:
        return chunk.text
    text = " > ".join(chunk.heading) + "\n" + chunk.text
    return text if tokens.count(text) <= max_tokens else chunk.text


def _prepare(document: Document, split: Splitter, embedder: Embedding) -> _Pending:
    chunks = split(document)
    if not chunks:
        raise UnreadableFileError("no text to index")
    texts = [indexed_text(c, embedder.tokens, embedder.max_tokens) for c in chunks]
    return _Pending(document, chunks, texts, [bm25.tokenize(t) for t in texts])


def _write(
    pending: list[_Pending],
    store: Store,
    embedder: Embedding,
    config: AppConfig,
    avg_len: float,
    root_uri: str,
    progress: Progress,
) -> int:
    """Embed in batches across documents; finish each document by deleting its stale points."""
    queue = [(p, i) for p in pending for i in range(len(p.chunks))]
    embedding = _Phase(progress, "embedding", len(queue), "chunk")
    for begin in range(0, len(queue), WRITE_BATCH_CHUNKS):
        batch = queue[begin : begin + WRITE_BATCH_CHUNKS]
        texts = [p.texts[i] for p, i in batch]
        unique = list(dict.fromkeys(texts))
        vectors = embedder.embed(unique)
        row = {text: n for n, text in enumerate(unique)}
        dense = vectors[[row[t] for t in texts]]
        chunks = [p.chunks[i] for p, i in batch]
        sparse = [bm25.document_vector(p.tokens[i], avg_len, config.bm25) for p, i in batch]
        extra = [
            {
                "content_hash": p.document.content_hash,
                "chunk_count": len(p.chunks),
                "n_tokens": len(p.tokens[i]),
                "root": root_uri,
                "mtime": p.document.metadata.get("mtime"),
            }
            for p, i in batch
        ]
        store.upsert(chunks, dense, sparse, extra)
        for p, i in batch:
            p.written.append(p.chunks[i].id)
            if len(p.written) == len(p.chunks):
                store.delete_document(p.document.id, keep=p.written)
        embedding.advance(len(batch))
    embedding.close()
    return len(queue)
