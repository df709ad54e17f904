"""The embedded store: Qdrant Edge in a folder (see :mod:`pipeline.stores.folder`), owned by one process at
a time. Only the translation to ``qdrant_edge`` calls lives here; everything else is :class:`QdrantStore`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import IndexConfig
from pipeline.errors import IndexUnavailableError, RaglineError
from pipeline.stores.base import HIT_FIELD, Hit, IndexMeta, QdrantStore, hit
from pipeline.stores.folder import (
    CONFIG_FILE,
    META_FILE,
    MIN_FREE_MB,
    ROOTS_FILE,
    TUNING_FILE,
    FolderLock,
    check_space,
    engine_reason,
    read_config,
    read_json,
    read_meta,
    write_json_atomic,
    writing,
)
from pipeline.stores.schema import DENSE, INDEXED_FIELDS, SPARSE
from pipeline.types import SparseVector

if TYPE_CHECKING:
    import numpy as np
    import qdrant_edge


class EdgeStore(QdrantStore):
    """Qdrant Edge, in-process. Open with :meth:`open`; close (or use ``with``) to release the folder."""

    kind = "qdrant-edge"

    def __init__(
        self,
        folder: Path,
        shard: qdrant_edge.EdgeShard,
        meta: IndexMeta,
        lock: FolderLock,
        min_free_mb: float = MIN_FREE_MB,
        layout: IndexConfig | None = None,
    ) -> None:
        self.folder = folder
        self.location = str(folder)
        self.meta = meta
        self.min_free_mb = min_free_mb
        layout = layout or IndexConfig()
        self.oversampling = layout.oversampling
        self.hnsw_ef = layout.hnsw_ef
        self._shard = shard
        self._lock = lock

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        folder: str | Path,
        meta: IndexMeta | None = None,
        min_free_mb: float = MIN_FREE_MB,
        layout: IndexConfig | None = None,
    ) -> EdgeStore:
        """Open an existing index; with ``meta``, create it if missing (or check it matches).

        Writes are refused while the folder's disk has less than ``min_free_mb`` free (see :func:`check_space`).
        ``layout``: where a new index keeps its vectors and payloads, and how a quantized one is searched.
        """
        import qdrant_edge as q

        path = Path(folder).expanduser().resolve()
        existing = read_meta(path)
        if existing is None and meta is None:
            raise IndexUnavailableError(f"no index at {path}: run 'ragline ingest PATH' first")
        if existing is not None and path.is_file():
            raise IndexUnavailableError(f"index path {path} is a file, not a folder")
        if existing is None and path.is_dir() and {p.name for p in path.iterdir()} - {"lock", "shard"}:
            raise IndexUnavailableError(
                f"{path} is not empty and holds no ragline index: give a new or empty folder for the index"
            )
        path.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(path / "lock")
        try:
            if existing is None:
                assert meta is not None
                check_space(path, min_free_mb)
                shard = q.EdgeShard.create(str(path / "shard"), cls._edge_config(meta, layout or IndexConfig()))
                for name in INDEXED_FIELDS:
                    shard.update(q.UpdateOperation.create_field_index(name, q.PayloadSchemaType.Keyword))
                write_json_atomic(path / META_FILE, asdict(meta))
                existing = meta
            else:
                if meta is not None:
                    existing.check_model(meta.model, meta.dimension)
                shard = q.EdgeShard.load(str(path / "shard"))
                cls._index_fields(shard, path, min_free_mb)
        except RaglineError:
            lock.release()
            raise
        except Exception as exc:  # noqa: BLE001 - the engine's error, in one line
            lock.release()
            raise IndexUnavailableError(f"cannot open the Qdrant Edge shard in {path}: {engine_reason(exc)}") from None
        return cls(path, shard, existing, lock, min_free_mb, layout)

    @staticmethod
    def _index_fields(shard: qdrant_edge.EdgeShard, path: Path, min_free_mb: float) -> None:
        """The payload indexes an index from before one of ``INDEXED_FIELDS`` existed lacks (``access``)."""
        import qdrant_edge as q

        missing = [name for name in INDEXED_FIELDS if name not in shard.info().payload_schema]
        if missing:
            check_space(path, min_free_mb)
            with writing(path):
                for name in missing:
                    shard.update(q.UpdateOperation.create_field_index(name, q.PayloadSchemaType.Keyword))

    @staticmethod
    def _edge_config(meta: IndexMeta, layout: IndexConfig) -> qdrant_edge.EdgeConfig:
        """The shard's schema (dense with cosine, BM25 sparse with the IDF modifier) and its storage: full
        vectors, the BM25 inverted index and payloads in RAM or on disk, and int8 copies of the dense vectors
        (always in RAM) when the index is quantized."""
        import qdrant_edge as q

        quantized = (
            q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=0.99, always_ram=True)
            if meta.quantization == "int8"
            else None
        )
        dense = q.EdgeVectorParams(
            size=meta.dimension, distance=q.Distance.Cosine, on_disk=layout.on_disk, quantization_config=quantized
        )
        return q.EdgeConfig(
            vectors={DENSE: dense},
            sparse_vectors={SPARSE: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf, on_disk=layout.on_disk)},
            on_disk_payload=layout.on_disk,
        )

    def close(self) -> None:
        """Flush and release the folder; the folder is released even when the flush fails."""
        if self._shard is None:
            return
        shard, self._shard = self._shard, None  # type: ignore[assignment]
        try:
            with writing(self.folder):
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
        write_json_atomic(self.folder / CONFIG_FILE, config)

    def saved_config(self) -> dict[str, Any] | None:
        return read_config(self.folder)

    def save_tuning(self, tuning: dict[str, Any] | None) -> None:
        if tuning is None:
            (self.folder / TUNING_FILE).unlink(missing_ok=True)
        else:
            write_json_atomic(self.folder / TUNING_FILE, tuning)

    def tuning(self) -> dict[str, Any] | None:
        return read_json(self.folder / TUNING_FILE)

    def save_roots(self, roots: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.folder / ROOTS_FILE, roots)

    def roots(self) -> dict[str, dict[str, Any]]:
        return read_json(self.folder / ROOTS_FILE) or {}

    def flush(self) -> None:
        with writing(self.folder):
            self._shard.flush()

    def optimize(self) -> None:
        """Qdrant Edge never optimizes on its own: without this, 100k chunks stay in small
        unindexed segments and every dense query scans them all."""
        with writing(self.folder):
            self._shard.optimize()

    def _count(self, condition: Any = None) -> int:
        import qdrant_edge as q

        return int(self._shard.count(q.CountRequest(exact=True, filter=condition)))

    # -- engine calls ------------------------------------------------------------------------
    def _check_space(self, points: int = 0) -> None:
        check_space(self.folder, self.min_free_mb, points)

    def _point(self, point_id: str, dense: list[float] | None, sparse: SparseVector, payload: dict[str, Any]) -> Any:
        import qdrant_edge as q

        vectors: dict[str, Any] = {SPARSE: q.SparseVector(list(sparse.indices), list(sparse.values))}
        if dense:
            vectors[DENSE] = dense
        return q.Point(point_id, vectors, payload)

    def _set_vectors(self, ids: Sequence[str], dense: np.ndarray) -> None:
        import qdrant_edge as q

        update = q.UpdateOperation.update_vectors(
            [q.PointVectors(i, {DENSE: v.tolist()}) for i, v in zip(ids, dense, strict=True)]
        )
        with writing(self.folder):
            self._shard.update(update)

    def _delete_keys(self, ids: Sequence[str], keys: list[str]) -> None:
        import qdrant_edge as q

        with writing(self.folder):
            self._shard.update(q.UpdateOperation.delete_payload(list[Any](ids), keys))

    def _write(self, points: list[Any]) -> None:
        import qdrant_edge as q

        update = q.UpdateOperation.upsert_points(points)
        with writing(self.folder):
            self._shard.update(update)

    def _delete(self, condition: Any) -> None:
        import qdrant_edge as q

        with writing(self.folder):
            self._shard.update(q.UpdateOperation.delete_points_by_filter(condition))

    def _scroll_page(
        self, offset: Any, limit: int, with_payload: list[str] | bool, vectors: bool, condition: Any = None
    ) -> tuple[list[Any], Any]:
        import qdrant_edge as q

        request = q.ScrollRequest(
            offset=offset, limit=limit, with_payload=with_payload, with_vector=vectors, filter=condition
        )
        records, offset = self._shard.scroll(request)
        return list(records), offset

    def _facet(self, key: str, condition: Any = None) -> list[tuple[Any, int]]:
        import qdrant_edge as q

        request = q.FacetRequest(key=key, limit=1_000_000, exact=True, filter=condition)
        return [(h.value, h.count) for h in self._shard.facet(request)]

    def _set_payload(self, condition: Any, payload: dict[str, Any]) -> None:
        import qdrant_edge as q

        with writing(self.folder):
            self._shard.update(q.UpdateOperation.set_payload_by_filter(condition, payload))

    def _request(self, using: str, vector: Any, limit: int, condition: Any, exact: bool, documents: bool) -> Any:
        import qdrant_edge as q

        if isinstance(vector, SparseVector):
            vector = q.SparseVector(list(vector.indices), list(vector.values))
        params = None
        if exact:
            params = q.SearchParams(exact=True)
        elif using == DENSE:
            quantized = self.meta.quantization == "int8"
            rescored = q.QuantizationSearchParams(rescore=True, oversampling=self.oversampling) if quantized else None
            params = q.SearchParams(hnsw_ef=self.hnsw_ef or None, quantization=rescored)
        query = q.Query.Nearest(vector, using=using)
        return q.QueryRequest(
            limit=limit, query=query, filter=condition, with_payload=[HIT_FIELD] if documents else False, params=params
        )

    def _query(self, requests: list[Any], keyed: bool) -> list[list[Hit]]:
        import qdrant_edge as q

        return [
            [hit(p.id, p.score, p.payload, keyed) for p in found]
            for found in self._shard.query_batch(q.QueryBatchRequest(requests))
        ]

    def _retrieve(self, ids: list[str]) -> list[Any]:
        return list(self._shard.retrieve(list[Any](ids), True, False))

    def _match_value(self, key: str, value: Any) -> Any:
        import qdrant_edge as q

        return q.FieldCondition(key=key, match=q.MatchValue(value))

    def _match_any(self, key: str, values: Sequence[str]) -> Any:
        import qdrant_edge as q

        return q.FieldCondition(key=key, match=q.MatchAny(list(values)))

    def _match_under(self, key: str, prefix: str) -> Any:
        import qdrant_edge as q

        under = q.FieldCondition(key=key, match=q.MatchPrefix(prefix + "/"))
        return q.Filter(should=[self._match_value(key, prefix), under])

    def _has_id(self, ids: Sequence[str]) -> Any:
        import qdrant_edge as q

        return q.HasIdCondition(set(ids))

    def _all(self, must: list[Any], must_not: list[Any] | None = None) -> Any:
        import qdrant_edge as q

        return q.Filter(must=must, must_not=must_not)
