"""The server store: one collection on a Qdrant server or cluster, over ``qdrant-client``.

A drop-in for :class:`pipeline.stores.edge.EdgeStore`: the same points (named vectors
``dense`` and ``bm25`` with the IDF modifier), the same payloads and payload
indexes, the same filters and the same answers. Many processes may share one
collection; there is no lock.

Where the index metadata lives: in the collection's own metadata (Qdrant 1.16+;
qdrant-client's local mode keeps it too), not in a reserved point. ``ragline_index``
holds the :class:`IndexMeta`, written together with the collection;
``ragline_config`` the config the index was last synced with, as one JSON string
(metadata updates merge key by key, so a string replaces the old config whole).
So every point is a chunk point: counts, document states, sources and searches
have nothing to step around.

A path-prefix filter is resolved against the collection's sources (one facet
call) into a ``MatchAny``, as a glob is. qdrant-client has ``MatchPrefix``, but
keyword prefix matching is recent on the server (1.19), newer than the 1.18 that
docker-compose.yml pins.

``url = ":memory:"`` runs qdrant-client's local mode in this process (for tests):
every store opened that way starts empty, unless a client is passed in.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import QdrantConfig
from pipeline.errors import ConfigError, IndexUnavailableError, RaglineError
from pipeline.filters import SearchFilter
from pipeline.stores.edge import (
    DENSE,
    DOC_STATE_FIELDS,
    INDEXED_FIELDS,
    SPARSE,
    DocumentState,
    FilterPlan,
    Hit,
    IndexMeta,
    StoredPoint,
    check_dimension,
    check_shape,
    chunk_from_payload,
    chunk_payload,
    plan_filter,
    stored_point,
    summarise_documents,
)
from pipeline.types import Chunk, SparseVector

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

MEMORY = ":memory:"
META_KEY = "ragline_index"
CONFIG_KEY = "ragline_config"
SCROLL_PAGE = 1024


def _make_client(config: QdrantConfig) -> QdrantClient:
    from qdrant_client import QdrantClient

    if config.url == MEMORY:
        return QdrantClient(location=MEMORY)
    try:
        return QdrantClient(
            url=config.url,
            api_key=os.environ.get(config.api_key_env) or None,
            prefer_grpc=config.prefer_grpc,
            grpc_port=config.grpc_port,
            timeout=max(1, math.ceil(config.timeout_s)),
            # The version check runs in a background thread and can only warn; a server that is
            # down or refuses the key is reported, in one line, by the first real call instead.
            check_compatibility=False,
        )
    except ValueError as exc:  # an unknown scheme, a bad host or port
        raise ConfigError(
            f"qdrant.url {config.url!r} is not a Qdrant URL ({_reason(exc)}): use e.g. http://localhost:6333"
        ) from None


def _reason(exc: BaseException) -> str:
    """What went wrong, in a few words on one line."""
    import grpc
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    text = str(exc)
    if isinstance(exc, UnexpectedResponse):
        detail = ""
        try:
            detail = str(exc.structured().get("status", {}).get("error", ""))
        except (ValueError, AttributeError):
            detail = exc.content.decode(errors="replace")
        text = f"HTTP {exc.status_code} {exc.reason_phrase}" + (f": {detail}" if detail else "")
    elif isinstance(exc, ResponseHandlingException):
        text = str(exc.source) or type(exc.source).__name__
    elif isinstance(exc, grpc.Call):  # what a failed gRPC call raises (a grpc.RpcError too)
        text = f"{exc.code().name}: {exc.details()}"
    text = " ".join(text.split())
    return (text[:297] + "...") if len(text) > 300 else (text or type(exc).__name__)


def _is_auth_failure(exc: BaseException) -> bool:
    import grpc
    from qdrant_client.http.exceptions import UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in (401, 403)
    if isinstance(exc, grpc.Call):
        return exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
    return False


@contextmanager
def _server_errors(config: QdrantConfig, action: str) -> Iterator[None]:
    """Turn the client's transport and HTTP/gRPC errors into one-line IndexUnavailableErrors."""
    import grpc
    import httpx
    from qdrant_client.http.exceptions import ApiException

    try:
        yield
    except RaglineError:
        raise
    except (ApiException, grpc.RpcError, httpx.HTTPError, OSError) as exc:
        hint = f" (is ${config.api_key_env} set to the right API key?)" if _is_auth_failure(exc) else ""
        raise IndexUnavailableError(
            f"Qdrant at {config.url}: cannot {action} collection {config.collection!r}: {_reason(exc)}{hint}"
        ) from None


