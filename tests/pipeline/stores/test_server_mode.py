"""Server mode end to end: the app on a Qdrant collection (qdrant-client's local mode, ``:memory:``),
moving an embedded index there with ``copy_index``, and the ``ragline migrate`` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.app import Ragline
from pipeline.config import QdrantConfig
from pipeline.faces.cli import main
from pipeline.filters import parse_filter
from pipeline.lifecycle import MigrationError, copy_index
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.retrieval import HybridRetriever
from pipeline.stores.base import IndexMeta
from pipeline.stores.edge import EdgeStore
from pipeline.stores.server import ServerStore
from tests.conftest import DEMO_DOCS, make_app
from tests.pipeline.stores.test_store_contract import qdrant_url  # noqa: F401 - a fixture, used by name

pytestmark = pytest.mark.integration

QUESTION = "How often should I descale the machine?"


def _ranking(app_or_results: Any) -> list[tuple[str, str, str | None]]:
    return [(r.chunk.id, r.chunk.source, r.chunk.page) for r in app_or_results]


def test_app_on_a_server_collection(tmp_path: Path, embedder: SentenceTransformerEmbedder, demo_app: Ragline) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, docs)
    with make_app(tmp_path / "unused-index", embedder, qdrant={"url": ":memory:"}) as app:
        report = app.ingest(docs)
        assert len(report.added) == 5 and report.chunks_written > 0 and not report.skipped
        stats = app.stats()
        assert stats["store"] == "qdrant-server" and stats["location"] == ":memory: collection ragline"
        assert stats["documents"] == 5 and stats["chunks"] == report.chunks_written
        assert not (tmp_path / "unused-index").exists()  # nothing written to the embedded index path

        response = app.search(QUESTION, top_k=5)
        top = response.results[0]
        assert (top.chunk.source, top.chunk.page) == ("aurora-2-manual.pdf", "2") and "8 weeks" in top.chunk.text
        # The same chunks, in the same order, as the embedded store gives for the same documents.
        assert [(s, p) for _, s, p in _ranking(response.results)] == [
            (s, p) for _, s, p in _ranking(demo_app.search(QUESTION, top_k=5).results)
        ]

        only_md = app.search("descale the machine", top_k=10, where=parse_filter(file_types=["md"]))
        assert only_md.results and {r.chunk.source for r in only_md.results} == {"employee-handbook.md"}
        by_prefix = app.search("temperature", top_k=10, where=parse_filter(path="faq.txt"))
        assert by_prefix.results and {r.chunk.source for r in by_prefix.results} == {"faq.txt"}

        again = app.ingest(docs)  # the collection is the record of what was synced
        assert not again.changed and again.unchanged == 5 and again.chunks_written == 0
        assert app.store().saved_config() is not None


def test_copy_index_answers_as_the_original(demo_app: Ragline, embedder: SentenceTransformerEmbedder) -> None:
    source = demo_app.store()
    config = QdrantConfig(url=":memory:", collection="copied")
    with ServerStore.open(config, source.meta) as target:
        copied = copy_index(source, target)
        assert copied == source.count() == target.count() > 0
        assert target.documents() == source.documents()
        assert target.saved_config() == source.saved_config() is not None

        retrieval = demo_app.config.retrieval
        original = HybridRetriever(source, embedder, retrieval)
        moved = HybridRetriever(target, embedder, retrieval)
        for query, where in [
            (QUESTION, None),
            ("What does error E-0x4F2 mean?", None),
            ("How many vacation days do I get?", parse_filter(path="employee-handbook.md")),
            ("temperature", parse_filter(path="*.html")),
        ]:
            want = original.retrieve(query, top_k=5, where=where).results
            got = moved.retrieve(query, top_k=5, where=where).results
            assert want and _ranking(got) == _ranking(want)
            assert [r.fused for r in got] == pytest.approx([r.fused for r in want], rel=1e-4)

        with pytest.raises(MigrationError, match="already holds"):
            copy_index(source, target)


def test_copy_index_refuses_another_model(demo_app: Ragline) -> None:
    source = demo_app.store()
    other = IndexMeta("other-model", source.meta.dimension, source.meta.k1, source.meta.b, source.meta.tokenizer)
    with ServerStore.open(QdrantConfig(url=":memory:"), other) as target:
        with pytest.raises(MigrationError, match="metadata differs"):
            copy_index(source, target)
        assert target.count() == 0


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Path:
    """An embedded index of two small files, closed again so that the CLI can open it."""
    base = tmp_path_factory.mktemp("migrate")
    docs = base / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Kettle\n\nDescale the kettle every month with vinegar.", encoding="utf-8")
    (docs / "b.txt").write_text("The grinder burrs are cleaned once a year.", encoding="utf-8")
    with make_app(base / "index", embedder) as app:
        app.ingest(docs)
    return base / "index"


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _points(index: Path) -> int:
    with EdgeStore.open(index) as store:
        return store.count()


def test_cli_migrate_to_memory(small_index: Path) -> None:
    points = _points(small_index)
    result = run("--index", str(small_index), "migrate", "--to", ":memory:", "--collection", "moved", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["points"] == points > 0 and summary["seconds"] >= 0
    assert summary["source"] == str(small_index.resolve()) and summary["target"] == ":memory: collection moved"

    plain = run("--index", str(small_index), "migrate", "--to", ":memory:")
    assert plain.exit_code == 0
    assert plain.stdout.startswith(f"copied {points} points from {small_index.resolve()} to :memory: collection")
    assert _points(small_index) == points  # the source is left as it was


def test_cli_migrate_usage_and_errors(small_index: Path, tmp_path: Path) -> None:
    missing_to = run("--index", str(small_index), "migrate")
    assert missing_to.exit_code == 2 and "Missing option '--to'" in missing_to.stderr

    bad_name = run("--index", str(small_index), "migrate", "--to", ":memory:", "--collection", "no spaces")
    assert bad_name.exit_code == 1 and bad_name.stderr.count("\n") == 1
    assert bad_name.stderr.startswith("error: --collection 'no spaces':")

    empty_url = run("--index", str(small_index), "migrate", "--to", " ")
    assert empty_url.exit_code == 1 and "--to" in empty_url.stderr

    no_index = run("--index", str(tmp_path / "none"), "migrate", "--to", ":memory:")
    assert no_index.exit_code == 1 and "no index at" in no_index.stderr and no_index.stderr.count("\n") == 1

    down = run("--index", str(small_index), "migrate", "--to", "http://127.0.0.1:9")
    assert down.exit_code == 1 and down.stderr.count("\n") == 1
    assert down.stderr.startswith("error: Qdrant at http://127.0.0.1:9: cannot")


def test_cli_migrate_refuses_a_collection_with_points(small_index: Path, qdrant_url: str) -> None:  # noqa: F811
    """Needs a real server: a ``:memory:`` collection does not outlive one command."""
    args = ("--index", str(small_index), "migrate", "--to", qdrant_url, "--collection", "refuse-me")
    first = run(*args)
    assert first.exit_code == 0, first.output
    second = run(*args)
    assert second.exit_code == 1 and second.stderr.count("\n") == 1
    assert "already holds" in second.stderr and "refuse-me" in second.stderr
