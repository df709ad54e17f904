"""The embedded store: Qdrant Edge in a folder, owned by one process at a time.

Layout of an index folder::

    meta.json    model name and dimension, BM25 k1/b, tokenizer version
    config.json  the config the index was last synced with
    shard/       the Qdrant Edge shard (dense "dense" + sparse "bm25" with IDF)
    lock         held (flock) by the process that has the index open

Each point is one chunk; its payload carries what citations and filters need.
Whether a document is fully written is derived from the points themselves
(all share one ``content_hash`` and there are ``chunk_count`` of them), so a
crash at any moment is detected and repaired by the next sync.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipeline.errors import IndexUnavailableError, ModelMismatchError, RaglineError
from pipeline.filters import SearchFilter
from pipeline.types import Chunk, SparseVector

if TYPE_CHECKING:
    import qdrant_edge

DENSE = "dense"
SPARSE = "bm25"
INDEXED_FIELDS = ("document_id", "source", "ext")
DOC_STATE_FIELDS = ["document_id", "source", "root", "content_hash", "chunk_count", "n_tokens"]
MIN_FREE_MB = 64.0
"""Default headroom for writes (config: index.min_free_mb)."""
BYTES_PER_POINT = 32 * 1024
"""A generous bound on the disk a written point takes (about 6 KiB measured: WAL, vectors, payload, indexes)."""


@dataclass(frozen=True)
class IndexMeta:
    """What must match between the index and the models that read or write it."""

    model: str
    dimension: int
    k1: float
    b: float
    tokenizer: str

    def check_model(self, model: str, dimension: int) -> None:
        """The canonical model name, not the inference backend: ``embedding.backend = "onnx-int8"`` vectors
        are a close approximation of the same model's fp32 ones (cosine about 0.995 for MiniLM), so an index
        built with either backend is searched with the other, and a mixed index stays usable. Vector caches
        (CachedEmbedder, the eval index fingerprint) do key on the backend, so they never mix."""
        if (model, dimension) != (self.model, self.dimension):
            raise ModelMismatchError(
                f"the index was built with embedder {self.model!r} (dimension {self.dimension}), "
                f"but {model!r} (dimension {dimension}) is configured: use the same model, or re-embed "
                f"the stored chunks with 'ragline reindex --embedder {model}'"
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

    @property
    def content_hash(self) -> str | None:
        return next(iter(self.content_hashes)) if len(self.content_hashes) == 1 else None

    @property
    def complete(self) -> bool:
        return self.content_hash is not None and self.points == self.chunk_count


@dataclass(frozen=True)
class StoredPoint:
    """One chunk point as stored: what moving an index to another store copies, with no re-embedding."""

    id: str
    dense: list[float]
    sparse: SparseVector
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A candidate: point id and score. Payloads are fetched for the final results only,
    so deep candidate lists cost little (copying payloads dominated the search time)."""

    id: str
    score: float


class Store(Protocol):
    """What sync, retrieval and the app need from a vector store (embedded or server)."""

    meta: IndexMeta
    kind: str
    """"qdrant-edge" or "qdrant-server", for stats and logs."""
    location: str
    """The index folder, or the server URL and collection."""

    def save_config(self, config: dict[str, Any]) -> None: ...

    def saved_config(self) -> dict[str, Any] | None:
        """The config the index was last synced with (None: never saved)."""
        ...

    def sources(self) -> list[str]: ...

    def upsert(
        self,
        chunks: Sequence[Chunk],
        dense: np.ndarray,
        sparse: Sequence[SparseVector],
        extra: Sequence[dict[str, Any]],
    ) -> None: ...

    def delete_document(self, document_id: str, keep: Sequence[str] = ()) -> None: ...

    def documents(self) -> dict[str, DocumentState]: ...

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVector | None,
        limit: int,
        where: SearchFilter | None = None,
        exact: bool = False,
    ) -> tuple[list[Hit], list[Hit]]: ...

    def chunks(self, ids: Sequence[str]) -> dict[str, Chunk]: ...

    def count(self) -> int: ...

    def export_points(self, batch: int = 256) -> Iterator[list[StoredPoint]]:
        """Every chunk point with its vectors and payload, ``batch`` at a time."""
        ...

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        """Write points as exported by a store with the same :class:`IndexMeta`."""
        ...

    def flush(self) -> None: ...

    def optimize(self) -> None:
        """Merge small segments and build the HNSW index where a segment has grown large enough."""
        ...

    def close(self) -> None: ...


