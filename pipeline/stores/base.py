"""What every store is and does, engine-independent: the :class:`Store` protocol that sync, retrieval and
lifecycle use, the index metadata, the filter plan, and :class:`QdrantStore`, which implements the protocol
once over a handful of engine calls that each engine module (``edge``, ``server``) only translates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from pipeline.errors import ModelMismatchError, RaglineError
from pipeline.filters import SearchFilter
from pipeline.stores.schema import (
    ACCESS,
    AWAITING_DENSE,
    DENSE,
    DOC_STATE_FIELDS,
    PENDING,
    SPARSE,
    DocumentState,
    chunk_from_payload,
    chunk_payload,
    summarise_documents,
)
from pipeline.types import Chunk, SparseVector, document_key, id_document_key

SCROLL_PAGE = 1024


@dataclass(frozen=True)
class IndexMeta:
    """What must match between the index and the models that read or write it."""

    model: str
    dimension: int
    k1: float
    b: float
    tokenizer: str
    avg_len: float = 0.0
    """BM25's fixed length pivot (``bm25.avg_len``); 0 in an index from before it had one, whose points were
    weighted with the collection's average chunk length when they were written (and still are)."""
    chunk_ids: str = ""
    """``CHUNK_IDS`` in an index whose every chunk id begins with its document's key (``types.document_key``),
    so candidates name their document with no payload read; "" in an index from before, whose older points
    do not (their key is read from the payload)."""
    quantization: str = ""
    """"int8": the dense vectors have int8 copies (Qdrant's scalar quantization), which searches read first and
    rescore with the full vectors; "": full vectors only. Set when the index is created, from the config."""

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
class StoredPoint:
    """One chunk point as stored: what moving an index to another store copies, with no re-embedding."""

    id: str
    dense: list[float]
    """Empty on a point that waits for its dense vector (``schema.PENDING``)."""
    sparse: SparseVector
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A candidate: point id, score and (when asked for) its document's key, ``types.document_key``, which
    tells documents apart: document-aware ranking weighs a chunk by the other candidates of its document.
    Payloads are fetched for the final results only, so deep candidate lists cost little."""

    id: str
    score: float
    document: str = ""


Readers = Sequence[str] | None
"""The principals a query runs as (``pipeline.access.Reader.visible``); None: no access condition (an admin, or
access control off)."""

CHUNK_IDS = "document-key@1"
"""``IndexMeta.chunk_ids`` of an index whose chunk ids all begin with their document's key."""
HIT_FIELD = "document_id"
"""The one payload field a candidate of an older index reads for its document key."""


