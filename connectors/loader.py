"""Turn a scanned file into a ``Document``: read once, hash, pick the parser, normalise.

Every failure becomes ``UnreadableFileError`` with a short reason, so a sync
can record the file as skipped and go on with the others.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import cast

from pipeline.errors import UnreadableFileError
from pipeline.types import Document, Section, document_id

from ._text import DEFAULT_OPTIONS, Parsed, ParseOptions
from .folder import SourceFile
from .formats import MIME_TYPES, parser_module

Parser = Callable[[bytes], Parsed]


def get_parser(ext: str) -> Parser:
    """The ``parse`` function for a lowercase extension such as ".pdf" (imported on first use)."""
    module_name = parser_module(ext)
    if module_name is None:
        label = f"'{ext}'" if ext else "(no extension)"
        raise UnreadableFileError(f"unsupported file type {label}")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return cast(Parser, module.parse)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def parse_bytes(data: bytes, ext: str) -> Parsed:
    """Parse raw bytes with the parser for ``ext``; every failure is an UnreadableFileError."""
    if not data.strip():
        raise UnreadableFileError("empty file")
    parser = get_parser(ext)
    try:
        return parser(data)
    except UnreadableFileError:
        raise
    except Exception as exc:  # a parser bug or a malformed file: report it, keep syncing
        raise UnreadableFileError(f"cannot parse ({_brief(exc)})") from exc


READ_ATTEMPTS = 3


def read_stable(file: SourceFile) -> bytes:
    """The file's bytes, read while nothing wrote to it (size and mtime equal before and after).

    A file rewritten during the read would otherwise be indexed torn: half old, half new.
    """
    for _ in range(READ_ATTEMPTS):
        try:
            before = os.stat(file.path)
            data = file.path.read_bytes()
            after = os.stat(file.path)
        except OSError as exc:
            raise UnreadableFileError(f"cannot read the file: {exc.strerror or exc}") from exc
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and len(data) == after.st_size:
            return data
    raise UnreadableFileError(f"the file kept changing while it was read ({READ_ATTEMPTS} attempts)")


def load_document(file: SourceFile) -> Document:
    """Read and parse one file. Raises UnreadableFileError with a reason the run report shows."""
    return document_from_bytes(file, read_stable(file))


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_from_bytes(
    file: SourceFile, data: bytes, digest: str | None = None, options: ParseOptions = DEFAULT_OPTIONS
) -> Document:
    """Parse bytes already read from ``file``; the content hash is of exactly these bytes
    (``digest``: that hash, when the caller has computed it already)."""
    return read_document(file, data, digest, options)[0]


def read_document(
    file: SourceFile, data: bytes, digest: str | None = None, options: ParseOptions = DEFAULT_OPTIONS
) -> tuple[Document, str | None]:
    """:func:`document_from_bytes`, and a notice for the sync report (how to enable OCR, say), if any."""
    ext = PurePosixPath(file.source).suffix.lower() or file.path.suffix.lower()
    parsed = parse_bytes(data, ext)
    notice = None
    if ext == ".pdf":
        from .ocr import with_ocr

        parsed, notice = with_ocr(data, parsed, options)

    sections = tuple(
        Section(text=s.text.strip(), page=s.page, heading=tuple(s.heading)) for s in parsed.sections if s.text.strip()
    )
    if not sections:
        raise UnreadableFileError("no text content")

    metadata: dict[str, object] = dict(parsed.metadata)
    title = str(metadata.get("title") or "").strip() or PurePosixPath(file.source).stem
    metadata.update(
        title=title,
        mtime=file.mtime,
        size=file.size,
        mime=MIME_TYPES.get(ext, "text/plain" if parser_module(ext) == "text" else "application/octet-stream"),
        ext=ext.lstrip("."),
    )
    document = Document(
        id=document_id(file.root, file.source),
        source=file.source,
        sections=sections,
        content_hash=digest or content_hash(data),
        metadata=metadata,
    )
    return document, notice
