"""Plain text: decoded whatever its encoding, kept as one section (the chunker splits it)."""

from __future__ import annotations

from pipeline.types import Section

from ._text import Parsed, clean_text, decode_text


def parse(data: bytes) -> Parsed:
    """Decode with BOM/UTF-8/charset-normalizer; binary data raises UnreadableFileError."""
    text = clean_text(decode_text(data))
    return Parsed([Section(text=text)] if text else [], {})
