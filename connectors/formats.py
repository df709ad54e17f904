"""Which file extensions ragline can parse, and with which module.

Kept free of heavy imports so the folder scanner can decide "supported or
not" without loading any parser library.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PARSERS_VERSION = "text-underlined-headings@2+pdf-outline-rotated+ocr@1+tables@1"
"""What the parsers make of a file (its sections, headings, title): bumped when that changes, so that the
evaluation's cached indexes of a folder are rebuilt rather than reused. A sync re-parses changed files
only, so an index built before keeps its files' old sections until they change (or it is built anew)."""

# Lowercase extension -> module in ``connectors`` whose ``parse(data)`` reads it.
PARSER_MODULES: Mapping[str, str] = MappingProxyType(
    {
        ".pdf": "pdf",
        ".md": "markdown",
        ".markdown": "markdown",
        ".html": "html",
        ".htm": "html",
        ".txt": "text",
        ".text": "text",
        ".docx": "docx",
        ".eml": "eml",
        ".pptx": "pptx",
        ".csv": "table",
        ".tsv": "table",
    }
)

TEXT_EXTENSIONS: frozenset[str] = frozenset(
    (
        ".json .jsonl .ndjson .yaml .yml .toml .ini .cfg .conf .env .properties .xml .rst .adoc .tex .log .sql "
        ".py .pyi .ipynb .js .mjs .cjs .ts .tsx .jsx .vue .svelte .css .scss .java .kt .kts .scala .groovy .gradle "
        ".c .h .cc .cpp .cxx .hpp .cs .go .rs .rb .php .pl .pm .lua .r .swift .m .dart .ex .exs .erl .hs .clj "
        ".sh .bash .zsh .fish .ps1 .bat .cmd .mk .cmake .dockerfile .tf .proto .graphql"
    ).split()
)
"""Source code, configuration and data that is plain text: read by the text parser."""

BINARY_EXTENSIONS: frozenset[str] = frozenset(
    (
        ".png .jpg .jpeg .gif .bmp .tif .tiff .webp .ico .heic .svg .svgz .psd .inv .map .mp3 .wav .flac .ogg .m4a "
        ".mp4 .mov .avi "
        ".mkv .webm .zip .gz .tgz .bz2 .xz .zst .7z .rar .tar .jar .war .whl .egg .exe .dll .so .dylib .o .a .lib "
        ".class .pyc .pyo .bin .dat .db .sqlite .sqlite3 .parquet .feather .npy .npz .pkl .pickle .pt .onnx "
        ".safetensors .woff .woff2 .ttf .otf .eot .doc .xls .xlsx .ppt .odt .ods .odp .rtf .epub .iso .dmg .img"
    ).split()
)
"""Files that are never text: skipped by name, without being read."""

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(PARSER_MODULES) | TEXT_EXTENSIONS
"""The extensions ragline reads by name; a file with none (README, LICENSE, Makefile) or another one that is
not known to be binary is read too when its bytes are text (the text parser sniffs them)."""


def parser_module(ext: str) -> str | None:
    """The module in ``connectors`` that reads a file with this extension ("" for none); None: not readable."""
    ext = ext.lower()
    if ext in PARSER_MODULES:
        return PARSER_MODULES[ext]
    return None if ext in BINARY_EXTENSIONS else "text"


# A fixed table rather than ``mimetypes.guess_type``: that reads the host's
# /etc/mime.types, so the same file would get different metadata per machine.
MIME_TYPES: Mapping[str, str] = MappingProxyType(
    {
        ".pdf": "application/pdf",
        ".md": "text/markdown",
        ".markdown": "text/markdown",
        ".html": "text/html",
        ".htm": "text/html",
        ".txt": "text/plain",
        ".text": "text/plain",
        ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".eml": "message/rfc822",
        ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".csv": "text/csv",
        ".tsv": "text/tab-separated-values",
        ".json": "application/json",
    }
)
