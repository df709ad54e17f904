"""Incremental, idempotent sync of a folder into a store.

The index itself is the record of what was synced: each point carries its
document's content hash and chunk count. Unchanged files are skipped by hash;
a changed file's new chunks are written before its old ones are deleted, so a
document is never missing; a crash leaves a document "incomplete" (mixed hashes
or too few points) and the next run rewrites it. Files that cannot be read keep
whatever version was indexed before.

A large folder is searchable long before it is embedded: each document's points
are written with their BM25 vectors as soon as it is chunked, and get their
dense vectors as the embedder catches up (hybrid search meanwhile fuses what
exists, and says how much: ``coverage``). Points still waiting carry a
``pending`` mark; a crash leaves some marked, and the next run embeds just those.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connectors import FolderSource, ParseOptions
from connectors.folder import ScanResult, SourceFile
from connectors.parse_pool import parse_files
from connectors.permissions import Mode, posix_readers
from pipeline.access import Grant, grant
from pipeline.config import AccessConfig, AppConfig
from pipeline.errors import ConfigError, EmptyFolderError, RaglineError, UnreadableFileError
from pipeline.models.protocols import Embedder
from pipeline.stages import bm25, language
from pipeline.stages.chunking import chunk, chunk_id, indexed_text
from pipeline.stores import roots
from pipeline.stores.base import Store, StoredPoint, is_under
from pipeline.stores.schema import ACCESS, DocumentState, document_fields
from pipeline.types import Chunk, Document, SkippedFile, document_id

STAGES = ("parse", "chunk", "embed", "bm25", "upsert", "optimize")
WINDOW_BATCHES = 32
"""Chunks are embedded and written a window of this many embedding batches at a time."""
DRAIN_S = 2.0
"""At most this long between embedding windows while chunks keep arriving: embedding overlaps parsing instead
of starting after the last file, and what arrives waits at most one window's embedding for its BM25 write."""


