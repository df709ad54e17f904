"""load_document: ids, hashes, metadata and error wrapping."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from connectors import SUPPORTED_EXTENSIONS, FolderSource, SourceFile, load_document
from connectors.formats import BINARY_EXTENSIONS
from connectors.table import BLOCK_CHARS
from pipeline.errors import RaglineError, UnreadableFileError
from pipeline.types import Section

pytestmark = pytest.mark.unit


def source_file(root: Path, rel: str) -> SourceFile:
    (file,) = [f for f in FolderSource(root).scan().files if f.source == rel]
    return file


def test_supported_extensions() -> None:
    documents = {".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".text", ".docx", ".eml", ".pptx", ".csv", ".tsv"}
    assert documents | {".py", ".json", ".yaml", ".sql", ".rst"} <= SUPPORTED_EXTENSIONS
    assert not SUPPORTED_EXTENSIONS & BINARY_EXTENSIONS


def test_document_fields(tmp_path: Path) -> None:
    data = b"# Guide\n\nStep one.\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "Guide.MD").write_bytes(data)
    file = source_file(tmp_path, "docs/Guide.MD")
    doc = load_document(file)
    # The one id scheme (pipeline.types.document_id): the scanned root's URI and the relative path.
    assert doc.id == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tmp_path.resolve().as_uri()}/docs/Guide.MD"))
    assert doc.source == "docs/Guide.MD"
    assert doc.content_hash == hashlib.sha256(data).hexdigest()
    assert doc.sections == (Section("Step one.", heading=("Guide",)),)
    assert dict(doc.metadata) == {
        "title": "Guide",
        "mtime": file.mtime,
        "size": len(data),
        "mime": "text/markdown",
        "ext": "md",
    }
    assert doc.title == "Guide"


def test_id_depends_only_on_source(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    first = load_document(source_file(tmp_path, "a.txt"))
    (tmp_path / "a.txt").write_text("two")
    second = load_document(source_file(tmp_path, "a.txt"))
    assert first.id == second.id
    assert first.content_hash != second.content_hash


def test_unsupported_extension_in_load_document(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_text("data")
    file = SourceFile(path=path, source="a.png", size=4, mtime=0.0)
    with pytest.raises(UnreadableFileError, match=r"unsupported file type '\.png'"):
        load_document(file)


@pytest.mark.parametrize("name", ["README", "LICENSE", "notes.xyz", "settings.json", "tool.py"])
def test_text_without_a_known_type_is_read_as_text_when_its_bytes_are_text(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("Apache License\nVersion 2.0, January 2004\n\ndef main(): return 0\n", encoding="utf-8")
    document = load_document(SourceFile(path=path, source=name, size=path.stat().st_size, mtime=0.0))
    assert "Version 2.0, January 2004" in document.text and document.metadata["mime"].startswith(
        ("text/", "application/json")
    )
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" * 50)
    with pytest.raises(UnreadableFileError, match="binary data, not text"):
        load_document(SourceFile(path=path, source=name, size=path.stat().st_size, mtime=0.0))


def test_a_csv_is_read_as_blocks_of_rows_each_naming_its_columns(tmp_path: Path) -> None:
    rows = [f"{n},Widget {n},{n * 1.5:.2f},Warehouse {'ABC'[n % 3]}" for n in range(1, 120)]
    path = tmp_path / "stock.csv"
    path.write_text(
        "id,product,price,location\n" + "\n".join(rows) + '\n120,"Gadget, large",9.99,Warehouse A\n', "utf-8"
    )
    document = load_document(SourceFile(path=path, source="stock.csv", size=path.stat().st_size, mtime=0.0))
    sections = document.sections
    lines = [line for s in sections for line in s.text.splitlines()]
    assert len(sections) > 3 and len(lines) == 120  # every row, each naming its columns
    assert all(line.startswith("id: ") and " | product: " in line and " | location: " in line for line in lines)
    assert all(len(s.text) <= BLOCK_CHARS for s in sections)
    numbers = [tuple(map(int, s.heading[0].removeprefix("rows ").split("-"))) for s in sections]
    assert numbers[0][0] == 2 and numbers[-1][1] == 121
    assert all(b[0] == a[1] + 1 for a, b in zip(numbers, numbers[1:], strict=False))
    assert (
        "id: 120 | product: Gadget, large | price: 9.99 | location: Warehouse A" in sections[-1].text
    )  # a quoted comma
    assert document.metadata["mime"] == "text/csv" and document.metadata["ext"] == "csv"


def test_missing_file_in_load_document(tmp_path: Path) -> None:
    file = SourceFile(path=tmp_path / "gone.txt", source="gone.txt", size=1, mtime=0.0)
    with pytest.raises(UnreadableFileError, match="cannot read the file: No such file"):
        load_document(file)


def test_parser_exceptions_are_wrapped(tmp_path: Path) -> None:
    (tmp_path / "slides.pptx").write_bytes(b"definitely not a zip archive")
    with pytest.raises(UnreadableFileError) as info:
        load_document(source_file(tmp_path, "slides.pptx"))
    assert str(info.value).startswith("cannot parse (")
    assert isinstance(info.value, RaglineError)
    assert info.value.__cause__ is not None


def test_sections_without_text_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Empty\n\n## Also empty\n\n# Full\n\n  text  \n")
    doc = load_document(source_file(tmp_path, "a.md"))
    assert doc.sections == (Section("text", heading=("Full",)),)


def test_only_headings_means_no_text(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Only a heading\n")
    with pytest.raises(UnreadableFileError, match="^no text content$"):
        load_document(source_file(tmp_path, "a.md"))
