"""An index written before the house move opens, searches and re-syncs exactly as it did.

The index is built from ``tests/fixtures/index_670f585.json`` with ``qdrant_edge`` alone (no ragline
code writes it), so a change to the payload schema, the vector names, the meta files or the document
id scheme shows here as a failure, not as a silently re-embedded or unreadable index.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import lifecycle
from pipeline.app import Ragline
from pipeline.config import parse_config
from pipeline.filters import parse_filter
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.stores import CHUNK_IDS
from pipeline.types import document_key, id_document_key
from tests.conftest import DEMO_DOCS, REPO

pytestmark = pytest.mark.integration
FIXTURE = REPO / "tests" / "fixtures" / "index_670f585.json"
ROOT = Path("/tmp/ragline-670f585/docs")
"""Where the old code ingested the demo documents: document ids hash the root's URI, so the re-sync must
find the same folder there."""


def build_legacy_index(folder: Path, fixture: dict[str, Any]) -> None:
    """The index folder as the old code left it, written with the engine's own client."""
    import qdrant_edge as q

    layout = fixture["layout"]
    assert layout["vectors"]["dense"]["distance"] == "Cosine" and layout["sparse_vectors"]["bm25"]["modifier"] == "Idf"
    folder.mkdir(parents=True)
    config = q.EdgeConfig(
        vectors={"dense": q.EdgeVectorParams(size=layout["vectors"]["dense"]["size"], distance=q.Distance.Cosine)},
        sparse_vectors={"bm25": q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
    )
    shard = q.EdgeShard.create(str(folder / "shard"), config)
    for name in layout["payload_indexes"]:
        shard.update(q.UpdateOperation.create_field_index(name, q.PayloadSchemaType.Keyword))
    points = []
    for p in fixture["points"]:
        dense = np.frombuffer(base64.b64decode(p["dense_f32_b64"]), dtype=np.float32).tolist()
        sparse = q.SparseVector(p["sparse"]["indices"], p["sparse"]["values"])
        points.append(q.Point(p["id"], {"dense": dense, "bm25": sparse}, p["payload"]))
    shard.update(q.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    shard.close()
    (folder / "meta.json").write_text(json.dumps(fixture["meta"], indent=2, sort_keys=True), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(fixture["config"], indent=2, sort_keys=True), encoding="utf-8")


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory, torch_embedder: SentenceTransformerEmbedder) -> Any:
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert {p["payload"]["root"] for p in fixture["points"]} == {ROOT.as_uri()}
    shutil.rmtree(ROOT.parent, ignore_errors=True)
    shutil.copytree(DEMO_DOCS, ROOT)
    index = tmp_path_factory.mktemp("legacy") / "index"
    build_legacy_index(index, fixture)
    # The ranking settings of the day the searches were pinned (issue 14 changed the defaults on purpose).
    before = {"dense_weight": 0.4, "document_weight": 0.0, "max_per_document": 0}
    app = Ragline(parse_config({"index": {"path": str(index)}, "rerank": {"enabled": False}, "retrieval": before}))
    app.embedder = torch_embedder
    yield app, fixture, ROOT
    app.close()
    shutil.rmtree(ROOT.parent, ignore_errors=True)


def test_the_old_index_searches_as_it_did(legacy: Any) -> None:
    app, fixture, _ = legacy
    assert len(fixture["searches"]) == 16
    for pinned in fixture["searches"]:
        where = parse_filter(None, pinned.get("file_types", ()), ())
        top_k = len(pinned["results"]) if pinned.get("file_types") else 5
        got = app.search(pinned["query"], top_k=top_k, mode=pinned["mode"], where=where).results
        assert [r.chunk.id for r in got] == [h["chunk_id"] for h in pinned["results"]], pinned["query"]
        assert [r.chunk.source for r in got] == [h["source"] for h in pinned["results"]]
        for result, hit in zip(got, pinned["results"], strict=True):
            for stage, value in hit["scores"].items():
                if value is None:
                    assert result.scores()[stage] is None
                else:
                    assert result.scores()[stage] == pytest.approx(value, abs=1e-4), (pinned["query"], stage)


def test_the_old_index_is_its_own_sync_record(legacy: Any) -> None:
    """Same document ids, hashes and chunk counts: a sync of the same folder finds nothing to do."""
    app, fixture, docs = legacy
    documents = {p["payload"]["document_id"] for p in fixture["points"]}
    assert len(documents) == len(list(docs.iterdir())) == 5
    stats = app.stats()
    assert (stats["documents"], stats["chunks"], stats["model"]) == (5, len(fixture["points"]), "all-MiniLM-L6-v2")
    assert all(state.complete for state in app.store().documents().values())
    report = app.ingest(docs)
    assert (report.unchanged, report.chunks_written, report.added, report.removed) == (5, 0, (), ())
    assert set(app.store().documents()) == documents
    assert app.store().count() == len(fixture["points"])


def test_reindex_gives_the_old_index_document_keyed_ids(
    legacy: Any, tmp_path: Path, torch_embedder: SentenceTransformerEmbedder
) -> None:
    """The old index names no document in its ids, so search reads payloads for it; a reindex rewrites every
    point under the id sync writes now, and the index then ranks as before and re-syncs with nothing to do."""
    app, fixture, docs = legacy
    copy = tmp_path / "index"
    build_legacy_index(copy, fixture)
    config = parse_config({"index": {"path": str(copy)}, "rerank": {"enabled": False}})
    with Ragline(config) as old:
        old.embedder = torch_embedder
        assert old.store().meta.chunk_ids == ""
        before = [(r.chunk.source, r.chunk.text) for r in old.search("how often to descale", top_k=5).results]
    lifecycle.reindex(config, torch_embedder)
    with Ragline(config) as upgraded:
        upgraded.embedder = torch_embedder
        store = upgraded.store()
        assert store.meta.chunk_ids == CHUNK_IDS
        points = [p for batch in store.export_points(64) for p in batch]
        assert len(points) == len(fixture["points"])
        assert {p.id for p in points}.isdisjoint(p["id"] for p in fixture["points"])
        assert all(id_document_key(p.id) == document_key(p.payload["document_id"]) for p in points)
        after = [(r.chunk.source, r.chunk.text) for r in upgraded.search("how often to descale", top_k=5).results]
        assert after == before
        report = upgraded.ingest(docs)
        assert (report.unchanged, report.chunks_written) == (5, 0)