def chunk_payload(chunk: Chunk, extra: dict[str, Any]) -> dict[str, Any]:
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
        **{k: v for k, v in chunk.metadata.items()},
    }
    payload.update(extra)
    return payload


CHUNK_FIELDS = frozenset(
    {"document_id", "source", "text", "ordinal", "start", "end", "page_start", "page_end", "heading"}
)


def chunk_from_payload(point_id: Any, payload: dict[str, Any]) -> Chunk:
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
        metadata={k: v for k, v in payload.items() if k not in CHUNK_FIELDS},
    )


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
            },
        )
        state["hashes"].add(p["content_hash"])
        state["chunk_count"] = max(state["chunk_count"], int(p["chunk_count"]))
        state["points"] += 1
        state["n_tokens"] += int(p["n_tokens"])
    return {
        doc_id: DocumentState(
            doc_id, s["source"], s["root"], frozenset(s["hashes"]), s["chunk_count"], s["points"], s["n_tokens"]
        )
        for doc_id, s in acc.items()
    }


def stored_point(point_id: Any, vectors: Mapping[str, Any] | None, payload: Mapping[str, Any] | None) -> StoredPoint:
    """A :class:`StoredPoint` from a record of either engine (both name their vectors DENSE and SPARSE;
    a chunk with no BM25 terms may come back without a sparse vector)."""
    vectors = vectors or {}
    if DENSE not in vectors:
        raise RaglineError(f"point {point_id} has no {DENSE!r} vector")
    sparse = vectors.get(SPARSE)
    return StoredPoint(
        id=str(point_id),
        dense=[float(x) for x in vectors[DENSE]],
        sparse=SparseVector(tuple(int(i) for i in sparse.indices), tuple(float(v) for v in sparse.values))
        if sparse is not None
        else SparseVector((), ()),
        payload=dict(payload or {}),
    )


@dataclass(frozen=True)
class FilterPlan:
    """A :class:`SearchFilter` in store-neutral terms, each part one condition that must hold.

    ``source_in``: the source is one of these (a glob, or a prefix a store cannot match
    natively, resolved against the sources in the index); ``source_under``: the source is
    this path or lies under it (``path + "/"`` prefix); ``ext_in``: the file type is one of
    these; ``fields``: exact payload matches.
    """

    source_in: tuple[str, ...] | None = None
    source_under: str | None = None
    ext_in: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()

    @property
    def matches_nothing(self) -> bool:
        """True when no source can match, so a store can answer without asking the engine."""
        return self.source_in is not None and not self.source_in


def is_under(source: str, prefix: str) -> bool:
    return source == prefix or source.startswith(prefix + "/")


def plan_filter(
    where: SearchFilter | None, sources: Callable[[], list[str]], native_prefix: bool = True
) -> FilterPlan | None:
    """Translate ``where`` once, for any store. ``sources`` is called only when a path needs
    resolving: always for a glob, and for a plain prefix when ``native_prefix`` is False."""
    if where is None or where.empty:
        return None
    source_in: tuple[str, ...] | None = None
    source_under: str | None = None
    if where.path:
        if where.is_glob:
            source_in = tuple(where.matching_sources(sources()))
        else:
            prefix = where.path.strip("/")
            if native_prefix:
                source_under = prefix
            else:
                source_in = tuple(sorted(s for s in sources() if is_under(s, prefix)))
    return FilterPlan(source_in, source_under, tuple(where.file_types), tuple(where.fields))


