"""Server mode at scale: the cluster settings reach the collection, writes go in bounded requests, and a
write that fails for a passing reason is sent again. Writes go through the real qdrant-client over HTTP to a
loopback server that answers Qdrant's upsert endpoint and fails some requests on purpose."""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from pipeline.app import Ragline
from pipeline.config import QdrantConfig, parse_config
from pipeline.errors import IndexUnavailableError
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.stores.base import IndexMeta
from pipeline.stores.schema import DENSE
from pipeline.stores.server import ServerStore
from pipeline.stores.writes import WritePolicy, batches, retried, transient
from pipeline.types import Chunk, SparseVector

REPO = Path(__file__).resolve().parents[3]
META = IndexMeta("all-MiniLM-L6-v2", 8, 1.2, 0.75, "t")


def test_batches_are_bounded_in_points_and_bytes_and_keep_order() -> None:
    sizes = [10] * 25 + [500] + [10] * 5
    got = list(batches(list(range(len(sizes))), lambda i: sizes[i], max_points=10, max_bytes=100))
    assert [i for batch in got for i in batch] == list(range(len(sizes)))
    assert all(len(b) <= 10 and (sum(sizes[i] for i in b) <= 100 or len(b) == 1) for b in got)
    assert [25] in got  # a point over the byte limit goes alone
    assert list(batches([], len, 10, 100)) == []


def test_only_passing_failures_are_retried() -> None:
    def answer(status: int) -> UnexpectedResponse:
        return UnexpectedResponse(status, "", b"{}", None)  # type: ignore[arg-type]

    assert transient(answer(503)) and transient(answer(429)) and transient(ConnectionResetError())
    assert not transient(answer(400)) and not transient(answer(401)) and not transient(ValueError("bad point"))
    waits: list[float] = []
    failures = iter([answer(503), answer(502), None])

    def send() -> None:
        failure = next(failures)
        if failure is not None:
            raise failure

    policy = WritePolicy(retries=3, backoff_s=0.5, max_backoff_s=0.8)
    assert retried(send, policy, sleep=waits.append) == 2 and waits == [0.5, 0.8]
    with pytest.raises(UnexpectedResponse):
        retried(lambda: (_ for _ in ()).throw(answer(400)), policy, sleep=waits.append)
    assert len(waits) == 2  # a bad request is not sent again


