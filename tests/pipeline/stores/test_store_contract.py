"""One contract, three backends: the embedded Qdrant Edge store, qdrant-client's local mode
(``url = ":memory:"``) and a real Qdrant server in a container (skipped without Docker).

Small hand-made 4-dimensional vectors and real BM25 vectors; no model.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import BM25Config, QdrantConfig
from pipeline.errors import ConfigError, IndexUnavailableError, ModelMismatchError, RaglineError
from pipeline.filters import SearchFilter
from pipeline.stages import bm25
from pipeline.stages.chunking import chunk_id
from pipeline.stores.base import CHUNK_IDS, Hit, IndexMeta, Store
from pipeline.stores.edge import EdgeStore
from pipeline.stores.server import ServerStore
from pipeline.types import Chunk, document_key

pytestmark = pytest.mark.integration

QDRANT_IMAGE = "qdrant/qdrant:v1.18.1"  # the tag docker-compose.yml runs
META = IndexMeta(model="hand-made", dimension=4, k1=1.2, b=0.75, tokenizer=bm25.TOKENIZER_VERSION)
ROOT = "file:///corpus"


# -- the corpus -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Doc:
    id: str
    source: str
    content_hash: str
    chunks: tuple[tuple[str, str, tuple[float, ...], dict[str, Any]], ...]
    """(name, text, dense vector, chunk fields: page/heading/metadata)"""


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chunk/{name}"))


DOCS = (
    Doc(
        "doc-setup",
        "guides/setup.md",
        "h-setup-1",
        (
            (
                "setup-1",
                "Install the espresso machine and fill the water tank.",
                (1.0, 0.0, 0.0, 0.0),
                {"heading": ("Setup", "Install"), "metadata": {"ext": "md", "lang": "en"}},
            ),
            (
                "setup-2",
                "Descale the boiler every eight weeks with citric acid.",
                (0.0, 1.0, 0.0, 0.0),
                {"heading": ("Setup", "Care"), "metadata": {"ext": "md", "lang": "en"}},
            ),
        ),
    ),
    Doc(
        "doc-faq",
        "guides/faq.md",
        "h-faq-1",
        (
            (
                "faq-1",
                "Descale warnings blink when the boiler needs attention soon.",
                (0.6, 0.8, 0.0, 0.0),
                {"metadata": {"ext": "md", "lang": "de"}},
            ),
        ),
    ),
    Doc(
        "doc-legacy",
        "guides-old/legacy.md",
        "h-legacy-1",
        (
            (
                "legacy-1",
                "Legacy descale instructions for older boilers and kettles.",
                (0.0, 0.9, 0.1, 0.0),
                {"metadata": {"ext": "md", "lang": "en"}},
            ),
        ),
    ),
    Doc(
        "doc-manual",
        "manual.pdf",
        "h-manual-1",
        (
            (
                "manual-1",
                "Grinder burr cleaning, once a month.",
                (0.0, 0.0, 1.0, 0.0),
                {"page_start": 1, "page_end": 1, "metadata": {"ext": "pdf", "lang": "en", "title": "Manual"}},
            ),
            (
                "manual-2",
                "Descale the boiler: citric acid dissolves limescale quickly and very safely.",
                (0.0, 0.7, 0.0, 0.7),
                {"page_start": 2, "page_end": 3, "metadata": {"ext": "pdf", "lang": "en", "title": "Manual"}},
            ),
        ),
    ),
)
ALL = {name for doc in DOCS for name, *_ in doc.chunks}
SOURCE_OF = {name: doc.source for doc in DOCS for name, *_ in doc.chunks}
NAME_OF = {_id(name): name for name in ALL}


def _chunks(doc: Doc, suffix: str = "") -> list[Chunk]:
    out = []
    offset = 0
    for ordinal, (name, text, _, extra) in enumerate(doc.chunks):
        out.append(
            Chunk(
                id=_id(name + suffix),
                document_id=doc.id,
                source=doc.source,
                text=text,
                ordinal=ordinal,
                start=offset,
                end=offset + len(text),
                page_start=extra.get("page_start"),
                page_end=extra.get("page_end"),
                heading=extra.get("heading", ()),
                metadata=extra.get("metadata", {}),
            )
        )
        offset += len(text) + 2
    return out


def write(
    store: Store,
    doc: Doc,
    *,
    suffix: str = "",
    content_hash: str | None = None,
    only: int | None = None,
    readers: tuple[str, ...] | None = None,
    embedded: bool = True,
) -> None:
    """Upsert ``doc`` as sync does: BM25 term weights, the document's state fields in every payload (not
    ``embedded``: as sync first writes it, for BM25 only)."""
    chunks = _chunks(doc, suffix)
    tokens = [bm25.tokenize(c.text) for c in chunks]
    dense = np.array([vec for _, _, vec, _ in doc.chunks], dtype=np.float32)
    sparse = [bm25.document_vector(t, avg_len=8.0, config=BM25Config()) for t in tokens]
    extra = [
        {
            "content_hash": content_hash or doc.content_hash,
            "chunk_count": len(chunks),
            "n_tokens": len(t),
            "root": ROOT,
            "mtime": 1.0,
            **({} if readers is None else {"access": list(readers)}),
        }
        for t in tokens
    ]
    n = len(chunks) if only is None else only
    store.upsert(chunks[:n], dense[:n] if embedded else None, sparse[:n], extra[:n])


def fill(store: Store) -> Store:
    for doc in DOCS:
        write(store, doc)
    store.flush()
    return store


def names(hits: list[Hit]) -> list[str]:
    return [NAME_OF[h.id] for h in hits]


def tiers(hits: list[Hit]) -> list[set[str]]:
    """The ranking with ties grouped: equal scores may come back in either order."""
    out: list[tuple[float, set[str]]] = []
    for h in hits:
        if out and abs(out[-1][0] - h.score) <= 1e-5 * max(1.0, abs(h.score)):
            out[-1][1].add(h.id)
        else:
            out.append((h.score, {h.id}))
    return [ids for _, ids in out]


# -- backends -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qdrant_url() -> Iterator[str]:
    """A real Qdrant server, one container for the module; skipped when no Docker daemon answers."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach a daemon means: no Docker here
        pytest.skip(f"docker backend needs a Docker daemon ({type(exc).__name__}: {exc})")
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(QDRANT_IMAGE) as container:
        host = container.get_container_host_ip()
        yield f"http://{host}:{container.get_exposed_port(6333)}"