class _FolderLock:
    """An exclusive flock on ``lock``; the holder's pid is written into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise IndexUnavailableError(
                f"index {path.parent} is in use by another process (pid {holder}); "
                f"an embedded index is owned by one process at a time"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


_NO_SPACE = re.compile(rf"\(os error ({errno.ENOSPC}|{errno.EFBIG})\)")
_FAILED_WRITE = re.compile(r"failed to write to file `([^`]+)`: (.+)$")


def _engine_reason(exc: BaseException) -> str:
    """The engine's error on one line: its innermost cause where that is a failed file write."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = " ".join(str(exc).replace("Service runtime error: ", "").split())
    failed = _FAILED_WRITE.search(text)
    if failed:
        return f"{failed[2]} writing {failed[1]}"
    return text or type(exc).__name__


@contextmanager
def _writing(folder: Path, file: Path | None = None) -> Iterator[None]:
    """A write that fails (the disk is full, a file size limit, an I/O error) as one line naming the index."""
    try:
        yield
    except RaglineError:
        raise
    except Exception as exc:
        reason = _engine_reason(exc) + (f" ({file})" if file is not None else "")
        full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG)) or bool(
            _NO_SPACE.search(str(exc))
        )
        hint = " (no space: the disk is full or a file size limit was reached)" if full else ""
        raise IndexUnavailableError(f"cannot write the index at {folder}{hint}: {reason}") from None