@dataclass
class FlakyQdrant:
    """What the loopback server saw: every upsert request (its point ids), and how it answered."""

    url: str = ""
    fail: set[int] = field(default_factory=set)
    """Requests (numbered from 0) answered 503; ``drop`` ones get no answer at all (the connection closes)."""
    drop: set[int] = field(default_factory=set)
    status: int = 200
    requests: list[tuple[list[str], int | None]] = field(default_factory=list)
    posts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Other writes (POST: a payload key removed), answered 200."""


@pytest.fixture
def flaky() -> Iterator[FlakyQdrant]:
    state = FlakyQdrant()

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            number = len(state.requests)
            ids = [str(p["id"]) for p in body["points"]]
            if number in state.drop:
                state.requests.append((ids, None))
                self.close_connection = True
                return
            status = 503 if number in state.fail else state.status
            state.requests.append((ids, status))
            ok = {"result": {"operation_id": number, "status": "completed"}, "status": "ok", "time": 0.0}
            reply = json.dumps(ok if status == 200 else {"status": {"error": "try again"}, "time": 0.0}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def do_POST(self) -> None:
            state.posts.append(
                (self.path.split("?")[0], json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            )
            reply = json.dumps({"result": {"operation_id": 0, "status": "completed"}, "status": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()


def rows(n: int) -> tuple[list[Chunk], np.ndarray, list[SparseVector], list[dict[str, Any]]]:
    chunks = [Chunk(f"00000000-0000-4000-8000-{i:012d}", "doc", "a.md", f"text {i}", i, 0, 6) for i in range(n)]
    dense = np.random.default_rng(0).normal(size=(n, META.dimension)).astype(np.float32)
    return chunks, dense, [SparseVector((1, 2), (0.5, 0.25))] * n, [{}] * n


def store_at(flaky: FlakyQdrant, **settings: Any) -> ServerStore:
    config = QdrantConfig(url=flaky.url, retry_backoff_s=0.01, **settings)
    return ServerStore(config, QdrantClient(url=flaky.url, timeout=10, check_compatibility=False), META)


def test_a_sync_write_goes_in_bounded_requests_and_survives_passing_failures(flaky: FlakyQdrant) -> None:
    flaky.fail, flaky.drop = {1, 2, 5}, {4}
    store = store_at(flaky, write_batch_points=100)
    chunks, dense, sparse, extra = rows(550)
    store.upsert(chunks, dense, sparse, extra)
    delivered = [ids for ids, status in flaky.requests if status == 200]
    assert [len(ids) for ids in delivered] == [100, 100, 100, 100, 100, 50]  # six requests of at most 100
    assert [i for ids in delivered for i in ids] == [c.id for c in chunks]  # every point, in order, once
    assert len(flaky.requests) == 10  # four failed attempts were sent again
    store.close()


def test_dense_vectors_added_after_bm25_go_in_bounded_retried_requests(flaky: FlakyQdrant) -> None:
    flaky.fail = {1}
    store = store_at(flaky, write_batch_points=100)
    chunks, dense, _, _ = rows(250)
    ids = [c.id for c in chunks]
    store.set_dense(ids, dense)
    delivered = [got for got, status in flaky.requests if status == 200]
    assert [len(got) for got in delivered] == [100, 100, 50] and len(flaky.requests) == 4
    assert [i for got in delivered for i in got] == ids
    # Then, once every vector is stored, the points lose their "pending" mark.
    assert flaky.posts == [("/collections/ragline/points/payload/delete", {"keys": ["pending"], "points": ids})]
    store.close()


def test_a_byte_limit_splits_requests_too(flaky: FlakyQdrant) -> None:
    store = store_at(flaky, write_batch_points=1000, write_batch_mb=0.001)  # ~1 KB: a few points a request
    chunks, dense, sparse, extra = rows(40)
    store.upsert(chunks, dense, sparse, extra)
    sizes = [len(ids) for ids, _ in flaky.requests]
    assert sum(sizes) == 40 and max(sizes) < 40 and len(sizes) > 2
    store.close()


def test_a_refused_write_fails_at_once_and_a_lasting_outage_after_the_retries(flaky: FlakyQdrant) -> None:
    flaky.status = 400
    store = store_at(flaky, write_retries=5)
    with pytest.raises(IndexUnavailableError, match="cannot write to collection 'ragline': HTTP 400") as refused:
        store.upsert(*rows(3))
    assert len(flaky.requests) == 1 and "\n" not in str(refused.value)
    flaky.requests.clear()
    flaky.status = 503
    with pytest.raises(IndexUnavailableError, match="HTTP 503"):
        store_at(flaky, write_retries=2).upsert(*rows(3))
    assert len(flaky.requests) == 3  # the first try and two retries
    store.close()


class RecordingClient(QdrantClient):
    """qdrant-client's local mode, which keeps the arguments of the collection's creation: local mode itself
    ignores the cluster settings, so what reaches the call is what a server would get."""

    created: dict[str, Any]

    def create_collection(self, **kwargs: Any) -> bool:  # type: ignore[override]
        self.created = kwargs
        return super().create_collection(**kwargs)


@pytest.mark.filterwarnings("ignore:Local mode performs exact")
def test_the_cluster_example_reaches_the_collection_creation(embedder: SentenceTransformerEmbedder) -> None:
    settings = tomllib.loads((REPO / "config" / "cluster.toml").read_text(encoding="utf-8"))
    app = Ragline(parse_config(settings))
    app.embedder = embedder
    meta = app._meta()  # what the app creates an index with: the model's, and the config's quantization
    assert meta.quantization == "int8"
    config = app.config.qdrant.model_copy(update={"url": ":memory:"})
    client = RecordingClient(location=":memory:")
    store = ServerStore.open(config, meta, client=client)
    made = client.created
    assert (made["shard_number"], made["replication_factor"], made["write_consistency_factor"]) == (6, 2, 1)
    assert made["vectors_config"][DENSE].on_disk is True and made["on_disk_payload"] is True
    assert made["sparse_vectors_config"]["bm25"].index.on_disk is True
    quantized = made["quantization_config"]
    assert isinstance(quantized, models.ScalarQuantization) and quantized.scalar.type == models.ScalarType.INT8
    assert quantized.scalar.always_ram is True
    params = store._search_params(DENSE, exact=False)
    assert params.quantization.rescore is True and params.quantization.oversampling == 2.0
    assert params.hnsw_ef == 256  # the default breadth (config.HNSW_EF)
    assert store._search_params("bm25", exact=False) is None and store._search_params(DENSE, exact=True).exact
    store.close()
    assert parse_config({}).qdrant.quantization == "none"  # the default collection is unquantized
