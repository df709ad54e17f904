"""The server store: one collection on a Qdrant server or cluster, over ``qdrant-client``.

A drop-in for :class:`pipeline.stores.edge.EdgeStore`: the same points (named vectors
``dense`` and ``bm25`` with the IDF modifier), the same payloads and payload
indexes, the same filters and the same answers, since both are one
:class:`~pipeline.stores.base.QdrantStore` and this module only translates its engine
calls into qdrant-client's. Many processes may share one collection; there is no lock.

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
from functools import partial
from typing import TYPE_CHECKING, Any

from pipeline.config import QdrantConfig
from pipeline.errors import ConfigError, IndexUnavailableError, RaglineError
from pipeline.stores.base import HIT_FIELD, Hit, IndexMeta, QdrantStore, hit
from pipeline.stores.schema import DENSE, INDEXED_FIELDS, SPARSE
from pipeline.stores.writes import WritePolicy, batches, point_bytes, retried
from pipeline.types import SparseVector

if TYPE_CHECKING:
    import numpy as np
    from qdrant_client import QdrantClient

MEMORY = ":memory:"
META_KEY = "ragline_index"
CONFIG_KEY = "ragline_config"
TUNING_KEY = "ragline_tuned"
ROOTS_KEY = "ragline_roots"
"""The ranking settings `ragline tune` chose, as one JSON string (a null deletes it)."""


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


def _point_bytes(point: Any) -> int:
    sparse = point.vector[SPARSE]
    return point_bytes(point.vector.get(DENSE, ()), len(sparse.indices), point.payload or {})


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


def collection_settings(config: QdrantConfig, meta: IndexMeta) -> dict[str, Any]:
    """The ``create_collection`` arguments: the schema (dense with cosine, BM25 sparse with the IDF modifier),
    and the cluster's settings from ``[qdrant]``: shards, replicas, write consistency, on-disk storage and
    quantization."""
    from qdrant_client import models

    quantized = (
        models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
        if meta.quantization == "int8"
        else None
    )
    return {
        "collection_name": config.collection,
        "vectors_config": {
            DENSE: models.VectorParams(size=meta.dimension, distance=models.Distance.COSINE, on_disk=config.on_disk)
        },
        "sparse_vectors_config": {
            SPARSE: models.SparseVectorParams(
                modifier=models.Modifier.IDF, index=models.SparseIndexParams(on_disk=config.on_disk)
            )
        },
        "shard_number": config.shard_number,
        "replication_factor": config.replication_factor,
        "write_consistency_factor": config.write_consistency_factor,
        "on_disk_payload": config.on_disk,
        "quantization_config": quantized,
        "metadata": {META_KEY: asdict(meta)},
    }


class ServerStore(QdrantStore):
    """A collection on a Qdrant server. Open with :meth:`open`; close (or use ``with``) when done."""

    kind = "qdrant-server"
    native_prefix = False  # keyword prefix matching is newer on the server (1.19) than docker-compose's 1.18

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
                    cls._index_fields(client, config)
        except BaseException:
            if own:
                client.close()
            raise
        return cls(config, client, stored, owns_client=own)

    @staticmethod
    def _create(client: QdrantClient, config: QdrantConfig, meta: IndexMeta) -> IndexMeta:
        try:
            client.create_collection(**collection_settings(config, meta))
        except Exception:
            # Another process may have created it in the meantime: then use (and check) that one.
            if not client.collection_exists(config.collection):
                raise
            stored = ServerStore._read_meta(client, config)
            stored.check_model(meta.model, meta.dimension)
            return stored
        ServerStore._index_fields(client, config)
        return meta

    @staticmethod
    def _index_fields(client: QdrantClient, config: QdrantConfig) -> None:
        """The keyword payload indexes, those a collection from before one of them existed included."""
        from qdrant_client import models

        if config.url == MEMORY:  # local mode has no payload indexes (and warns about them)
            return
        have = client.get_collection(config.collection).payload_schema or {}
        for field in INDEXED_FIELDS:
            if field not in have:
                client.create_payload_index(
                    config.collection, field, field_schema=models.PayloadSchemaType.KEYWORD, wait=True
                )

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
        return self._metadata_json(CONFIG_KEY, "config")

    def save_tuning(self, tuning: dict[str, Any] | None) -> None:
        value = None if tuning is None else json.dumps(tuning, sort_keys=True)
        with self._errors("save the tuning of"):
            self.client.update_collection(self.name, metadata={TUNING_KEY: value})

    def tuning(self) -> dict[str, Any] | None:
        return self._metadata_json(TUNING_KEY, "tuning")

    def save_roots(self, roots: dict[str, dict[str, Any]]) -> None:
        with self._errors("save the roots of"):
            self.client.update_collection(self.name, metadata={ROOTS_KEY: json.dumps(roots, sort_keys=True)})

    def roots(self) -> dict[str, dict[str, Any]]:
        return self._metadata_json(ROOTS_KEY, "roots") or {}

    def _metadata_json(self, key: str, what: str) -> dict[str, Any] | None:
        with self._errors(f"read the {what} of"):
            raw = self._metadata(self.client, self.config).get(key)
        if raw is None:
            return None
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise IndexUnavailableError(f"the saved {what} of {self.location} is damaged: {exc}") from None
        return data if isinstance(data, dict) else None

    def flush(self) -> None:
        """Nothing to do: every write waits until the server has applied it."""

    def optimize(self) -> None:
        """Nothing to do: the server's own optimizers run in the background."""

    def _count(self, condition: Any = None) -> int:
        with self._errors("count"):
            return int(self.client.count(self.name, count_filter=condition, exact=True).count)

    # -- engine calls ------------------------------------------------------------------------
    def _point(self, point_id: str, dense: list[float] | None, sparse: SparseVector, payload: dict[str, Any]) -> Any:
        from qdrant_client import models

        vector: dict[str, Any] = {SPARSE: models.SparseVector(indices=list(sparse.indices), values=list(sparse.values))}
        if dense:
            vector[DENSE] = dense
        return models.PointStruct(id=point_id, vector=vector, payload=payload)

    def _set_vectors(self, ids: Sequence[str], dense: np.ndarray) -> None:
        from qdrant_client import models

        points = [models.PointVectors(id=i, vector={DENSE: v.tolist()}) for i, v in zip(ids, dense, strict=True)]
        policy, size = self._policy(), point_bytes([0.0] * self.meta.dimension, 0, {})
        with self._errors("write to"):
            for batch in batches(points, lambda _: size, policy.max_points, policy.max_bytes):
                retried(partial(self.client.update_vectors, self.name, points=batch, wait=True), policy)

    def _delete_keys(self, ids: Sequence[str], keys: list[str]) -> None:
        with self._errors("write to"):
            self.client.delete_payload(self.name, keys=keys, points=list(ids), wait=True)

    def _write(self, points: list[Any]) -> None:
        """In bounded requests, each retried after a passing failure (:mod:`pipeline.stores.writes`)."""
        policy = self._policy()
        with self._errors("write to"):
            for batch in batches(points, _point_bytes, policy.max_points, policy.max_bytes):
                retried(partial(self.client.upsert, self.name, points=batch, wait=True), policy)

    def _policy(self) -> WritePolicy:
        config = self.config
        return WritePolicy(
            config.write_batch_points, int(config.write_batch_mb * 2**20), config.write_retries, config.retry_backoff_s
        )

    def _delete(self, condition: Any) -> None:
        from qdrant_client import models

        with self._errors("delete from"):
            self.client.delete(self.name, points_selector=models.FilterSelector(filter=condition), wait=True)

    def _scroll_page(
        self, offset: Any, limit: int, with_payload: list[str] | bool, vectors: bool, condition: Any = None
    ) -> tuple[list[Any], Any]:
        with self._errors("read"):
            records, offset = self.client.scroll(
                self.name,
                limit=limit,
                offset=offset,
                with_payload=with_payload,
                with_vectors=vectors,
                scroll_filter=condition,
            )
        return list(records), offset

    def _facet(self, key: str, condition: Any = None) -> list[tuple[Any, int]]:
        with self._errors("read"):
            hits = self.client.facet(self.name, key=key, facet_filter=condition, limit=1_000_000, exact=True).hits
        return [(h.value, h.count) for h in hits]

    def _set_payload(self, condition: Any, payload: dict[str, Any]) -> None:
        from qdrant_client import models

        with self._errors("write to"):
            self.client.set_payload(self.name, payload, points=models.FilterSelector(filter=condition), wait=True)

    def _request(self, using: str, vector: Any, limit: int, condition: Any, exact: bool, documents: bool) -> Any:
        from qdrant_client import models

        if isinstance(vector, SparseVector):
            vector = models.SparseVector(indices=list(vector.indices), values=list(vector.values))
        return models.QueryRequest(
            query=models.NearestQuery(nearest=vector),
            using=using,
            filter=condition,
            limit=limit,
            with_payload=[HIT_FIELD] if documents else False,
            params=self._search_params(using, exact),
        )

    def _search_params(self, using: str, exact: bool) -> Any:
        """Exact search when asked; dense search with the configured HNSW breadth, over int8-quantized vectors
        rescored with the full ones."""
        from qdrant_client import models

        if exact:
            return models.SearchParams(exact=True)
        if using != DENSE:
            return None
        quantized = self.meta.quantization == "int8"
        rescore = (
            models.QuantizationSearchParams(rescore=True, oversampling=self.config.oversampling) if quantized else None
        )
        return models.SearchParams(hnsw_ef=self.config.hnsw_ef or None, quantization=rescore)

    def _query(self, requests: list[Any], keyed: bool) -> list[list[Hit]]:
        with self._errors("search"):
            results = self.client.query_batch_points(self.name, requests=requests)
        return [[hit(p.id, p.score, p.payload, keyed) for p in r.points] for r in results]

    def _retrieve(self, ids: list[str]) -> list[Any]:
        with self._errors("read"):
            return list(self.client.retrieve(self.name, ids=ids, with_payload=True, with_vectors=False))

    def _match_value(self, key: str, value: Any) -> Any:
        from qdrant_client import models

        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    def _match_any(self, key: str, values: Sequence[str]) -> Any:
        from qdrant_client import models

        return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))

    def _has_id(self, ids: Sequence[str]) -> Any:
        from qdrant_client import models

        return models.HasIdCondition(has_id=list(ids))

    def _all(self, must: list[Any], must_not: list[Any] | None = None) -> Any:
        from qdrant_client import models

        return models.Filter(must=must, must_not=must_not)