def check_space(folder: Path, min_free_mb: float, points: int = 0) -> None:
    """Refuse a write while the disk is nearly full. Qdrant Edge writes through memory-mapped files, and
    a write that finds no free block is a SIGBUS that kills the process with no message and no clean-up;
    stopping before the write keeps the index as it was and says why."""
    stats = os.statvfs(next(p for p in (folder, *folder.parents) if p.exists()))  # a new index: its parent
    free = stats.f_bavail * stats.f_frsize
    needed = min_free_mb * 2**20 + points * BYTES_PER_POINT
    if free < needed:
        batch = f" plus {points} points" if points else ""
        raise IndexUnavailableError(
            f"cannot write the index at {folder}: its disk has {free / 2**20:.1f} MB free, under the "
            f"{needed / 2**20:.1f} MB a write needs (index.min_free_mb = {min_free_mb:g}{batch}): free some space"
        )


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with _writing(path.parent, tmp):
        try:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def read_meta(folder: Path) -> IndexMeta | None:
    file = folder / "meta.json"
    if not file.exists():
        return None
    try:
        return IndexMeta(**json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise IndexUnavailableError(f"index metadata {file} is damaged: {exc}") from None


class EdgeStore:
    """Qdrant Edge, in-process. Open with :meth:`open`; close (or use ``with``) to release the folder."""

    kind = "qdrant-edge"

    def __init__(
        self,
        folder: Path,
        shard: qdrant_edge.EdgeShard,
        meta: IndexMeta,
        lock: _FolderLock,
        min_free_mb: float = MIN_FREE_MB,
    ) -> None:
        self.folder = folder
        self.location = str(folder)
        self.meta = meta
        self.min_free_mb = min_free_mb
        self._shard = shard
        self._lock = lock

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path, meta: IndexMeta | None = None, min_free_mb: float = MIN_FREE_MB) -> EdgeStore:
        """Open an existing index; with ``meta``, create it if missing (or check it matches).

        Writes are refused while the folder's disk has less than ``min_free_mb`` free (see :func:`check_space`).
        """
        import qdrant_edge as q

        path = Path(folder).expanduser().resolve()
        existing = read_meta(path)
        if existing is None and meta is None:
            raise IndexUnavailableError(f"no index at {path}: run 'ragline ingest PATH' first")
        if existing is not None and path.is_file():
            raise IndexUnavailableError(f"index path {path} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        lock = _FolderLock(path / "lock")
        try:
            if existing is None:
                assert meta is not None
                check_space(path, min_free_mb)
                shard = q.EdgeShard.create(str(path / "shard"), cls._edge_config(meta))
                for field in INDEXED_FIELDS:
                    shard.update(q.UpdateOperation.create_field_index(field, q.PayloadSchemaType.Keyword))
                _write_json_atomic(path / "meta.json", asdict(meta))
                existing = meta
            else:
                if meta is not None:
                    existing.check_model(meta.model, meta.dimension)
                shard = q.EdgeShard.load(str(path / "shard"))
        except RaglineError:
            lock.release()
            raise
        except Exception as exc:
            lock.release()
            raise IndexUnavailableError(f"cannot open the Qdrant Edge shard in {path}: {_engine_reason(exc)}") from None
        return cls(path, shard, existing, lock, min_free_mb)

    @staticmethod
    def _edge_config(meta: IndexMeta) -> qdrant_edge.EdgeConfig:
        import qdrant_edge as q

        return q.EdgeConfig(
            vectors={DENSE: q.EdgeVectorParams(size=meta.dimension, distance=q.Distance.Cosine)},
            sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
        )

    def close(self) -> None:
        """Flush and release the folder; the folder is released even when the flush fails."""
        if self._shard is None:
            return
        shard, self._shard = self._shard, None  # type: ignore[assignment]
        try:
            with _writing(self.folder):
                try:
                    shard.flush()
                finally:
                    shard.close()
        finally:
            self._lock.release()

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_config(self, config: dict[str, Any]) -> None:
        _write_json_atomic(self.folder / "config.json", config)

    def saved_config(self) -> dict[str, Any] | None:
        file = self.folder / "config.json"
        if not file.exists():
            return None
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise IndexUnavailableError(f"saved config {file} is damaged: {exc}") from None
        return data if isinstance(data, dict) else None

    # -- writes ----------------------------------------------------------------------------
    def upsert(
        self,
        chunks: Sequence[Chunk],
        dense: np.ndarray,
        sparse: Sequence[SparseVector],
        extra: Sequence[dict[str, Any]],
    ) -> None:
        import qdrant_edge as q

        if not chunks:
            return
        check_shape(dense, len(chunks), self.meta.dimension)
        check_space(self.folder, self.min_free_mb, len(chunks))
        points = [
            q.Point(
                chunk.id,
                {DENSE: vector.tolist(), SPARSE: q.SparseVector(list(sp.indices), list(sp.values))},
                chunk_payload(chunk, ex),
            )
            for chunk, vector, sp, ex in zip(chunks, dense, sparse, extra)
        ]
        with _writing(self.folder):
            self._shard.update(q.UpdateOperation.upsert_points(points))

    def delete_document(self, document_id: str, keep: Sequence[str] = ()) -> None:
        """Delete a document's points, except ``keep`` (the ids just written for it)."""
        import qdrant_edge as q

        check_space(self.folder, self.min_free_mb)
        condition = q.Filter(
            must=[q.FieldCondition(key="document_id", match=q.MatchValue(document_id))],
            must_not=[q.HasIdCondition(set(keep))] if keep else None,
        )
        with _writing(self.folder):
            self._shard.update(q.UpdateOperation.delete_points_by_filter(condition))

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        import qdrant_edge as q

        if not points:
            return
        check_dimension(points, self.meta.dimension)
        check_space(self.folder, self.min_free_mb, len(points))
        update = q.UpdateOperation.upsert_points(
            [
                q.Point(
                    p.id,
                    {DENSE: list(p.dense), SPARSE: q.SparseVector(list(p.sparse.indices), list(p.sparse.values))},
                    dict(p.payload),
                )
                for p in points
            ]
        )
        with _writing(self.folder):
            self._shard.update(update)

    def flush(self) -> None:
        with _writing(self.folder):
            self._shard.flush()

    def optimize(self) -> None:
        """Qdrant Edge never optimizes on its own: without this, 100k chunks stay in small
        unindexed segments and every dense query scans them all."""
        with _writing(self.folder):
            self._shard.optimize()

    # -- reads -----------------------------------------------------------------------------
    def _scroll_pages(self, fields: list[str] | bool, with_vector: bool = False, limit: int = 1024) -> Iterator[Any]:
        import qdrant_edge as q

        offset = None
        while True:
            records, offset = self._shard.scroll(
                q.ScrollRequest(offset=offset, limit=limit, with_payload=fields, with_vector=with_vector)
            )
            if records:
                yield records
            if offset is None:
                return

    def _scroll(self, fields: list[str]) -> Iterator[Any]:
        for records in self._scroll_pages(fields):
            yield from records

    def documents(self) -> dict[str, DocumentState]:
        return summarise_documents(record.payload or {} for record in self._scroll(DOC_STATE_FIELDS))

    def export_points(self, batch: int = 256) -> Iterator[list[StoredPoint]]:
        for records in self._scroll_pages(True, with_vector=True, limit=batch):
            yield [stored_point(r.id, r.vector, r.payload) for r in records]

    def count(self) -> int:
        import qdrant_edge as q

        return int(self._shard.count(q.CountRequest(exact=True)))

    def sources(self) -> list[str]:
        import qdrant_edge as q

        hits = self._shard.facet(q.FacetRequest(key="source", limit=1_000_000, exact=True))
        # An exact facet also lists values whose points were all deleted, with count 0.
        return [str(h.value) for h in hits if h.count > 0]

    @staticmethod
    def _edge_filter(plan: FilterPlan | None) -> qdrant_edge.Filter | None:
        import qdrant_edge as q

        if plan is None:
            return None
        must: list[Any] = []
        if plan.source_in is not None:
            must.append(q.FieldCondition(key="source", match=q.MatchAny(list(plan.source_in))))
        if plan.source_under is not None:
            must.append(
                q.Filter(
                    should=[
                        q.FieldCondition(key="source", match=q.MatchValue(plan.source_under)),
                        q.FieldCondition(key="source", match=q.MatchPrefix(plan.source_under + "/")),
                    ]
                )
            )
        if plan.ext_in:
            must.append(q.FieldCondition(key="ext", match=q.MatchAny(list(plan.ext_in))))
        for key, value in plan.fields:
            must.append(q.FieldCondition(key=key, match=q.MatchValue(value)))
        return q.Filter(must=must)

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVector | None,
        limit: int,
        where: SearchFilter | None = None,
        exact: bool = False,
    ) -> tuple[list[Hit], list[Hit]]:
        """Dense and BM25 candidates, each filtered, in one batched call to the engine."""
        import qdrant_edge as q

        plan = plan_filter(where, self.sources)
        if plan is not None and plan.matches_nothing:
            return [], []
        edge_filter = self._edge_filter(plan)
        requests: list[Any] = []
        if dense is not None:
            requests.append(
                q.QueryRequest(
                    limit=limit,
                    query=q.Query.Nearest(dense.tolist(), using=DENSE),
                    filter=edge_filter,
                    with_payload=False,
                    params=q.SearchParams(exact=True) if exact else None,
                )
            )
        if sparse is not None and len(sparse):
            vector = q.SparseVector(list(sparse.indices), list(sparse.values))
            requests.append(
                q.QueryRequest(
                    limit=limit, query=q.Query.Nearest(vector, using=SPARSE), filter=edge_filter, with_payload=False
                )
            )
        results = self._shard.query_batch(q.QueryBatchRequest(requests)) if requests else []
        hits = [[Hit(str(p.id), float(p.score)) for p in r] for r in results]
        dense_hits = hits.pop(0) if dense is not None else []
        sparse_hits = hits.pop(0) if hits else []
        return dense_hits, sparse_hits

    def chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks behind these point ids (ids no longer in the index are left out)."""
        if not ids:
            return {}
        records = self._shard.retrieve(list(ids), True, False)
        return {str(r.id): chunk_from_payload(r.id, r.payload or {}) for r in records}


def check_shape(dense: np.ndarray, rows: int, dimension: int) -> None:
    if dense.shape != (rows, dimension):
        raise RaglineError(f"dense vectors have shape {dense.shape}, expected ({rows}, {dimension})")


def check_dimension(points: Sequence[StoredPoint], dimension: int) -> None:
    for p in points:
        if len(p.dense) != dimension:
            raise RaglineError(
                f"point {p.id} has a dense vector of dimension {len(p.dense)}, the index expects {dimension}"
            )
