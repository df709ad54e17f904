"""Which file extensions ragline can parse, and with which module.

Kept free of heavy imports so the folder scanner can decide "supported or
not" without loading any parser library.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PARSERS_VERSION = "text-underlined-headings@2"
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
    }
)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(PARSER_MODULES)

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
    }
)
