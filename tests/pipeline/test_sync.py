"""Incremental sync against a real Qdrant Edge index: the index holds exactly what the folder holds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.errors import IndexUnavailableError, RaglineError
from pipeline.filters import parse_filter
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.types import document_id
from tests.conftest import DEMO_DOCS, SAMPLE_DOCS, make_app

pytestmark = pytest.mark.integration


def _chunks_by_source(app: Ragline) -> dict[str, set[str]]:
    store = app.store()
    out: dict[str, set[str]] = {}
    for batch in store.export_points():
        for point in batch:
            out.setdefault(point.payload["source"], set()).add(point.id)
    return out


def _expected_ids(app: Ragline, folder: Path) -> dict[str, set[str]]:
    """What one clean sync of ``folder`` into a fresh index produces."""
    with make_app(folder.parent / f"clean-{folder.name}", app.embedder) as clean:
        clean.ingest(folder)
        return _chunks_by_source(clean)


def test_resync_after_edit_add_delete(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    with make_app(tmp_path / "index", embedder) as app:
        first = app.ingest(folder)
        assert len(first.added) == 5 and first.chunks_written > 0 and not first.skipped

        again = app.ingest(folder)
        assert not again.changed and again.unchanged == 5 and again.chunks_written == 0

        faq = folder / "faq.txt"
        faq.write_text(
            faq.read_text(encoding="utf-8") + "\nQ: Can I use oat milk?\nA: Yes, barista oat milk steams well.\n",
            encoding="utf-8",
        )
        (folder / "new-note.md").write_text("# Grinder\n\nThe Luna grinder has 40 grind steps.\n", encoding="utf-8")
        (folder / "release-notes.html").unlink()
        report = app.ingest(folder)
        assert report.added == ("new-note.md",)
        assert report.updated == ("faq.txt",)
        assert report.removed == ("release-notes.html",)
        assert report.unchanged == 3

        assert _chunks_by_source(app) == _expected_ids(app, folder)
        assert app.search("oat milk", top_k=1).results[0].chunk.source == "faq.txt"
        assert "release-notes.html" not in {r.chunk.source for r in app.search("firmware 2.2", top_k=10).results}


def test_interrupted_document_is_repaired(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """A document with missing points (a crash mid-write) is rewritten by the next sync."""
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(folder)
        expected = _chunks_by_source(app)
        store = app.store()
        doc = document_id(folder.resolve().as_uri(), "aurora-2-manual.pdf")
        victim = sorted(expected["aurora-2-manual.pdf"])[0]
        store.delete_document(doc, keep=[i for i in expected["aurora-2-manual.pdf"] if i != victim])
        assert not store.documents()[doc].complete
        report = app.ingest(folder)
        assert report.updated == ("aurora-2-manual.pdf",)
        assert _chunks_by_source(app) == expected


def test_unreadable_file_keeps_indexed_version(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    note = folder / "note.txt"
    note.write_text("The staff kitchen is cleaned every Friday afternoon.", encoding="utf-8")
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(folder)
        note.write_bytes(b"\x00\x01\x02binary garbage\x00" * 10)
        report = app.ingest(folder)
        assert [s.source for s in report.skipped] == ["note.txt"]
        assert report.removed == () and report.updated == ()
        assert "Friday" in app.search("when is the kitchen cleaned", top_k=1).results[0].chunk.text


@pytest.mark.slow
def test_sample_docs_pages_and_skips(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    if not SAMPLE_DOCS.is_dir():
        pytest.skip(f"{SAMPLE_DOCS} not present")
    with make_app(tmp_path / "index", embedder) as app:
        report = app.ingest(SAMPLE_DOCS)
        skipped = {s.source: s.reason for s in report.skipped}
        assert set(skipped) == {"password.pdf"} and "password" in skipped["password.pdf"]
        assert len(report.added) == len([p for p in SAMPLE_DOCS.iterdir() if p.is_file()]) - 1
        import pypdf

        reader = pypdf.PdfReader(SAMPLE_DOCS / "federal-register-2020-17221.pdf")
        pages = [" ".join(page.extract_text().split()) for page in reader.pages]
        for page_number in (3, 9, 14):
            words = pages[page_number - 1].split()
            # a phrase from the middle of the page that no other page has
            phrase = next(
                " ".join(words[i : i + 8])
                for i in range(len(words) // 2, len(words) - 8)
                if sum(" ".join(words[i : i + 8]) in p for p in pages) == 1
            )
            results = app.search(phrase, top_k=5, mode="bm25").results
            hits = [r.chunk for r in results if phrase in " ".join(r.chunk.text.split())]
            assert hits and all(h.source == "federal-register-2020-17221.pdf" for h in hits)
            for hit in hits:
                assert hit.page_start is not None and hit.page_end is not None
                assert hit.page_start <= page_number <= hit.page_end


def test_parsed_documents_sync_by_the_same_rules(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    from pipeline.types import Document, Section

    def doc(name: str, text: str) -> Document:
        return Document(document_id("mem://notes", name), name, (Section(text),), f"hash-of-{text}")

    notes = [doc("a", "Descale every eight weeks."), doc("b", "The grinder has 40 steps."), doc("c", "Gone soon.")]
    app = make_app(tmp_path / "index", embedder)
    first = app.ingest_documents(notes, "mem://notes")
    assert sorted(first.added) == ["a", "b", "c"] and first.chunks_written == 3

    second = app.ingest_documents([notes[0], doc("b", "The grinder has 30 steps.")], "mem://notes")
    assert (second.unchanged, second.updated, second.removed) == (1, ("b",), ("c",))
    hits = app.search("how many grinder steps", mode="bm25").results
    assert [h.chunk.text for h in hits if h.chunk.source == "b"] == ["The grinder has 30 steps."]
    assert app.stats()["documents"] == 2
    app.close()


def test_an_index_inside_its_folder_is_not_its_own_source(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    with make_app(folder / "index", embedder) as app:
        first = app.ingest(folder)
        assert len(first.added) == 5 and not first.skipped  # the shard's files were listed as skipped
        again = app.ingest(folder)
        assert not again.changed and not again.skipped and again.unchanged == 5
        with pytest.raises(RaglineError, match="is the index folder itself"):
            app.ingest(folder / "index")


def test_an_index_is_never_written_into_a_folder_that_holds_other_files(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "thesis.tex").write_text("\\\\section{Results}", encoding="utf-8")
    with (
        make_app(taken, embedder) as app,
        pytest.raises(IndexUnavailableError, match="is not empty and holds no ragline index"),
    ):
        app.ingest(DEMO_DOCS)
    assert sorted(p.name for p in taken.iterdir()) == ["thesis.tex"]
    (tmp_path / "empty").mkdir()
    with make_app(tmp_path / "empty", embedder) as app:
        assert len(app.ingest(DEMO_DOCS).added) == 5


def test_a_sync_that_changes_nothing_loads_no_torch(tmp_path: Path) -> None:
    """What made a no-op sync of the demo documents take 6 s: the embedder's model loaded to read its length
    limit before anything was known to have changed (now read from the query encoder's spec)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "pipeline.faces.cli", "--index", str(tmp_path / "index")]
    for args in (["ingest", str(DEMO_DOCS)], ["search", "descale", "--no-rerank"]):  # the search exports the ONNX
        assert subprocess.run([*cli, *args], env=env, capture_output=True, check=False).returncode == 0
    code = (
        "import sys; from pipeline.faces.cli import main\n"
        f"try: main([*{cli[3:]!r}, 'ingest', {str(DEMO_DOCS)!r}])\n"
        "except SystemExit: pass\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert "nothing changed" in done.stdout and done.stderr.split() == ["False", "False"], done.stderr


def test_common_text_files_are_indexed_and_a_csv_keeps_its_header(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README").write_text("Frobnicator\n\nThe frobnicator turns widgets into gadgets.\n", encoding="utf-8")
    (folder / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person.\n", "utf-8")
    (folder / "settings.json").write_text('{"retry_backoff_seconds": 17, "region": "eu-north"}\n', "utf-8")
    (folder / "tool.py").write_text("def frobnicate(widget):\n    return widget.upper()\n", encoding="utf-8")
    rows = "\n".join(f"W-{n:03d},Widget {n},{n * 3}.50,shelf {n % 7}" for n in range(1, 200))
    (folder / "prices.csv").write_text("sku,product,price_eur,location\n" + rows + "\n", encoding="utf-8")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    with make_app(tmp_path / "index", embedder) as app:
        report = app.ingest(folder)
        assert report.added == ("LICENSE", "README", "prices.csv", "settings.json", "tool.py")
        assert [(s.source, s.reason) for s in report.skipped] == [("photo.png", "unsupported file type '.png'")]
        top = app.search("price_eur of product Widget 117", top_k=1, where=parse_filter(file_types=["csv"]))
        chunk = top.results[0].chunk
        assert "sku: W-117 | product: Widget 117 | price_eur: 351.50 | location: shelf 5" in chunk.text
        first, last = map(int, chunk.heading[0].removeprefix("rows ").split("-"))
        assert first <= 118 <= last  # the row's line in the file
        assert app.search("retry backoff seconds", top_k=1).results[0].chunk.source == "settings.json"
        assert app.search("frobnicate widget function", top_k=2, rerank=False).results[0].chunk.source in {
            "tool.py",
            "README",
        }