@dataclass
class StoreFactory:
    """Opens one index of one backend, as often as a test asks (a reopen sees the same data)."""

    backend: str
    open_store: Callable[[IndexMeta | None], Store]
    opened: list[Store] = field(default_factory=list)

    def __call__(self, meta: IndexMeta | None = META) -> Store:
        store = self.open_store(meta)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in reversed(self.opened):
            store.close()


@pytest.fixture(params=["edge", "memory", "docker"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    backend = request.param
    cleanup: list[Callable[[], None]] = []
    if backend == "edge":
        folder = tmp_path / "index"

        def open_edge(meta: IndexMeta | None) -> Store:
            return EdgeStore.open(folder, meta)

        factory = StoreFactory(backend, open_edge)
    elif backend == "memory":
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:")  # shared by every open in this test, as one server would be
        config = QdrantConfig(url=":memory:", collection="contract")
        cleanup.append(client.close)

        def open_memory(meta: IndexMeta | None) -> Store:
            return ServerStore.open(config, meta, client=client)

        factory = StoreFactory(backend, open_memory)
    else:
        url = request.getfixturevalue("qdrant_url")
        config = QdrantConfig(url=url, collection=f"contract-{uuid.uuid4().hex[:12]}")

        def open_docker(meta: IndexMeta | None) -> Store:
            return ServerStore.open(config, meta)

        factory = StoreFactory(backend, open_docker)

        def drop() -> None:
            from qdrant_client import QdrantClient

            client = QdrantClient(url=url, check_compatibility=False)
            client.delete_collection(config.collection)
            client.close()

        cleanup.append(drop)
    yield factory
    factory.close_all()
    for step in cleanup:
        step()


# -- writes ---------------------------------------------------------------------------------
def test_upsert_and_count(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert store.count() == 0 and store.documents() == {} and store.sources() == []
    fill(store)
    assert store.count() == len(ALL) == 6
    write(store, DOCS[0])  # the same ids again: overwritten, not added
    assert store.count() == 6


def test_upsert_checks_the_dense_shape(store_factory: StoreFactory) -> None:
    store = store_factory()
    chunks = _chunks(DOCS[0])
    sparse = [bm25.SparseVector((), ())] * len(chunks)
    with pytest.raises(RaglineError, match=r"shape \(2, 3\), expected \(2, 4\)"):
        store.upsert(chunks, np.zeros((2, 3), dtype=np.float32), sparse, [{}] * len(chunks))
    assert store.count() == 0


def test_rewrite_then_delete_stale_points_replaces_a_document(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    setup = DOCS[0]
    # A changed file: new chunks (new ids) are written first, then the old ones are dropped.
    write(store, setup, suffix="-v2", content_hash="h-setup-2")
    mixed = store.documents()["doc-setup"]
    assert mixed.content_hashes == {"h-setup-1", "h-setup-2"} and mixed.points == 4 and not mixed.complete
    new_ids = [c.id for c in _chunks(setup, "-v2")]
    store.delete_document("doc-setup", keep=new_ids)
    state = store.documents()["doc-setup"]
    assert state.content_hash == "h-setup-2" and state.points == 2 and state.complete
    assert store.count() == 6
    old_ids = [c.id for c in _chunks(setup)]
    assert store.chunks(old_ids) == {}
    assert set(store.chunks(new_ids)) == set(new_ids)
    # The other documents are untouched.
    assert store.documents()["doc-manual"].points == 2


def test_points_written_for_bm25_first_get_their_dense_vectors_later(store_factory: StoreFactory) -> None:
    store = store_factory()
    for doc in DOCS[:3]:
        write(store, doc)
    manual = DOCS[3]
    write(store, manual, embedded=False)
    ids = [c.id for c in _chunks(manual)]
    assert store.count() == 6 and store.unembedded() == 2
    assert store.documents()["doc-manual"].complete  # all its points are there: BM25 finds it whole
    dense, sparse = store.search(np.array([0.0, 0.0, 1.0, 0.0]), bm25.query_vector("grinder burr"), 10)
    assert names(sparse) == ["manual-1"] and not {"manual-1", "manual-2"} & set(names(dense))
    waiting = store.awaiting_dense(10)
    assert sorted(c.id for c in waiting) == sorted(ids) and len(store.awaiting_dense(1)) == 1
    assert {c.id: c.text for c in waiting} == {c.id: c.text for c in _chunks(manual)}
    with pytest.raises(RaglineError, match="shape"):
        store.set_dense(ids, np.zeros((2, 3), dtype=np.float32))
    # Exported while waiting (a move mid-sync), a point keeps its mark and no dense vector.
    exported = {p.id: p for batch in store.export_points() for p in batch}
    assert exported[ids[0]].dense == [] and exported[ids[0]].payload["pending"] == "dense"

    vectors = np.array([vec for _, _, vec, _ in manual.chunks], dtype=np.float32)
    store.set_dense(ids, vectors)
    store.flush()
    assert store.unembedded() == 0 and store.awaiting_dense(10) == []
    dense, sparse = store.search(np.array([0.0, 0.0, 1.0, 0.0]), bm25.query_vector("grinder burr"), 10)
    assert names(dense)[0] == "manual-1" and dense[0].score == pytest.approx(1.0, abs=1e-5)
    assert set(names(dense)) == ALL and names(sparse) == ["manual-1"]  # the BM25 vector stayed
    assert all("pending" not in c.metadata for c in store.chunks(ids).values())
    assert store.documents()["doc-manual"].complete


def test_delete_document_removes_all_its_points(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    store.delete_document("doc-manual")
    assert "doc-manual" not in store.documents()
    assert store.count() == 4
    assert "manual.pdf" not in store.sources()
    dense, sparse = store.search(np.array([0.0, 0.0, 1.0, 0.0]), bm25.query_vector("grinder burr"), 10)
    assert not {"manual-1", "manual-2"} & set(names(dense) + names(sparse))
    store.delete_document("no-such-document")  # deleting nothing is fine
    assert store.count() == 4


def test_document_states(store_factory: StoreFactory) -> None:
    store = store_factory()
    for doc in DOCS[:3]:
        write(store, doc)
    write(store, DOCS[3], only=1)  # a crash after the first of two chunks
    states = store.documents()
    assert set(states) == {"doc-setup", "doc-faq", "doc-legacy", "doc-manual"}
    setup = states["doc-setup"]
    assert (setup.source, setup.root, setup.content_hash, setup.chunk_count, setup.points) == (
        "guides/setup.md",
        ROOT,
        "h-setup-1",
        2,
        2,
    )
    assert setup.complete
    assert setup.n_tokens == sum(len(bm25.tokenize(c.text)) for c in _chunks(DOCS[0]))
    manual = states["doc-manual"]
    assert manual.chunk_count == 2 and manual.points == 1 and not manual.complete


# -- reads ----------------------------------------------------------------------------------
def test_sources(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    assert sorted(store.sources()) == ["guides-old/legacy.md", "guides/faq.md", "guides/setup.md", "manual.pdf"]


def test_chunks_round_trip(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    wanted = {c.id: c for doc in DOCS for c in _chunks(doc)}
    got = store.chunks([*wanted, _id("never-written")])
    assert set(got) == set(wanted)
    for point_id, original in wanted.items():
        chunk = got[point_id]
        assert (chunk.id, chunk.document_id, chunk.source, chunk.text, chunk.ordinal, chunk.start, chunk.end) == (
            original.id,
            original.document_id,
            original.source,
            original.text,
            original.ordinal,
            original.start,
            original.end,
        )
        assert (chunk.page_start, chunk.page_end, chunk.heading) == (
            original.page_start,
            original.page_end,
            original.heading,
        )
        assert {k: chunk.metadata.get(k) for k in original.metadata} == dict(original.metadata)
        assert chunk.metadata["content_hash"] and chunk.metadata["root"] == ROOT
    manual_2 = got[_id("manual-2")]
    assert manual_2.page == "2-3" and manual_2.citation == "manual.pdf, p. 2-3"
    assert got[_id("setup-1")].heading == ("Setup", "Install")
    assert store.chunks([]) == {}


def test_hybrid_search_unfiltered(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    dense, sparse = store.search(np.array([0.0, 0.0, 1.0, 0.0]), bm25.query_vector("grinder burr"), 10)
    assert names(dense)[0] == "manual-1" and names(sparse) == ["manual-1"]
    assert set(names(dense)) == ALL  # every point has a dense vector
    assert dense[0].score == pytest.approx(1.0, abs=1e-5)

    dense, sparse = store.search(np.array([0.0, 1.0, 0.0, 0.0]), bm25.query_vector("descale"), 10)
    assert names(dense)[:2] == ["setup-2", "legacy-1"]
    assert set(names(sparse)) == {"setup-2", "faq-1", "legacy-1", "manual-2"}
    assert all(h.score > 0 for h in sparse)
    assert [h.score for h in dense] == sorted((h.score for h in dense), reverse=True)
    # Asked to, each candidate names its document (document-aware ranking); by default none pays for it.
    documents = {c.id: c.document_id for c in store.chunks([h.id for h in dense]).values()}
    assert all(h.document == "" for h in (*dense, *sparse))
    dense, sparse = store.search(np.array([0.0, 1.0, 0.0, 0.0]), bm25.query_vector("descale"), 10, documents=True)
    assert all(h.document == document_key(documents[h.id]) for h in (*dense, *sparse))
    assert len(set(documents.values())) > 1

    only_dense = store.search(np.array([0.0, 1.0, 0.0, 0.0]), None, 3)
    assert names(only_dense[0]) == ["setup-2", "legacy-1", "faq-1"] and only_dense[1] == []
    only_sparse = store.search(None, bm25.query_vector("grinder"), 3)
    assert only_sparse[0] == [] and names(only_sparse[1]) == ["manual-1"]
    assert store.search(None, bm25.SparseVector((), ()), 3) == ([], [])


def test_candidates_of_a_keyed_index_name_their_document_from_the_id(store_factory: StoreFactory) -> None:
    """An index created with CHUNK_IDS reads no payload for the document key: it is the id's first half. So
    the chunk ids there must be sync's, and the key must be the same one an older index reads from payloads."""
    store = store_factory(replace(META, chunk_ids=CHUNK_IDS))
    for doc in DOCS:
        chunks = [replace(c, id=chunk_id(doc.id, c.ordinal, c.text)) for c in _chunks(doc)]
        sparse = [bm25.document_vector(bm25.tokenize(c.text), avg_len=8.0, config=BM25Config()) for c in chunks]
        dense = np.array([vec for _, _, vec, _ in doc.chunks], dtype=np.float32)
        store.upsert(chunks, dense, sparse, [{"root": ROOT} for _ in chunks])
    store.flush()
    dense_hits, sparse_hits = store.search(
        np.array([0.0, 1.0, 0.0, 0.0]), bm25.query_vector("descale"), 10, documents=True
    )
    documents = {c.id: c.document_id for c in store.chunks([h.id for h in (*dense_hits, *sparse_hits)]).values()}
    assert len(set(documents.values())) > 1 and len(sparse_hits) > 1
    assert all(h.document == document_key(documents[h.id]) for h in (*dense_hits, *sparse_hits))
    plain = store.search(np.array([0.0, 1.0, 0.0, 0.0]), bm25.query_vector("descale"), 10)
    assert all(h.document == "" for h in (*plain[0], *plain[1]))


DESCALE = (np.array([0.0, 1.0, 0.0, 0.0]), "descale boiler")


@pytest.mark.parametrize(
    ("where", "allowed", "dense_first", "sparse_expected"),
    [
        # A path prefix: the folder and what is under it, never a sibling that shares the prefix.
        (SearchFilter(path="guides"), {"setup-1", "setup-2", "faq-1"}, "setup-2", {"setup-2", "faq-1"}),
        (SearchFilter(path="/guides/"), {"setup-1", "setup-2", "faq-1"}, "setup-2", {"setup-2", "faq-1"}),
        (SearchFilter(path="guides-old"), {"legacy-1"}, "legacy-1", {"legacy-1"}),
        (SearchFilter(path="manual.pdf"), {"manual-1", "manual-2"}, "manual-2", {"manual-2"}),
        # A glob, with the ingest rules: * stays in one folder, **/ spans folders.
        (SearchFilter(path="guides/*.md"), {"setup-1", "setup-2", "faq-1"}, "setup-2", {"setup-2", "faq-1"}),
        (SearchFilter(path="**/legacy.md"), {"legacy-1"}, "legacy-1", {"legacy-1"}),
        (SearchFilter(file_types=("pdf",)), {"manual-1", "manual-2"}, "manual-2", {"manual-2"}),
        (
            SearchFilter(file_types=("md", "txt")),
            {"setup-1", "setup-2", "faq-1", "legacy-1"},
            "setup-2",
            {"setup-2", "faq-1", "legacy-1"},
        ),
        (SearchFilter(fields=(("lang", "de"),)), {"faq-1"}, "faq-1", {"faq-1"}),
        (SearchFilter(fields=(("ordinal", 1),)), {"setup-2", "manual-2"}, "setup-2", {"setup-2", "manual-2"}),
        (
            SearchFilter(path="guides", file_types=("md",), fields=(("lang", "en"),)),
            {"setup-1", "setup-2"},
            "setup-2",
            {"setup-2"},
        ),
    ],
)
def test_filters_apply_to_both_lists(
    store_factory: StoreFactory, where: SearchFilter, allowed: set[str], dense_first: str, sparse_expected: set[str]
) -> None:
    store = fill(store_factory())
    dense, sparse = store.search(DESCALE[0], bm25.query_vector(DESCALE[1]), 10, where)
    assert set(names(dense)) == allowed
    assert names(dense)[0] == dense_first
    assert set(names(sparse)) == sparse_expected
    assert {SOURCE_OF[n] for n in names(dense) + names(sparse)} <= {SOURCE_OF[n] for n in allowed}


@pytest.mark.parametrize(
    "where",
    [SearchFilter(path="nowhere/**"), SearchFilter(path="guide"), SearchFilter(file_types=("docx",))],
)
def test_filters_that_match_nothing(store_factory: StoreFactory, where: SearchFilter) -> None:
    store = fill(store_factory())
    assert store.search(DESCALE[0], bm25.query_vector(DESCALE[1]), 10, where) == ([], [])


# -- access control -------------------------------------------------------------------------
READERS = {
    "doc-setup": ("everyone",),
    "doc-faq": ("group:hr",),
    "doc-legacy": ("user:alice",),
    "doc-manual": (),  # admins alone
}


def fill_with_readers(store: Store) -> Store:
    for doc in DOCS:
        write(store, doc, readers=READERS[doc.id])
    store.flush()
    return store


def readable(principals: set[str]) -> set[str]:
    return {n for doc in DOCS if set(READERS[doc.id]) & principals for n, *_ in doc.chunks}


@pytest.mark.parametrize(
    "principals",
    [{"everyone"}, {"everyone", "group:hr"}, {"everyone", "user:alice", "group:hr"}, {"user:alice"}, set()],
)
def test_readers_are_matched_inside_both_lists(store_factory: StoreFactory, principals: set[str]) -> None:
    store = fill_with_readers(store_factory())
    visible = readable(principals)
    dense, sparse = store.search(DESCALE[0], bm25.query_vector(DESCALE[1]), 100, readers=sorted(principals))
    assert set(names(dense)) == visible  # every readable chunk is a dense candidate, nothing else is
    assert set(names(sparse)) <= visible and set(names(sparse)) == {
        n for n in visible if n in {"setup-2", "faq-1", "legacy-1", "manual-2"}
    }
    ids = [_id(n) for n in ALL]
    assert set(map(NAME_OF.get, store.chunks(ids, sorted(principals)))) == visible
    assert store.count(sorted(principals)) == len(visible)
    assert {SOURCE_OF[n] for n in visible} == {s.source for s in store.documents(sorted(principals)).values()}
    assert store.file_types(sorted(principals)) == sorted({SOURCE_OF[n].rsplit(".", 1)[1] for n in visible})


def test_a_filter_cannot_widen_what_readers_may_read(store_factory: StoreFactory) -> None:
    store = fill_with_readers(store_factory())
    wheres = [
        SearchFilter(path="manual.pdf"),
        SearchFilter(path="**/*"),
        SearchFilter(file_types=("pdf",)),
        SearchFilter(fields=(("access", "group:hr"),)),
        SearchFilter(fields=(("document_id", "doc-faq"),)),
        SearchFilter(fields=(("title", "Manual"),)),
    ]
    for where in wheres:
        dense, sparse = store.search(DESCALE[0], bm25.query_vector(DESCALE[1]), 100, where, readers=["everyone"])
        assert set(names(dense) + names(sparse)) <= readable({"everyone"}), where


def test_admins_and_points_without_readers(store_factory: StoreFactory) -> None:
    """No readers (an admin, or access control off) sees every point; a point that names none is seen by no one
    else (deny by default)."""
    store = store_factory()
    write(store, DOCS[0], readers=("everyone",))
    write(store, DOCS[3])  # written before access control was on
    store.flush()
    dense, _ = store.search(DESCALE[0], None, 100)
    assert set(names(dense)) == {"setup-1", "setup-2", "manual-1", "manual-2"}
    dense, _ = store.search(DESCALE[0], None, 100, readers=["everyone", "user:alice"])
    assert set(names(dense)) == {"setup-1", "setup-2"}
    assert store.documents()["doc-manual"].readers is None and store.documents()["doc-setup"].readers == ("everyone",)


def test_set_readers_changes_who_reads_a_document_and_nothing_else(store_factory: StoreFactory) -> None:
    store = fill_with_readers(store_factory())
    before = {p.id: p for batch in store.export_points() for p in batch}
    store.set_readers("doc-faq", ["user:bob", "group:eng"])
    store.flush()
    after = {p.id: p for batch in store.export_points() for p in batch}
    assert after.keys() == before.keys()
    for point_id, point in after.items():
        old = before[point_id]
        assert (point.dense, point.sparse) == (old.dense, old.sparse)
        changed = point.payload["document_id"] == "doc-faq"
        expected = {**old.payload, "access": ["group:eng", "user:bob"]} if changed else old.payload
        assert point.payload == expected
    assert store.documents()["doc-faq"].readers == ("group:eng", "user:bob")
    dense, _ = store.search(DESCALE[0], None, 100, readers=["everyone", "group:hr"])
    assert "faq-1" not in names(dense)
    dense, _ = store.search(DESCALE[0], None, 100, readers=["everyone", "user:bob"])
    assert "faq-1" in names(dense)


# -- lifecycle ------------------------------------------------------------------------------
def test_reopen_keeps_points_and_checks_the_model(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    store.save_config({"retrieval": {"top_k": 7}, "sources": {}})
    store.close()
    reopened = store_factory(None)  # no meta: open what is there
    assert reopened.meta == META
    assert reopened.count() == 6
    assert reopened.saved_config() == {"retrieval": {"top_k": 7}, "sources": {}}
    reopened.save_config({"retrieval": {"top_k": 8}})
    assert reopened.saved_config() == {"retrieval": {"top_k": 8}}  # replaced whole, not merged
    reopened.close()
    with pytest.raises(ModelMismatchError, match="hand-made"):
        store_factory(IndexMeta("another-model", 4, 1.2, 0.75, META.tokenizer))
    with pytest.raises(ModelMismatchError, match="dimension 4"):
        store_factory(IndexMeta("hand-made", 8, 1.2, 0.75, META.tokenizer))
    assert store_factory(META).count() == 6  # the same model opens fine


def test_open_without_meta_needs_an_existing_index(store_factory: StoreFactory) -> None:
    with pytest.raises(IndexUnavailableError, match="ragline ingest"):
        store_factory(None)


def test_no_saved_config_until_saved(store_factory: StoreFactory) -> None:
    assert store_factory().saved_config() is None


def test_tuning_is_kept_apart_from_the_config_and_can_be_forgotten(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    assert store.tuning() is None
    store.save_tuning({"settings": {"dense_weight": 0.5}, "gain": 0.02})
    store.save_config({"retrieval": {"top_k": 7}})  # every sync saves the config: the tuning survives it
    store.close()
    reopened = store_factory(None)
    assert reopened.tuning() == {"settings": {"dense_weight": 0.5}, "gain": 0.02}
    assert reopened.saved_config() == {"retrieval": {"top_k": 7}}
    reopened.save_tuning(None)
    assert reopened.tuning() is None


def test_all_chunks_lists_every_chunk_once(store_factory: StoreFactory) -> None:
    store = fill(store_factory())
    listed = [c for page in store.all_chunks() for c in page]
    wanted = {c.id: c for doc in DOCS for c in _chunks(doc)}
    assert sorted(c.id for c in listed) == sorted(wanted)
    assert all(c.text == wanted[c.id].text and c.document_id == wanted[c.id].document_id for c in listed)
    # With the document's metadata and sync state, as written: tune recomputes a chunk's terms from them.
    assert all(c.metadata["n_tokens"] == len(bm25.tokenize(c.text)) and c.metadata["root"] == ROOT for c in listed)


def test_export_import_round_trip(store_factory: StoreFactory, tmp_path: Path) -> None:
    """Points exported from an embedded index and imported here answer every query as the original does."""
    with EdgeStore.open(tmp_path / "source", META) as source:
        fill(source)
        write(source, DOCS[0], suffix="-v2", content_hash="h-setup-2", only=1)  # an incomplete document too
        exported = [p for batch in source.export_points(batch=3) for p in batch]
        assert len(exported) == source.count() == 7
        assert max(len(batch) for batch in source.export_points(batch=3)) == 3
        target = store_factory()
        target.import_points(exported[:4])
        target.import_points(exported[4:])
        assert target.count() == 7
        assert target.documents() == source.documents()
        assert sorted(target.sources()) == sorted(source.sources())
        again = sorted((p for batch in target.export_points() for p in batch), key=lambda p: p.id)
        assert [(p.id, p.payload, p.sparse) for p in again] == [
            (p.id, p.payload, p.sparse) for p in sorted(exported, key=lambda p: p.id)
        ]
        queries = [
            (np.array([0.0, 1.0, 0.0, 0.0]), "descale the boiler", None),
            (np.array([0.3, 0.35, 0.25, 0.1]), "citric acid water tank", None),
            (np.array([0.0, 0.2, 0.9, 0.0]), "grinder descale", SearchFilter(path="guides")),
            (np.array([0.5, 0.5, 0.0, 0.0]), "boiler", SearchFilter(file_types=("pdf",))),
        ]
        for dense_q, text, where in queries:
            want = source.search(dense_q, bm25.query_vector(text), 10, where)
            got = target.search(dense_q, bm25.query_vector(text), 10, where)
            assert want[0] and want[1]
            for want_hits, got_hits in zip(want, got):
                assert [h.score for h in got_hits] == pytest.approx([h.score for h in want_hits], rel=1e-4, abs=1e-6)
                assert tiers(got_hits) == tiers(want_hits)


def test_import_checks_the_dimension(store_factory: StoreFactory) -> None:
    from pipeline.stores.base import StoredPoint

    store = store_factory()
    point = StoredPoint(_id("x"), [1.0, 0.0], bm25.SparseVector((), ()), {"document_id": "d"})
    with pytest.raises(RaglineError, match="dimension 2"):
        store.import_points([point])


# -- server-only behaviour ------------------------------------------------------------------
@pytest.mark.parametrize("prefer_grpc", [False, True])
def test_unreachable_server_is_one_line(prefer_grpc: bool) -> None:
    config = QdrantConfig(url="http://127.0.0.1:9", prefer_grpc=prefer_grpc, grpc_port=9, timeout_s=5)
    for attempt in (lambda: ServerStore.exists(config), lambda: ServerStore.open(config, META)):
        with pytest.raises(IndexUnavailableError) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message and message.startswith("Qdrant at http://127.0.0.1:9: cannot")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9", "not a url", "http://127.0.0.1:port"])
def test_a_malformed_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="is not a Qdrant URL"):
        ServerStore.exists(QdrantConfig(url=url))


def test_memory_url_starts_empty_each_time() -> None:
    config = QdrantConfig(url=":memory:")
    assert ServerStore.exists(config) is False
    with ServerStore.open(config, META) as store:
        fill(store)
        assert store.kind == "qdrant-server" and store.location == ":memory: collection ragline"
        assert store.count() == 6
    with pytest.raises(IndexUnavailableError, match="no collection 'ragline' at :memory:"):
        ServerStore.open(config)


def test_a_foreign_collection_is_refused() -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("theirs", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    config = QdrantConfig(url=":memory:", collection="theirs")
    assert ServerStore.exists(config, client=client)
    with pytest.raises(IndexUnavailableError, match="not created by ragline"):
        ServerStore.open(config, META, client=client)
    client.close()