@dataclass(frozen=True)
class SyncReport:
    root: str
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: int = 0
    removed: tuple[str, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    chunks_written: int = 0
    backfilled: int = 0
    """Chunks an interrupted sync had written for BM25 only, given their dense vectors by this one."""
    reused: tuple[str, ...] = ()
    """Added files whose chunks and vectors were copied from the same file under another root, not embedded."""
    moved_from: tuple[str, ...] = ()
    """Roots whose folder is gone and whose files turned up here: their documents were re-pointed to this root."""
    access_updated: tuple[str, ...] = ()
    """Unchanged files whose readers changed (a rule or their permissions): their points' ``access`` was
    rewritten, nothing re-embedded."""
    notices: tuple[str, ...] = ()
    """What some files met that the user can fix, each said once (OCR that is not installed, say)."""
    seconds: float = 0.0
    stages_s: dict[str, float] = field(default_factory=dict)
    """Time in each stage: parse (summed over the worker processes), chunk, embed, bm25, upsert, optimize.
    Stages overlap, so they can add up to more than ``seconds``."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


@dataclass
class _Outcome:
    """What a sync has found so far, for its report."""

    skipped: list[SkippedFile] = field(default_factory=list)
    unchanged: int = 0
    pending: list[_Pending] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    copies: list[tuple[SourceFile, DocumentState]] = field(default_factory=list)
    moved_from: list[str] = field(default_factory=list)
    access_updated: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    written: int = 0
    backfilled: int = 0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] += time.perf_counter() - started


@dataclass
class _Pending:
    document: Document
    chunks: list[Chunk]
    texts: list[str]
    tokens: list[list[str]]
    written: list[str] = field(default_factory=list)


ProgressCallback = Callable[[str, int, int], None]
"""Called with (phase, done, total) as a sync goes: "parsing" files, "writing" chunks (searchable by BM25 once
written) and "embedding" chunks (done: those whose dense vectors are stored)."""
Progress = bool | ProgressCallback


class _Phase:
    """One phase of a sync, shown as a tqdm bar (progress=True) or reported to a callback."""

    def __init__(self, progress: Progress, name: str, total: int, unit: str) -> None:
        self.name, self.total, self.done = name, total, 0
        self._callback = progress if callable(progress) else None
        self._progress, self._unit = progress, unit
        self._bar: Any = None
        self.grow(0)

    def grow(self, n: int) -> None:
        """More work found (chunks arrive as files are parsed)."""
        self.total += n
        if self._bar is None and self._progress is True and self.total:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.name, unit=self._unit, leave=False)
        elif self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()
        if self.total:
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
ReadersOf = Callable[[Document], "tuple[str, ...] | None"]
"""Who may read a document, as its points' ``access`` names them; None: access control is off."""


_EMPTIED = (
    "{folder} has no file to index, but the index holds {n} documents from it: nothing was removed "
    "(a share that is not mounted?); if the files are gone for good, sync with --allow-empty"
)


def sync_folder(
    root: str | Path,
    store: Store,
    embedder: Embedder,
    config: AppConfig,
    progress: Progress = False,
    allow_empty: bool = False,
    only: Collection[str] | None = None,
    redo: Collection[str] = (),
) -> SyncReport:
    """Bring the index in step with ``root``: add, update and remove documents.

    Files are read, hashed and parsed in worker processes (see
    ``connectors.parse_pool``) while this process chunks and embeds what has
    arrived, so parsing overlaps with embedding instead of adding to it. A file
    that another root holds at the same path with the same content is copied
    from there, vectors and all (a moved folder costs no embedding). A folder
    with no file left while the index holds its documents is refused unless
    ``allow_empty``: an unmounted share must not empty the index. ``only``: sync just these paths under
    ``root`` (files, or folders and all below them: what a watcher saw change, a file given to ``ingest``), those
    gone from disk included, and leave the root's other documents as they are. ``redo``: parse, embed and write these
    sources again even where their content is unchanged (``ragline verify --repair``).
    """
    started = time.perf_counter()
    _check_chunk_size(config, embedder)
    folder = Path(root).expanduser().resolve()
    scan = scan_folder(folder, config, only)
    root_uri = folder.as_uri()
    everything = store.documents()
    indexed = {d: s for d, s in everything.items() if s.root == root_uri and _within(s.source, only)}
    if not (scan.files or scan.skipped or allow_empty or only is not None) and indexed:
        raise EmptyFolderError(_EMPTIED.format(folder=folder, n=len(indexed)))
    present = {document_id(root_uri, f.source) for f in scan.files} | {
        document_id(root_uri, s.source) for s in scan.skipped
    }
    outcome = _Outcome(skipped=list(scan.skipped))
    jobs, copies = _jobs(scan.files, indexed, everything, root_uri, frozenset(redo))
    readers = _file_readers(scan.files, folder, config.access)

    if store.meta.tokenizer != bm25.ENGLISH_ONLY_VERSION and any(known is None for _, known in jobs):
        language.warm_up()  # new files will need it; it loads while the parser workers start
    split = _default_splitter(config, embedder)
    readers_of = None if readers is None else (lambda document: readers[document.source])
    target = _Target(store, embedder, config, root_uri, progress, readers_of)
    _commit(_parsed(jobs, copies, outcome, config, progress), split, outcome, indexed, present, target)
    with outcome.timed("upsert"):
        _copy_documents(store, root_uri, outcome.copies, readers)
        if readers is not None:
            by_id = {document_id(root_uri, source): who for source, who in readers.items()}
            outcome.access_updated = _update_readers(store, indexed, by_id, {p.document.id for p in outcome.pending})
        outcome.moved_from = _record_sync(
            store, root_uri, everything, outcome.copies, holds_any=bool(present) or only is not None
        )
    return _report(str(folder), outcome, indexed, started)


def _parsed(
    jobs: list[tuple[SourceFile, str | None]],
    copies: dict[str, DocumentState],
    outcome: _Outcome,
    config: AppConfig,
    progress: Progress,
) -> Generator[Document, None, None]:
    """The documents of the files that changed, as the parser workers finish them; the others are counted
    (unchanged), set aside (copies of another root's file) or skipped with their reason."""
    parsing = _Phase(progress, "parsing", len(jobs), "file")
    source = config.source
    options = ParseOptions(source.ocr, source.ocr_languages)
    for parsed in parse_files(jobs, source.parse_workers, source.parse_timeout_s, options):
        parsing.advance()
        outcome.stages["parse"] += parsed.seconds
        if parsed.notice and parsed.notice not in outcome.notices:
            outcome.notices.append(parsed.notice)
        if parsed.unchanged and parsed.file.source in copies:
            outcome.copies.append((parsed.file, copies[parsed.file.source]))
        elif parsed.unchanged:
            outcome.unchanged += 1
        elif parsed.document is None:
            outcome.skipped.append(SkippedFile(parsed.file.source, parsed.error or "cannot parse"))
        else:
            yield parsed.document
    parsing.close()


def _file_readers(files: Sequence[SourceFile], folder: Path, access: AccessConfig) -> dict[str, tuple[str, ...]] | None:
    """Who may read each file, by source (None: access control is off): its first matching rule's principals
    and, with ``from_posix``, those its permissions let read it."""
    if not access.enabled:
        return None
    folders: dict[Path, Mode] = {}
    return {file.source: file_grant(file.path, folder, access, folders).readers for file in files}


def file_grant(path: Path, folder: Path, access: AccessConfig, folders: dict[Path, Mode] | None = None) -> Grant:
    """Who may read the file at ``path``, synced from ``folder``, and why (``ragline access explain``)."""
    posix = posix_readers(path, folder, folders) if access.from_posix else ()
    return grant(path.relative_to(folder).as_posix(), str(path), posix, access)


def _update_readers(
    store: Store, indexed: dict[str, DocumentState], wanted: dict[str, tuple[str, ...]], rewritten: set[str]
) -> list[str]:
    """Rewrite ``access`` on the points of each indexed document whose readers changed and that this sync did
    not write again (those carry the new readers already): a payload update, no embedding. Returns their
    sources."""
    changed = sorted(
        (s for d, s in indexed.items() if d in wanted and d not in rewritten and s.readers != wanted[d]),
        key=lambda s: s.source,
    )
    for state in changed:
        store.set_readers(state.document_id, wanted[state.document_id])
    if changed:
        store.flush()
    return [s.source for s in changed]


def _within(source: str, only: Collection[str] | None) -> bool:
    return only is None or any(is_under(source, path) for path in only)


def scan_folder(folder: Path, config: AppConfig, only: Collection[str] | None = None) -> ScanResult:
    """The folder's files to index and those skipped, with reasons (``only``: those at or under these paths;
    one file that exists but is not indexed, by the include and exclude globs, is an error)."""
    scan = FolderSource(
        folder,
        include=config.source.include,
        exclude=(*config.source.exclude, *_index_inside(folder, config)),
        max_file_bytes=int(config.source.max_file_mb * 1_000_000),
    ).scan()
    if only is None:
        return scan
    scan = ScanResult(
        [f for f in scan.files if _within(f.source, only)], [f for f in scan.skipped if _within(f.source, only)]
    )
    named = [folder / path for path in only]
    if not (scan.files or scan.skipped) and len(named) == 1 and named[0].is_file():
        raise RaglineError(f"{named[0]} is not a file ragline indexes (see source.include and exclude)")
    return scan


def _index_inside(folder: Path, config: AppConfig) -> tuple[str, ...]:
    """Globs that leave out the embedded index when it lies in the folder it indexes (its own shard files
    would be listed as skipped, or worse, indexed); the index folder itself cannot be a source."""
    if config.qdrant.enabled:
        return ()
    index = Path(config.index.path).expanduser().resolve()
    if index == folder:
        raise RaglineError(f"{folder} is the index folder itself: ingest the folder of your documents")
    if not index.is_relative_to(folder):
        return ()
    inside = index.relative_to(folder).as_posix()
    return (inside, f"{inside}/**")


def _jobs(
    files: Sequence[SourceFile],
    indexed: dict[str, DocumentState],
    everything: dict[str, DocumentState],
    root_uri: str,
    redo: frozenset[str] = frozenset(),
) -> tuple[list[tuple[SourceFile, str | None]], dict[str, DocumentState]]:
    """What to parse, each file with the hash that lets a worker skip it: its own indexed version's, or for a
    file new here that another root holds at the same path, that one's (the copies to make, by source)."""
    elsewhere = {s.source: s for s in everything.values() if s.root != root_uri and s.complete}
    jobs: list[tuple[SourceFile, str | None]] = []
    copies: dict[str, DocumentState] = {}
    for file in files:
        state = indexed.get(document_id(root_uri, file.source))
        donor = elsewhere.get(file.source) if state is None else None
        if donor is not None:
            copies[file.source] = donor
        known = donor if donor is not None else state
        reuse = known is not None and known.complete and file.source not in redo
        jobs.append((file, known.content_hash if reuse and known is not None else None))
    return jobs, copies


def _copy_documents(
    store: Store,
    root_uri: str,
    copies: Sequence[tuple[SourceFile, DocumentState]],
    readers: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Write each file's copy of the same file under another root: its points, re-keyed to this root (and with
    the readers its new place gives it)."""
    for file, donor in copies:
        new_id = document_id(root_uri, file.source)
        access = {} if readers is None else {ACCESS: list(readers[file.source])}
        points = [
            StoredPoint(
                chunk_id(new_id, int(p.payload["ordinal"]), str(p.payload["text"])),
                p.dense,
                p.sparse,
                {**p.payload, "document_id": new_id, "root": root_uri, "mtime": file.mtime, **access},
            )
            for p in store.document_points(donor.document_id)
        ]
        store.import_points(points)
    if copies:
        store.flush()


def _record_sync(
    store: Store,
    root_uri: str,
    before: dict[str, DocumentState],
    copies: Sequence[tuple[SourceFile, DocumentState]] = (),
    holds_any: bool = True,
) -> list[str]:
    """Record this sync of ``root_uri`` (``holds_any`` False: it no longer holds a document) with the index.

    Roots whose folder is gone and whose files were found here are removed: the folder moved. This root takes
    over the label of the one it replaces, so citations keep their names. Returns the moved roots' folders."""
    saved = roots.known(store.roots(), {s.root for s in before.values()})
    moved = sorted({donor.root for _, donor in copies if not saved[donor.root].present})
    for state in before.values():
        if state.root in moved:
            store.delete_document(state.document_id)
    label = saved[moved[0]].label if len(moved) == 1 and root_uri not in saved else None
    kept = {uri: r for uri, r in saved.items() if uri not in moved}
    if holds_any:
        kept = roots.synced(kept, root_uri, label)
    else:
        kept.pop(root_uri, None)
    store.save_roots(roots.to_record(kept))
    if moved:
        store.flush()
        store.optimize()
    return [saved[uri].folder or uri for uri in moved]


def sync_documents(
    documents: Iterable[Document],
    root_uri: str,
    store: Store,
    embedder: Embedder,
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
    present: set[str] = set()
    outcome = _Outcome()
    access = config.access
    wanted: dict[str, tuple[str, ...]] = {}  # with access control on: each document's readers, by its rules

    def changed() -> Generator[Document, None, None]:
        for document in documents:
            present.add(document.id)
            if access.enabled:
                wanted[document.id] = grant(document.source, None, (), access).readers
            state = indexed.get(document.id)
            if state is not None and state.complete and state.content_hash == document.content_hash:
                outcome.unchanged += 1
            else:
                yield document

    readers_of = (lambda document: wanted[document.id]) if access.enabled else None
    _commit(
        changed(), split, outcome, indexed, present, _Target(store, embedder, config, root_uri, progress, readers_of)
    )
    if access.enabled:
        outcome.access_updated = _update_readers(store, indexed, wanted, {p.document.id for p in outcome.pending})
    _record_sync(store, root_uri, indexed, holds_any=bool(present))
    return _report(root_uri, outcome, indexed, started)


def _check_chunk_size(config: AppConfig, embedder: Embedder) -> None:
    if config.chunking.chunk_tokens > embedder.max_tokens:
        raise ConfigError(
            f"chunking.chunk_tokens = {config.chunking.chunk_tokens} is more than the embedder "
            f"{embedder.name!r} reads ({embedder.max_tokens} tokens): lower it"
        )


def _indexed(store: Store, root_uri: str) -> dict[str, DocumentState]:
    return {doc_id: s for doc_id, s in store.documents().items() if s.root == root_uri}


def _default_splitter(config: AppConfig, embedder: Embedder) -> Splitter:
    return lambda document: chunk(document, config.chunking, embedder.tokens)


@dataclass(frozen=True)
class _Target:
    """Where a sync writes, and with what."""

    store: Store
    embedder: Embedder
    config: AppConfig
    root_uri: str
    progress: Progress
    readers_of: ReadersOf | None = None


def _commit(
    documents: Generator[Document, None, None],
    split: Splitter,
    outcome: _Outcome,
    indexed: dict[str, DocumentState],
    present: set[str],
    target: _Target,
) -> None:
    """Embed documents as they arrive, write them, then remove the ones no longer present.

    Each document is written for BM25 as soon as it is chunked and given its dense vectors as the embedder
    gets to it (:class:`_Writer`), so a killed sync keeps most of its work; then points an earlier killed sync
    left without dense vectors are embedded, and the documents no longer present are removed. An index from
    before BM25's fixed length pivot weights with the collection's average chunk length, known once every
    document has arrived: there chunks wait in memory until then.
    """
    writer = _Writer(target, outcome)
    pivot = target.store.meta.avg_len
    if pivot:
        writer.weigh_with(pivot)
    _embed_as_they_arrive(documents, split, writer, target.embedder, outcome)
    if not pivot:
        rewritten = {p.document.id for p in writer.pending}
        kept = [s for d, s in indexed.items() if d in present and d not in rewritten]
        tokens = sum(s.n_tokens for s in kept) + sum(len(t) for p in writer.pending for t in p.tokens)
        chunks = sum(s.points for s in kept) + sum(len(p.chunks) for p in writer.pending)
        writer.weigh_with(tokens / max(chunks, 1))
    writer.finish()
    outcome.pending, outcome.written = writer.pending, writer.written

    gone = sorted((s for d, s in indexed.items() if d not in present), key=lambda s: s.source)
    with outcome.timed("upsert"):
        for state in gone:
            target.store.delete_document(state.document_id)
    outcome.backfilled = writer.backfill(target.progress)
    with outcome.timed("upsert"):
        target.store.flush()
    if writer.written or gone or outcome.backfilled:
        with outcome.timed("optimize"):
            target.store.optimize()
    outcome.removed = [s.source for s in gone]


def _embed_as_they_arrive(
    documents: Generator[Document, None, None], split: Splitter, writer: _Writer, embedder: Embedder, outcome: _Outcome
) -> None:
    """A thread parses (through the worker pool) and chunks while this thread embeds, so the two overlap;
    this thread writes what arrives for BM25, and embeds a window whenever nothing has arrived, or one is full
    and ``DRAIN_S`` have passed since the last (the parser thread can keep the queue from ever emptying).
    Before each such window it takes everything that has arrived, so BM25 never waits behind more than one
    window's embedding, however far embedding lags behind parsing."""
    arrived: queue.Queue[_Pending | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            with contextlib.closing(documents):
                for document in documents:
                    if stop.is_set():
                        return
                    try:
                        with outcome.timed("chunk"):
                            prepared = _prepare(document, split, embedder, writer.store.meta.tokenizer)
                        arrived.put(prepared)
                    except UnreadableFileError as exc:
                        outcome.skipped.append(SkippedFile(document.source, str(exc)))
        except BaseException as exc:  # noqa: BLE001 - handed to the embedding thread, which raises it
            arrived.put(exc)
        finally:
            arrived.put(None)

    def take(item: _Pending | BaseException | None) -> bool:
        """Write an arrived document for BM25; False once the parser is done."""
        if isinstance(item, BaseException):
            raise item
        if item is not None:
            writer.add(item)
        return item is not None

    producer = threading.Thread(target=produce, name="ragline-parse", daemon=True)
    producer.start()
    try:
        embedded_at = time.monotonic()
        while True:
            if not writer.window_full or time.monotonic() - embedded_at <= DRAIN_S:
                try:
                    if not take(arrived.get(block=not writer.window_full)):
                        return
                    continue
                except queue.Empty:  # a full window, and nothing new: embed it
                    pass
            # Take what has arrived (not more: the parser can keep the queue from ever emptying), then embed.
            for _ in range(arrived.qsize()):
                if not take(arrived.get_nowait()):
                    return
            writer.embed_window()
            embedded_at = time.monotonic()
    finally:
        stop.set()
        producer.join()


def _report(root: str, outcome: _Outcome, indexed: dict[str, DocumentState], started: float) -> SyncReport:
    copied = [file.source for file, _ in outcome.copies]
    return SyncReport(
        root=root,
        added=tuple(sorted([p.document.source for p in outcome.pending if p.document.id not in indexed] + copied)),
        updated=tuple(sorted(p.document.source for p in outcome.pending if p.document.id in indexed)),
        unchanged=outcome.unchanged,
        removed=tuple(outcome.removed),
        skipped=tuple(sorted(outcome.skipped, key=lambda s: s.source)),
        chunks_written=outcome.written,
        backfilled=outcome.backfilled,
        reused=tuple(sorted(file.source for file, _ in outcome.copies)),
        moved_from=tuple(outcome.moved_from),
        access_updated=tuple(outcome.access_updated),
        notices=tuple(outcome.notices),
        seconds=time.perf_counter() - started,
        stages_s=dict(outcome.stages),
    )


def _prepare(document: Document, split: Splitter, embedder: Embedder, tokenizer: str) -> _Pending:
    chunks = split(document)
    if not chunks:
        raise UnreadableFileError("no text to index")
    texts = [indexed_text(c, embedder.tokens, embedder.max_tokens) for c in chunks]
    if tokenizer == bm25.ENGLISH_ONLY_VERSION:
        return _Pending(document, chunks, texts, [bm25.tokenize_english(t) for t in texts])
    languages = language.chunk_languages(document.text, [c.text for c in chunks])
    return _Pending(document, chunks, texts, [bm25.tokenize(t, lang) for t, lang in zip(texts, languages, strict=True)])


class _Writer:
    """Writes each chunk for BM25 as soon as it is chunked, and gives it its dense vector once embedded.

    A document is searchable by BM25 seconds after its file is parsed, and by dense search once the embedder
    has caught up with it: its points are written without dense vectors, marked ``PENDING``, and
    :meth:`Store.set_dense` fills them in window by window. A document's stale points are deleted once all its
    new points are written, as before; a crash leaves marked points, which the next sync embeds
    (:meth:`backfill`) without parsing anything again. BM25 weights need the index's length pivot; an index
    from before it had one learns the pivot when every document has arrived, and writes only then.

    A window of ``WINDOW_BATCHES`` batches goes to the model in one call: sentence-transformers sorts a call's
    texts by length, so padding stays small. A text seen before in this sync (an identical file, repeated
    boilerplate) is not embedded again.
    """

    def __init__(self, target: _Target, outcome: _Outcome) -> None:
        self.store, self.embedder, self.config, self.root_uri = (
            target.store,
            target.embedder,
            target.config,
            target.root_uri,
        )
        self.readers_of = target.readers_of
        self.outcome = outcome
        self.pending: list[_Pending] = []
        self.written = 0
        self._unwritten: list[tuple[_Pending, int]] = []  # chunked, not yet written
        self._queue: list[tuple[_Pending, int]] = []  # waiting to be embedded
        self._vectors: dict[str, np.ndarray] = {}
        self._stored: set[str] = set()  # ids written, with or without their dense vectors
        self._embedded: set[str] = set()  # ids whose dense vectors are stored
        self._avg_len: float | None = None
        self._window = WINDOW_BATCHES * target.config.embedding.batch_size
        self._writing = _Phase(target.progress, "writing", 0, "chunk")
        self._embedding = _Phase(target.progress, "embedding", 0, "chunk")

    @property
    def window_full(self) -> bool:
        return len(self._queue) >= self._window

    def add(self, pending: _Pending) -> None:
        chunks = [(pending, i) for i in range(len(pending.chunks))]
        self.pending.append(pending)
        self._queue.extend(chunks)
        self._unwritten.extend(chunks)
        self._embedding.grow(len(chunks))
        if self._avg_len is not None:
            self._writing.grow(len(chunks))
            self._write_searchable(whole_windows=True)

    def weigh_with(self, avg_len: float) -> None:
        """BM25's length pivot is known: write what has arrived, and from now on each document as it does."""
        self._avg_len = avg_len
        self._writing.grow(sum(len(p.chunks) for p in self.pending))
        self._write_searchable()

    def finish(self) -> None:
        while self._queue:
            self.embed_window()
        self._write_searchable()
        self._writing.close()
        self._embedding.close()

    def embed_window(self) -> None:
        """Write what has arrived for BM25, then embed one window and store the vectors of its written chunks."""
        if self._avg_len is not None:
            self._write_searchable()
        window, self._queue = self._queue[: self._window], self._queue[self._window :]
        new = list(dict.fromkeys(t for t in (p.texts[i] for p, i in window) if t not in self._vectors))
        with self.outcome.timed("embed"):
            vectors = self.embedder.embed(new)
        for text, vector in zip(new, vectors, strict=True):
            self._vectors[text] = vector
        self._store_dense([(p, i) for p, i in window if p.chunks[i].id in self._stored])

    def backfill(self, progress: Progress) -> int:
        """Embed the points an earlier, interrupted sync wrote without dense vectors; returns how many."""
        done: set[str] = set()
        phase = _Phase(progress, "embedding", self.store.unembedded(), "chunk")
        while chunks := self.store.awaiting_dense(self._window):
            if done.intersection(c.id for c in chunks):
                raise RaglineError(f"the {self.store.kind} store keeps points marked pending after their dense vectors")
            texts = [indexed_text(c, self.embedder.tokens, self.embedder.max_tokens) for c in chunks]
            with self.outcome.timed("embed"):
                vectors = self.embedder.embed(texts)
            with self.outcome.timed("upsert"):
                self.store.set_dense([c.id for c in chunks], np.asarray(vectors))
            done.update(c.id for c in chunks)
            phase.advance(len(chunks))
        phase.close()
        return len(done)

    def _store_dense(self, items: list[tuple[_Pending, int]]) -> None:
        """Give written points whose texts are embedded their vectors (each once)."""
        items = [(p, i) for p, i in items if p.chunks[i].id not in self._embedded]
        for begin in range(0, len(items), self._window):
            batch = items[begin : begin + self._window]
            ids = [p.chunks[i].id for p, i in batch]
            with self.outcome.timed("upsert"):
                self.store.set_dense(ids, np.stack([self._vectors[p.texts[i]] for p, i in batch]))
            self._embedded.update(ids)
            self._embedding.advance(len(batch))

    def _write_searchable(self, whole_windows: bool = False) -> None:
        """Write the chunks that have arrived, BM25 only, a window at a time (``whole_windows``: only full ones,
        the rest waits for more); those already embedded get their vectors at once."""
        while self._avg_len is not None and self._unwritten:
            if whole_windows and len(self._unwritten) < self._window:
                return
            batch, self._unwritten = self._unwritten[: self._window], self._unwritten[self._window :]
            self._write(batch, self._avg_len)
            self._store_dense([(p, i) for p, i in batch if p.texts[i] in self._vectors])

    def _write(self, batch: list[tuple[_Pending, int]], avg_len: float) -> None:
        """Write one batch for BM25; finish each document it completes by deleting its stale points."""
        with self.outcome.timed("bm25"):
            sparse = [bm25.document_vector(p.tokens[i], avg_len, self.config.bm25) for p, i in batch]
        extra = [
            document_fields(
                p.document.content_hash,
                len(p.chunks),
                len(p.tokens[i]),
                self.root_uri,
                p.document.metadata.get("mtime"),
                None if self.readers_of is None else self.readers_of(p.document),
            )
            for p, i in batch
        ]
        with self.outcome.timed("upsert"):
            self.store.upsert([p.chunks[i] for p, i in batch], None, sparse, extra)
            for p, i in batch:
                p.written.append(p.chunks[i].id)
                self._stored.add(p.chunks[i].id)
                if len(p.written) == len(p.chunks):
                    self.store.delete_document(p.document.id, keep=p.written)
        self.written += len(batch)
        self._writing.advance(len(batch))
