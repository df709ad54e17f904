"""Several folders in one index: labels in citations and --path, moved and emptied folders, `sources` and
`remove`, single files, against a real Qdrant Edge index and the real embedder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import EmptyFolderError, RaglineError
from pipeline.filters import parse_filter
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, make_app

pytestmark = pytest.mark.integration


def _teams(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders that each hold a notes.md (the trap: both were cited ``notes.md``)."""
    a, b = tmp_path / "teamA", tmp_path / "other" / "teamB"
    for folder, word in ((a, "ORCHID"), (b, "TULIP")):
        folder.mkdir(parents=True)
        (folder / "notes.md").write_text(f"# Notes\n\nThe launch code word is {word}.\n", encoding="utf-8")
    return a, b


def test_two_folders_are_cited_by_label_and_path_selects_one(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _teams(tmp_path)
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(a)
        assert [r.chunk.citation for r in app.search("launch code word", rerank=False).results] == ["notes.md, Notes"]
        app.ingest(b)
        found = app.search("launch code word", top_k=5, rerank=False).results
        assert sorted(r.chunk.citation for r in found) == ["teamA/notes.md, Notes", "teamB/notes.md, Notes"]
        prompt, _ = app.context("launch code word", rerank=False)
        assert {block.source for block in prompt.blocks} == {"teamA/notes.md", "teamB/notes.md"}

        def only(path: str) -> list[str]:
            where = parse_filter(app.label_path(path))
            return [r.chunk.path for r in app.search("launch code word", where=where, rerank=False).results]

        assert only("teamA/") == ["teamA/notes.md"]
        assert only("teamB/notes.md") == ["teamB/notes.md"]
        assert only("teamB/*.md") == ["teamB/notes.md"]
        assert sorted(only("notes.md")) == ["teamA/notes.md", "teamB/notes.md"]  # a path under any root
        assert only(str(b / "notes.md")) == ["teamB/notes.md"]  # absolute
        monkeypatch.chdir(b.parent)
        assert only("./teamB/notes.md") == ["teamB/notes.md"]  # relative to where the user stands
        assert only("teamC/") == []
        with pytest.raises(RaglineError, match="not in a folder the index holds"):
            only("/etc/passwd")
        # A path from an HTTP client is never looked up on the server's disk: it is a label/path or nothing.
        assert app.search("launch code word", where=parse_filter(str(b / "notes.md")), rerank=False).results == []
        assert app.search("launch", where=parse_filter("x" * 5000), rerank=False).results == []

        held = {r["label"]: r for r in app.stats()["roots"]}
        assert set(held) == {"teamA", "teamB"} and held["teamA"]["documents"] == 1
        assert held["teamB"]["folder"] == str(b.resolve()) and held["teamB"]["last_sync"]


def test_a_second_folder_with_a_taken_name_gets_its_own_label(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    first, second = tmp_path / "x" / "docs", tmp_path / "y" / "docs"
    for folder in (first, second):
        folder.mkdir(parents=True)
        (folder / "a.txt").write_text(f"Written in {folder.parent.name}.", encoding="utf-8")
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(first)
        app.ingest(second)
        app.ingest(first)  # a label, once given, stays
        assert [(r["label"], r["folder"]) for r in app.sources()] == [
            ("docs", str(first.resolve())),
            ("docs-2", str(second.resolve())),
        ]


def test_a_moved_folder_is_repointed_without_embedding(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    with make_app(tmp_path / "index", embedder) as app:
        before = app.ingest(folder)
        chunks = app.stats()["chunks"]
        moved = tmp_path / "archive" / "renamed"
        moved.parent.mkdir()
        folder.rename(moved)
        (moved / "faq.txt").write_text("Q: Is there decaf?\nA: Yes, the Swiss-water decaf.\n", encoding="utf-8")
        report = app.ingest(moved)
        assert report.moved_from == (str(folder.resolve()),)
        assert len(report.reused) == len(before.added) - 1 and "faq.txt" not in report.reused
        assert report.chunks_written < before.chunks_written / 4  # only the edited file was embedded
        assert [(r["label"], r["folder"]) for r in app.sources()] == [("docs", str(moved.resolve()))]
        stats = app.stats()
        assert stats["documents"] == len(before.added)
        assert stats["chunks"] < chunks + report.chunks_written  # the old copy is gone, not doubled
        top = app.search("steam wand cleaning", top_k=3, rerank=False).results
        assert len({r.chunk.id for r in top}) == 3
        assert all(r.chunk.metadata["root"] == moved.resolve().as_uri() for r in top)
        assert app.search("Swiss-water decaf", top_k=1, rerank=False).results[0].chunk.source == "faq.txt"
        assert not app.ingest(moved).changed  # the copies are complete documents of the new root


def test_an_emptied_folder_keeps_its_documents_unless_allowed(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "share"
    shutil.copytree(DEMO_DOCS, folder)
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(folder)
        documents = app.stats()["documents"]
        for file in folder.iterdir():
            file.unlink()  # an unmounted share: the mount point is there, empty
        with pytest.raises(EmptyFolderError, match=f"holds {documents} documents from it: nothing was removed"):
            app.ingest(folder)
        assert app.stats()["documents"] == documents
        report = app.ingest(folder, allow_empty=True)
        assert len(report.removed) == documents
        assert app.stats()["documents"] == 0 and app.sources() == []


def test_remove_a_root_a_folder_or_a_file(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = _teams(tmp_path)
    (a / "sub").mkdir()
    (a / "sub" / "more.md").write_text("# More\n\nMore notes.\n", encoding="utf-8")
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(a)
        app.ingest(b)
        with pytest.raises(RaglineError, match="names no folder the index holds"):
            app.remove("teamC")
        with pytest.raises(RaglineError, match="holds nothing under"):
            app.remove("teamA/missing.md")
        assert app.remove("teamA/sub") == ["teamA/sub/more.md"]
        assert {r["label"] for r in app.sources()} == {"teamA", "teamB"}
        monkeypatch.chdir(tmp_path)
        assert app.remove("./teamA") == ["teamA/notes.md"]
        assert [r["label"] for r in app.sources()] == ["teamB"]
        assert app.remove(str(b)) == ["teamB/notes.md"]
        assert app.stats()["documents"] == 0 and a.exists() and (b / "notes.md").exists()


def test_one_file_is_synced_into_the_folder_that_holds_it(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    with make_app(tmp_path / "index", embedder) as app:
        alone = app.ingest(folder / "faq.txt")  # a folder not indexed yet: the file's own folder
        assert alone.added == ("faq.txt",) and app.stats()["documents"] == 1
        app.ingest(folder)
        (folder / "faq.txt").write_text("Q: Opening hours?\nA: Seven to seven.\n", encoding="utf-8")
        (folder / "release-notes.html").unlink()  # a whole-folder sync would remove it; a one-file sync must not
        one = app.ingest(folder / "faq.txt")
        assert one.updated == ("faq.txt",) and not one.removed and not one.added
        assert app.stats()["documents"] == 5
        (folder / ".hidden.txt").write_text("Hidden files are never indexed.", encoding="utf-8")
        with pytest.raises(RaglineError, match="not a file ragline indexes"):
            app.ingest(folder / ".hidden.txt")
        (folder / "image.bin").write_bytes(b"\x00\x01")
        assert [s.source for s in app.ingest(folder / "image.bin").skipped] == ["image.bin"]