def hit(point_id: Any, score: float, payload: Mapping[str, Any] | None, keyed: bool = False) -> Hit:
    """A candidate as the engine returned it, with its document key: read off its id (``keyed``: an index
    whose ids begin with it) or from its payload where one came."""
    point = str(point_id)
    if keyed:
        return Hit(point, float(score), id_document_key(point))
    document = (payload or {}).get(HIT_FIELD)
    return Hit(point, float(score), document_key(str(document)) if document else "")


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

    def file_types(self, readers: Readers = None) -> list[str]:
        """The file types (payload ``ext``) the index holds, sorted: what ``--type`` can select (``readers``:
        of the documents they may read)."""
        ...

    def upsert(
        self,
        chunks: Sequence[Chunk],
        dense: np.ndarray | None,
        sparse: Sequence[SparseVector],
        extra: Sequence[dict[str, Any]],
    ) -> None:
        """Write chunk points (``dense`` None: BM25 only for now, marked as waiting for their dense vectors)."""
        ...

    def set_dense(self, ids: Sequence[str], dense: np.ndarray) -> None:
        """Give points written without dense vectors theirs."""
        ...

    def awaiting_dense(self, limit: int) -> list[Chunk]:
        """Chunks whose points still wait for their dense vectors, up to ``limit``."""
        ...

    def unembedded(self) -> int:
        """How many points wait for their dense vectors."""
        ...

    def delete_document(self, document_id: str, keep: Sequence[str] = ()) -> None: ...

    def set_readers(self, document_id: str, readers: Sequence[str]) -> None:
        """Who may read a document, on every one of its points: a payload update, nothing re-embedded."""
        ...

    def documents(self, readers: Readers = None) -> dict[str, DocumentState]:
        """Every document's sync state (``readers``: only the documents they may read)."""
        ...

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVector | None,
        limit: int,
        where: SearchFilter | None = None,
        exact: bool = False,
        documents: bool = False,
        readers: Readers = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """Dense and BM25 candidates, best first (``documents``: each names its document's key, read off
        its id, or in an index from before ``CHUNK_IDS`` from its payload, a read per candidate; ``readers``:
        only points whose ``access`` names one of these principals, matched inside each list's query)."""
        ...

    def chunks(self, ids: Sequence[str], readers: Readers = None) -> dict[str, Chunk]: ...

    def count(self, readers: Readers = None) -> int: ...

    def export_points(self, batch: int = 256) -> Iterator[list[StoredPoint]]:
        """Every chunk point with its vectors and payload, ``batch`` at a time."""
        ...

    def all_chunks(self) -> Iterator[list[Chunk]]:
        """Every chunk with its whole payload (the document's metadata, as a search result's chunk has it), a
        page at a time, without vectors: what ``tune`` draws its pseudo-questions from, titles included."""
        ...

    def save_tuning(self, tuning: dict[str, Any] | None) -> None:
        """Keep the ranking settings ``ragline tune`` chose for this index (None: forget them)."""
        ...

    def tuning(self) -> dict[str, Any] | None:
        """The settings ``ragline tune`` saved, with its report (None: never tuned)."""
        ...

    def save_roots(self, roots: dict[str, dict[str, Any]]) -> None:
        """Keep the record of the folders synced into the index: root URI -> label, folder, last sync."""
        ...

    def roots(self) -> dict[str, dict[str, Any]]:
        """What :meth:`save_roots` kept ({}: nothing yet, or an index from before roots were recorded)."""
        ...

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        """Write points as exported by a store with the same :class:`IndexMeta`."""
        ...

    def document_points(self, document_id: str) -> list[StoredPoint]:
        """One document's points with their vectors: what a moved folder's copy of it is made from."""
        ...

    def flush(self) -> None: ...

    def optimize(self) -> None:
        """Merge small segments and build the HNSW index where a segment has grown large enough."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FilterPlan:
    """A :class:`SearchFilter` in store-neutral terms, each part one condition that must hold.

    ``source_in``: the source is one of these (a glob, or a prefix a store cannot match
    natively, resolved against the sources in the index); ``source_under``: the source is
    this path or lies under it (``path + "/"`` prefix); ``ext_in``: the file type is one of
    these; ``fields``: exact payload matches; ``readers``: the point's ``access`` names one of these
    (the caller's principals: its own conditions can only narrow what this allows, never widen it).
    """

    source_in: tuple[str, ...] | None = None
    source_under: str | None = None
    ext_in: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()
    readers: tuple[str, ...] | None = None

    @property
    def matches_nothing(self) -> bool:
        """True when no source can match, so a store can answer without asking the engine."""
        return self.source_in is not None and not self.source_in


def is_under(source: str, prefix: str) -> bool:
    return source == prefix or source.startswith(prefix + "/")


def plan_filter(
    where: SearchFilter | None,
    sources: Callable[[], list[str]],
    native_prefix: bool = True,
    readers: Readers = None,
) -> FilterPlan | None:
    """Translate ``where`` (and who reads) once, for any store. ``sources`` is called only when a path needs
    resolving: always for a glob, and for a plain prefix when ``native_prefix`` is False."""
    allowed = None if readers is None else tuple(readers)
    if where is None or where.empty:
        return None if allowed is None else FilterPlan(readers=allowed)
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
    fields = tuple(where.fields) + ((("root", where.root),) if where.root else ())
    return FilterPlan(source_in, source_under, tuple(where.file_types), fields, allowed)


def dense_coverage(store: Store) -> float:
    """The share of the index's points with dense vectors (1.0 for an empty index): while a sync is embedding,
    dense search sees only these. One count over the indexed ``pending`` mark, so cheap enough per search."""
    waiting = store.unembedded()
    if not waiting:
        return 1.0
    return 1.0 - waiting / max(store.count(), waiting)


def check_shape(dense: np.ndarray, rows: int, dimension: int) -> None:
    if dense.shape != (rows, dimension):
        raise RaglineError(f"dense vectors have shape {dense.shape}, expected ({rows}, {dimension})")


def check_dimension(points: Sequence[StoredPoint], dimension: int) -> None:
    for p in points:
        if not p.dense and p.payload.get(PENDING) == AWAITING_DENSE:
            continue  # written for BM25, its dense vector still to come: the sync that owns it adds it
        if not p.dense:
            raise RaglineError(f"point {p.id} has no {DENSE!r} vector: run 'ragline verify --repair' on its index")
        if len(p.dense) != dimension:
            raise RaglineError(
                f"point {p.id} has a dense vector of dimension {len(p.dense)}, the index expects {dimension}"
            )


def stored_point(point_id: Any, vectors: Mapping[str, Any] | None, payload: Mapping[str, Any] | None) -> StoredPoint:
    """A :class:`StoredPoint` from a record of either engine (both name their vectors DENSE and SPARSE;
    a chunk with no BM25 terms may come back without a sparse vector; a damaged point with no dense vector
    comes back with an empty one, which ``ragline verify`` reports and an import refuses)."""
    vectors = vectors or {}
    sparse = vectors.get(SPARSE)
    return StoredPoint(
        id=str(point_id),
        dense=[float(x) for x in vectors.get(DENSE) or ()],
        sparse=SparseVector(tuple(int(i) for i in sparse.indices), tuple(float(v) for v in sparse.values))
        if sparse is not None
        else SparseVector((), ()),
        payload=dict(payload or {}),
    )


class QdrantStore:
    """The :class:`Store` protocol, once, for any Qdrant engine: validation, payloads, paging, filter planning
    and candidate lists live here; a subclass only translates the engine calls below into its client's
    types (and adds its lifecycle: open, close, saved config)."""

    kind: str
    native_prefix: ClassVar[bool] = True
    """Whether the engine matches a keyword prefix itself (else prefixes are resolved to sources)."""
    meta: IndexMeta
    location: str

    # -- engine calls (each subclass translates these) ----------------------------------------
    def _point(self, point_id: str, dense: list[float] | None, sparse: SparseVector, payload: dict[str, Any]) -> Any:
        """A point to write; with no ``dense`` (None or empty), one that has only its BM25 vector."""
        raise NotImplementedError

    def _set_vectors(self, ids: Sequence[str], dense: np.ndarray) -> None:
        """Give existing points their dense vectors (their payloads and BM25 vectors stay)."""
        raise NotImplementedError

    def _delete_keys(self, ids: Sequence[str], keys: list[str]) -> None:
        """Remove these payload keys from these points."""
        raise NotImplementedError

    def _write(self, points: list[Any]) -> None:
        raise NotImplementedError

    def _delete(self, condition: Any) -> None:
        raise NotImplementedError

    def _scroll_page(
        self, offset: Any, limit: int, with_payload: list[str] | bool, vectors: bool, condition: Any = None
    ) -> tuple[list[Any], Any]:
        """One page of records (each with ``id``, ``payload``, ``vector``) and the next offset (None: done)."""
        raise NotImplementedError

    def _facet(self, key: str, condition: Any = None) -> list[tuple[Any, int]]:
        """Every value of a keyword field, with its point count (of the points ``condition`` selects)."""
        raise NotImplementedError

    def _count(self, condition: Any = None) -> int:
        raise NotImplementedError

    def _set_payload(self, condition: Any, payload: dict[str, Any]) -> None:
        """Set these payload keys on every point ``condition`` selects (other keys stay)."""
        raise NotImplementedError

    def _query(self, requests: list[Any], keyed: bool) -> list[list[Hit]]:
        """Run candidate requests in one batched call: one hit list per request, best first (``keyed``: each
        names its document from its id, :func:`hit`)."""
        raise NotImplementedError

    def _request(self, using: str, vector: Any, limit: int, condition: Any, exact: bool, documents: bool) -> Any:
        """A nearest-neighbour request on the named vector (a float list, or a :class:`SparseVector`)."""
        raise NotImplementedError

    def _retrieve(self, ids: list[str]) -> list[Any]:
        raise NotImplementedError

    def _match_value(self, key: str, value: Any) -> Any:
        raise NotImplementedError

    def _match_any(self, key: str, values: Sequence[str]) -> Any:
        raise NotImplementedError

    def _match_under(self, key: str, prefix: str) -> Any:
        """The value is ``prefix`` or lies under it; only where :attr:`native_prefix`."""
        raise NotImplementedError

    def _has_id(self, ids: Sequence[str]) -> Any:
        raise NotImplementedError

    def _all(self, must: list[Any], must_not: list[Any] | None = None) -> Any:
        raise NotImplementedError

    def _check_space(self, points: int = 0) -> None:
        """Refuse a write that the engine's storage cannot take (the embedded store checks its disk)."""

    # -- writes ---------------------------------------------------------------------------------
    def upsert(
        self,
        chunks: Sequence[Chunk],
        dense: np.ndarray | None,
        sparse: Sequence[SparseVector],
        extra: Sequence[dict[str, Any]],
    ) -> None:
        """Write chunk points; with ``dense`` None, points that BM25 finds at once and that wait for their dense
        vectors (:meth:`set_dense`), marked ``PENDING`` so that coverage and a resumed sync can count them."""
        if not chunks:
            return
        if dense is not None:
            check_shape(dense, len(chunks), self.meta.dimension)
        self._check_space(len(chunks))
        vectors: Iterable[Any] = dense if dense is not None else [None] * len(chunks)
        waiting = {} if dense is not None else {PENDING: AWAITING_DENSE}
        rows = zip(chunks, vectors, sparse, extra, strict=True)
        self._write(
            [
                self._point(c.id, None if v is None else v.tolist(), sp, {**chunk_payload(c, ex), **waiting})
                for c, v, sp, ex in rows
            ]
        )

    def set_dense(self, ids: Sequence[str], dense: np.ndarray) -> None:
        """Add their dense vectors to points written without them, then unmark them: a crash in between leaves
        them marked, and the next sync embeds them again (the same vectors)."""
        if not ids:
            return
        check_shape(dense, len(ids), self.meta.dimension)
        self._check_space()
        self._set_vectors(ids, dense)
        self._delete_keys(ids, [PENDING])

    def awaiting_dense(self, limit: int) -> list[Chunk]:
        """Up to ``limit`` chunks whose points wait for their dense vectors (as :meth:`set_dense` unmarks them,
        asking again gives the next ones)."""
        records, _ = self._scroll_page(None, limit, True, False, self._awaiting_dense())
        return [chunk_from_payload(r.id, r.payload or {}) for r in records]

    def unembedded(self) -> int:
        """How many points wait for their dense vectors (0 once every sync has finished)."""
        return self._count(self._awaiting_dense())

    def _awaiting_dense(self) -> Any:
        """The filter on the mark a sync leaves on points written before their dense vectors."""
        return self._all([self._match_value(PENDING, AWAITING_DENSE)])

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        check_dimension(points, self.meta.dimension)
        self._check_space(len(points))
        self._write([self._point(p.id, list(p.dense) or None, p.sparse, dict(p.payload)) for p in points])

    def delete_document(self, document_id: str, keep: Sequence[str] = ()) -> None:
        """Delete a document's points, except ``keep`` (the ids just written for it)."""
        self._check_space()
        must_not = [self._has_id(keep)] if keep else None
        self._delete(self._all([self._match_value("document_id", document_id)], must_not))

    def set_readers(self, document_id: str, readers: Sequence[str]) -> None:
        self._check_space()
        self._set_payload(self._all([self._match_value("document_id", document_id)]), {ACCESS: sorted(readers)})

    # -- reads ----------------------------------------------------------------------------------
    def _pages(
        self, with_payload: list[str] | bool, vectors: bool, limit: int = SCROLL_PAGE, condition: Any = None
    ) -> Iterator[list[Any]]:
        offset: Any = None
        while True:
            records, offset = self._scroll_page(offset, limit, with_payload, vectors, condition)
            if records:
                yield records
            if offset is None:
                return

    def documents(self, readers: Readers = None) -> dict[str, DocumentState]:
        condition = self._condition(plan_filter(None, self.sources, readers=readers))
        pages = self._pages(DOC_STATE_FIELDS, False, condition=condition)
        return summarise_documents(r.payload or {} for page in pages for r in page)

    def count(self, readers: Readers = None) -> int:
        return self._count(self._condition(plan_filter(None, self.sources, readers=readers)))

    def export_points(self, batch: int = 256) -> Iterator[list[StoredPoint]]:
        for records in self._pages(True, True, batch):
            yield [stored_point(r.id, r.vector, r.payload) for r in records]

    def document_points(self, document_id: str) -> list[StoredPoint]:
        condition = self._all([self._match_value("document_id", document_id)])
        return [
            stored_point(r.id, r.vector, r.payload)
            for page in self._pages(True, True, condition=condition)
            for r in page
        ]

    def all_chunks(self) -> Iterator[list[Chunk]]:
        for records in self._pages(True, False):
            yield [chunk_from_payload(r.id, r.payload or {}) for r in records]

    def sources(self) -> list[str]:
        # An exact facet also lists values whose points were all deleted, with count 0.
        return [str(value) for value, count in self._facet("source") if count > 0]

    def file_types(self, readers: Readers = None) -> list[str]:
        condition = self._condition(plan_filter(None, self.sources, readers=readers))
        return sorted(str(value) for value, count in self._facet("ext", condition) if count > 0 and value)

    def _condition(self, plan: FilterPlan | None) -> Any:
        if plan is None:
            return None
        must: list[Any] = []
        if plan.source_in is not None:
            must.append(self._match_any("source", plan.source_in))
        if plan.source_under is not None:
            must.append(self._match_under("source", plan.source_under))
        if plan.ext_in:
            must.append(self._match_any("ext", plan.ext_in))
        must.extend(self._match_value(key, value) for key, value in plan.fields)
        if plan.readers is not None:
            must.append(self._match_any(ACCESS, plan.readers))
        return self._all(must)

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVector | None,
        limit: int,
        where: SearchFilter | None = None,
        exact: bool = False,
        documents: bool = False,
        readers: Readers = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """Dense and BM25 candidates, each filtered (and held to what ``readers`` may read) inside its own
        request, in one batched call to the engine."""
        plan = plan_filter(where, self.sources, self.native_prefix, readers)
        if plan is not None and plan.matches_nothing:
            return [], []
        condition = self._condition(plan)
        keyed = documents and self.meta.chunk_ids == CHUNK_IDS
        read = documents and not keyed
        requests = []
        if dense is not None:
            requests.append(self._request(DENSE, dense.tolist(), limit, condition, exact, read))
        if sparse is not None and len(sparse):
            requests.append(self._request(SPARSE, sparse, limit, condition, False, read))
        hits = self._query(requests, keyed) if requests else []
        dense_hits = hits.pop(0) if dense is not None else []
        sparse_hits = hits.pop(0) if hits else []
        return dense_hits, sparse_hits

    def chunks(self, ids: Sequence[str], readers: Readers = None) -> dict[str, Chunk]:
        """The chunks behind these point ids (ids no longer in the index, or that ``readers`` may not read, are
        left out)."""
        if not ids:
            return {}
        if readers is None:
            records = self._retrieve(list(ids))
        else:
            condition = self._all([self._has_id(ids), self._match_any(ACCESS, list(readers))])
            records = [r for page in self._pages(True, False, len(ids), condition) for r in page]
        return {str(r.id): chunk_from_payload(r.id, r.payload or {}) for r in records}