class ServerStore:
    """A collection on a Qdrant server. Open with :meth:`open`; close (or use ``with``) when done."""

    kind = "qdrant-server"

    def __init__(self, config: QdrantConfig, client: QdrantClient, meta: IndexMeta, owns_client: bool = True) -> None:
        self.config = config
        self.name = config.collection
        self.location = f"{config.url} collection {config.collection}"
        self.meta = meta
        self._client: QdrantClient | None = client
        self._owns_client = owns_client

    # -- lifecycle -------------------------------------------------------------------------
    @staticmethod
    def exists(config: QdrantConfig, client: QdrantClient | None = None) -> bool:
        """Whether the collection exists (a ``:memory:`` URL without a client: never)."""
        own = client is None
        client = client or _make_client(config)
        try:
            with _server_errors(config, "look up"):
                return bool(client.collection_exists(config.collection))
        finally:
            if own:
                client.close()

    @classmethod
    def open(
        cls, config: QdrantConfig, meta: IndexMeta | None = None, client: QdrantClient | None = None
    ) -> ServerStore:
        """Open an existing collection; with ``meta``, create it if missing (or check it matches).

        ``client``: use this client (and leave it open on close) instead of making one.
        """
        own = client is None
        client = client or _make_client(config)
        try:
            with _server_errors(config, "open"):
                existing = client.collection_exists(config.collection)
                if not existing and meta is None:
                    raise IndexUnavailableError(
                        f"no collection {config.collection!r} at {config.url}: run 'ragline ingest PATH' first"
                    )
                if not existing:
                    assert meta is not None
                    stored = cls._create(client, config, meta)
                else:
                    stored = cls._read_meta(client, config)
                    if meta is not None:
                        stored.check_model(meta.model, meta.dimension)
        except BaseException:
            if own:
                client.close()
            raise
        return cls(config, client, stored, owns_client=own)

    @staticmethod
    def _create(client: QdrantClient, config: QdrantConfig, meta: IndexMeta) -> IndexMeta:
        from qdrant_client import models

        try:
            client.create_collection(
                collection_name=config.collection,
                vectors_config={
                    DENSE: models.VectorParams(
                        size=meta.dimension, distance=models.Distance.COSINE, on_disk=config.on_disk
                    )
                },
                sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                shard_number=config.shard_number,
                replication_factor=config.replication_factor,
                write_consistency_factor=config.write_consistency_factor,
                on_disk_payload=config.on_disk,
                metadata={META_KEY: asdict(meta)},
            )
        except Exception:
            # Another process may have created it in the meantime: then use (and check) that one.
            if not client.collection_exists(config.collection):
                raise
            stored = ServerStore._read_meta(client, config)
            stored.check_model(meta.model, meta.dimension)
            return stored
        if config.url != MEMORY:  # local mode has no payload indexes (and warns about them)
            for field in INDEXED_FIELDS:
                client.create_payload_index(
                    config.collection, field, field_schema=models.PayloadSchemaType.KEYWORD, wait=True
                )
        return meta

    @staticmethod
    def _metadata(client: QdrantClient, config: QdrantConfig) -> dict[str, Any]:
        return dict(client.get_collection(config.collection).config.metadata or {})

    @staticmethod
    def _read_meta(client: QdrantClient, config: QdrantConfig) -> IndexMeta:
        raw = ServerStore._metadata(client, config).get(META_KEY)
        if raw is None:
            raise IndexUnavailableError(
                f"collection {config.collection!r} at {config.url} was not created by ragline "
                f"(its metadata has no {META_KEY!r}): choose another collection name"
            )
        try:
            return IndexMeta(**raw)
        except TypeError as exc:
            raise IndexUnavailableError(
                f"the {META_KEY!r} metadata of collection {config.collection!r} at {config.url} is damaged: {exc}"
            ) from None

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            raise IndexUnavailableError(f"the store for {self.location} is closed")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            if self._owns_client:
                self._client.close()
            self._client = None

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return _server_errors(self.config, action)

    def save_config(self, config: dict[str, Any]) -> None:
        # One JSON string: metadata merges key by key (a null deletes one), a string is replaced whole.
        with self._errors("save the config of"):
            self.client.update_collection(self.name, metadata={CONFIG_KEY: json.dumps(config, sort_keys=True)})

    def saved_config(self) -> dict[str, Any] | None:
        with self._errors("read the config of"):
            raw = self._metadata(self.client, self.config).get(CONFIG_KEY)
        if raw is None:
            return None
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise IndexUnavailableError(f"the saved config of {self.location} is damaged: {exc}") from None
        return data if isinstance(data, dict) else None

    # -- writes ----------------------------------------------------------------------------
    @staticmethod
    def _point(point_id: str, dense: list[float], sparse: SparseVector, payload: dict[str, Any]) -> models.PointStruct:
        from qdrant_client import models

        return models.PointStruct(
            id=point_id,
            vector={
                DENSE: dense,
                SPARSE: models.SparseVector(indices=list(sparse.indices), values=list(sparse.values)),
            },
            payload=payload,
        )

    def _write(self, points: list[models.PointStruct]) -> None:
        with self._errors("write to"):
            self.client.upsert(self.name, points=points, wait=True)

    def upsert(
        self,
        chunks: Sequence[Chunk],
        dense: np.ndarray,
        sparse: Sequence[SparseVector],
        extra: Sequence[dict[str, Any]],
    ) -> None:
        if not chunks:
            return
        check_shape(dense, len(chunks), self.meta.dimension)
        self._write(
            [
                self._point(chunk.id, vector.tolist(), sp, chunk_payload(chunk, ex))
                for chunk, vector, sp, ex in zip(chunks, dense, sparse, extra)
            ]
        )

    def import_points(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        check_dimension(points, self.meta.dimension)
        self._write([self._point(p.id, list(p.dense), p.sparse, dict(p.payload)) for p in points])

    def delete_document(self, document_id: str, keep: Sequence[str] = ()) -> None:
        """Delete a document's points, except ``keep`` (the ids just written for it)."""
        from qdrant_client import models

        condition = models.Filter(
            must=[models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id))],
            must_not=[models.HasIdCondition(has_id=list(keep))] if keep else None,
        )
        with self._errors("delete from"):
            self.client.delete(self.name, points_selector=models.FilterSelector(filter=condition), wait=True)

    def flush(self) -> None:
        """Nothing to do: every write waits until the server has applied it."""

    def optimize(self) -> None:
        """Nothing to do: the server's own optimizers run in the background."""

    # -- reads -----------------------------------------------------------------------------
    def _scroll_pages(self, with_payload: list[str] | bool, with_vectors: bool, limit: int) -> Iterator[list[Any]]:
        offset: Any = None
        while True:
            with self._errors("read"):
                records, offset = self.client.scroll(
                    self.name, limit=limit, offset=offset, with_payload=with_payload, with_vectors=with_vectors
                )
            if records:
                yield records
            if offset is None:
                return

    def documents(self) -> dict[str, DocumentState]:
        return summarise_documents(
            record.payload or {}
            for records in self._scroll_pages(DOC_STATE_FIELDS, False, SCROLL_PAGE)
            for record in records
        )

    def export_points(self, batch: int = 256) -> Iterator[list[StoredPoint]]:
        for records in self._scroll_pages(True, True, batch):
            yield [stored_point(r.id, r.vector, r.payload) for r in records]

    def count(self) -> int:
        with self._errors("count"):
            return int(self.client.count(self.name, exact=True).count)

    def sources(self) -> list[str]:
        with self._errors("read"):
            hits = self.client.facet(self.name, key="source", limit=1_000_000, exact=True).hits
        return [str(h.value) for h in hits if h.count > 0]  # as EdgeStore: no values of deleted points

    @staticmethod
    def _server_filter(plan: FilterPlan | None) -> models.Filter | None:
        from qdrant_client import models

        if plan is None:
            return None
        assert plan.source_under is None, "prefixes are resolved to sources (plan_filter native_prefix=False)"
        must: list[Any] = []
        if plan.source_in is not None:
            must.append(models.FieldCondition(key="source", match=models.MatchAny(any=list(plan.source_in))))
        if plan.ext_in:
            must.append(models.FieldCondition(key="ext", match=models.MatchAny(any=list(plan.ext_in))))
        for key, value in plan.fields:
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        return models.Filter(must=must)

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVector | None,
        limit: int,
        where: SearchFilter | None = None,
        exact: bool = False,
    ) -> tuple[list[Hit], list[Hit]]:
        """Dense and BM25 candidates, each filtered, in one batched call to the server."""
        from qdrant_client import models

        plan = plan_filter(where, self.sources, native_prefix=False)
        if plan is not None and plan.matches_nothing:
            return [], []
        server_filter = self._server_filter(plan)
        requests: list[models.QueryRequest] = []
        if dense is not None:
            requests.append(
                models.QueryRequest(
                    query=models.NearestQuery(nearest=dense.tolist()),
                    using=DENSE,
                    filter=server_filter,
                    limit=limit,
                    with_payload=False,
                    params=models.SearchParams(exact=True) if exact else None,
                )
            )
        if sparse is not None and len(sparse):
            vector = models.SparseVector(indices=list(sparse.indices), values=list(sparse.values))
            requests.append(
                models.QueryRequest(
                    query=models.NearestQuery(nearest=vector),
                    using=SPARSE,
                    filter=server_filter,
                    limit=limit,
                    with_payload=False,
                )
            )
        results: list[Any] = []
        if requests:
            with self._errors("search"):
                results = self.client.query_batch_points(self.name, requests=requests)
        hits = [[Hit(str(p.id), float(p.score)) for p in r.points] for r in results]
        dense_hits = hits.pop(0) if dense is not None else []
        sparse_hits = hits.pop(0) if hits else []
        return dense_hits, sparse_hits

    def chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks behind these point ids (ids no longer in the collection are left out)."""
        if not ids:
            return {}
        with self._errors("read"):
            records = self.client.retrieve(self.name, ids=list(ids), with_payload=True, with_vectors=False)
        return {str(r.id): chunk_from_payload(r.id, r.payload or {}) for r in records}
