"""``ragline verify``: each kind of damage, done on purpose to a real index, is found and named; ``--repair``
re-syncs exactly what differs and leaves the rest of the index as it was."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.app import Ragline
from pipeline.faces.cli import main
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.stores.base import StoredPoint
from pipeline.types import SparseVector
from tests.conftest import DEMO_DOCS, make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def indexed(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> tuple[Ragline, Path]:
    docs = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, docs)
    (docs / "notes").mkdir()
    for n in range(4):
        (docs / "notes" / f"note-{n}.md").write_text(
            f"# Note {n}\n\nThe kettle number {n} descales every {n + 2} weeks."
        )
    app = make_app(
        tmp_path / "index", embedder, access={"enabled": True, "rules": [{"path": "**", "allow": ["everyone"]}]}
    )
    app.ingest(docs)
    return app, docs


def kinds(app: Ragline) -> dict[str, str]:
    """What verify found: source -> kind (one per source in these tests)."""
    return {d.source: d.kind for d in app.verify().differences}


def points_of(app: Ragline, source: str) -> list[StoredPoint]:
    return sorted(
        (p for batch in app.store().export_points() for p in batch if p.payload["source"] == source),
        key=lambda p: p.payload["ordinal"],
    )


def test_a_clean_index_verifies(indexed: tuple[Ragline, Path]) -> None:
    app, _ = indexed
    report = app.verify()
    assert report.ok and report.differences == ()
    assert (report.roots, report.files, report.documents) == (1, 9, 9) and report.points == app.store().count()


def test_every_kind_of_damage_is_found_and_repaired(indexed: tuple[Ragline, Path]) -> None:
    import qdrant_edge as q

    app, docs = indexed
    store = app.store()
    untouched = {p.id: (p.dense, p.sparse) for p in points_of(app, "employee-handbook.md")}
    # on disk: an edited file, a deleted one, a new one, and one sync could not index either
    (docs / "faq.txt").write_text((docs / "faq.txt").read_text() + "\nQ: A new question?\nA: A new answer.\n")
    (docs / "notes" / "note-3.md").unlink()
    (docs / "notes" / "note-4.md").write_text("# Note 4\n\nA note written after the last sync.")
    (docs / "empty.txt").write_text("   \n")
    # in the index: a lost point, a lost dense vector (a cosine index keeps only unit vectors), drifted BM25 weights, a point whose id is not its
    # text's, stale readers
    manual = points_of(app, "aurora-2-manual.pdf")
    store._delete(store._all([store._has_id([manual[1].id])]))  # type: ignore[attr-defined]
    first = points_of(app, "release-notes.html")[0]
    store._shard.update(q.UpdateOperation.delete_vectors([first.id], ["dense"]))  # type: ignore[attr-defined]
    note = points_of(app, "notes/note-0.md")[0]
    drifted = SparseVector(note.sparse.indices, tuple(v * 0.9 for v in note.sparse.values))
    store.import_points([dataclasses.replace(note, sparse=drifted)])
    forged = points_of(app, "notes/note-1.md")[0]
    store.import_points([dataclasses.replace(forged, payload={**forged.payload, "text": "Something else entirely."})])
    store.set_readers(points_of(app, "notes/note-2.md")[0].payload["document_id"], ["group:nobody"])
    store.flush()

    found = kinds(app)
    assert found == {
        "faq.txt": "changed",
        "notes/note-3.md": "orphan",
        "notes/note-4.md": "missing",
        "aurora-2-manual.pdf": "incomplete",
        "release-notes.html": "dense",
        "notes/note-0.md": "bm25",
        "notes/note-1.md": "id",
        "notes/note-2.md": "access",
    }

    repaired = app.verify(repair=True)
    assert repaired.ok, repaired.differences
    assert {d.source for d in repaired.before} == set(found)
    (sync,) = repaired.repaired
    assert set(sync.updated) == {
        "faq.txt",
        "aurora-2-manual.pdf",
        "release-notes.html",
        "notes/note-0.md",
        "notes/note-1.md",
    }
    assert sync.added == ("notes/note-4.md",) and sync.removed == ("notes/note-3.md",)
    assert sync.access_updated == ("notes/note-2.md",)
    assert {p.id: (p.dense, p.sparse) for p in points_of(app, "employee-handbook.md")} == untouched
    assert app.search("A new question?", top_k=1, rerank=False).results[0].chunk.source == "faq.txt"


def test_an_unmounted_folder_is_reported_not_emptied(indexed: tuple[Ragline, Path], tmp_path: Path) -> None:
    app, docs = indexed
    docs.rename(tmp_path / "elsewhere")
    found = app.verify()
    assert [(d.kind, d.source) for d in found.differences] == [("folder", "")]
    after = app.verify(repair=True)
    assert not after.ok and after.documents == found.documents  # nothing was removed


def test_cli_verify_exit_codes_and_json(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, docs)
    index = ["--index", str(tmp_path / "index")]

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, [*index, *args], catch_exceptions=False)

    assert run("ingest", str(docs)).exit_code == 0
    ok = run("verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    (docs / "faq.txt").unlink()
    bad = run("verify")
    assert bad.exit_code == 1 and "orphan     docs/faq.txt: in the index, no such file" in bad.stdout
    fixed = run("verify", "--repair", "--json")
    data = json.loads(fixed.stdout)
    assert fixed.exit_code == 0 and data["ok"] and [d["kind"] for d in data["before"]] == ["orphan"]
    assert data["repaired"][0]["removed"] == 1 and data["repaired"][0]["chunks_written"] == 0


def test_an_index_inside_its_folder_is_not_taken_for_files(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, docs)
    app = make_app(docs / "index", embedder)
    app.ingest(docs)
    report = app.verify()
    assert report.ok and report.files == 5 and report.not_indexable == 0
    app.close()
