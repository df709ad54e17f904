"""load_document: ids, hashes, metadata and error wrapping."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from connectors import SUPPORTED_EXTENSIONS, FolderSource, SourceFile, load_document
from pipeline.errors import RaglineError, UnreadableFileError
from pipeline.types import Section

pytestmark = pytest.mark.unit


def source_file(root: Path, rel: str) -> SourceFile:
    (file,) = [f for f in FolderSource(root).scan().files if f.source == rel]
    return file


def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == frozenset(
        {".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".text", ".docx", ".eml", ".pptx"}
    )


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
    path = tmp_path / "a.xyz"
    path.write_text("data")
    file = SourceFile(path=path, source="a.xyz", size=4, mtime=0.0)
    with pytest.raises(UnreadableFileError, match=r"unsupported file type '\.xyz'"):
        load_document(file)


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
