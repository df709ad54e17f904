"""Connectors: walk a folder, detect formats, and parse each file (in bounded worker processes, one module
per format) into ``Document`` values. A connector never knows about vectors or stores.

May import: the ground floor only (``pipeline.types``, ``errors``, ``config``, ``globs``). Importing this
package is cheap: parser libraries (pypdf, python-docx, python-pptx, selectolax, charset-normalizer) load
on first use of a format.
"""

from __future__ import annotations

from ._text import Parsed, ParseOptions
from .folder import FolderSource, ScanResult, SourceFile
from .formats import PARSERS_VERSION, SUPPORTED_EXTENSIONS
from .loader import load_document, parse_bytes

__all__ = [
    "PARSERS_VERSION",
    "SUPPORTED_EXTENSIONS",
    "FolderSource",
    "ParseOptions",
    "Parsed",
    "ScanResult",
    "SourceFile",
    "load_document",
    "parse_bytes",
]
