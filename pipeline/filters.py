"""Search filters as plain data, validated before any store sees them.

A filter is store-agnostic; each store translates it to its own query filter
and applies it inside every prefetch (dense and BM25 alike).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import RaglineError

GLOB_CHARS = frozenset("*?[")
RESERVED_FIELDS = frozenset({"text"})


@dataclass(frozen=True)
class SearchFilter:
    """``path``: a folder/file prefix or a glob over source paths; ``file_types``: extensions;
    ``fields``: exact matches on any payload field (all must hold)."""

    path: str | None = None
    file_types: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for key, _ in self.fields:
            if not key or key in RESERVED_FIELDS or not all(p.isidentifier() for p in key.split(".")):
                raise RaglineError(f"filter field {key!r} is not a valid payload field name")

    @property
    def empty(self) -> bool:
        return not (self.path or self.file_types or self.fields)

    @property
    def is_glob(self) -> bool:
        return self.path is not None and any(c in GLOB_CHARS for c in self.path)

    def matching_sources(self, sources: Iterable[str]) -> list[str]:
        """Sources a glob selects, with the same rules as the ingest include/exclude globs
        (``*`` stays within a folder, ``**/`` spans folders)."""
        from connectors.globs import glob_match

        assert self.path is not None
        return sorted(s for s in sources if glob_match(s, self.path))


def _parse_value(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, (bool, int, str)) else raw


def parse_filter(
    path: str | None = None,
    file_types: Iterable[str] = (),
    fields: Iterable[str] = (),
) -> SearchFilter:
    """Build a filter from CLI-style strings: ``--type pdf``, ``--where key=value``."""
    pairs: list[tuple[str, Any]] = []
    for item in fields:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RaglineError(f"filter {item!r} must look like key=value")
        pairs.append((key.strip(), _parse_value(raw.strip())))
    types = tuple(t.lower().lstrip(".") for t in file_types if t)
    return SearchFilter(path=path or None, file_types=types, fields=tuple(pairs))
