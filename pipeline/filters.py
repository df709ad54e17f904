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
MAX_GLOB_WILDCARDS = 8
MAX_SEGMENT_STARS = 3
"""A glob is matched by a backtracking regex, whose cost grows with the power of the number of
``*`` in one folder or file name: ``*a*a*a*a*a*a*a*b`` takes seconds per source on a long name,
three take milliseconds. More than a few only serve to make a search slow."""
INT64 = (-(2**63), 2**63 - 1)
"""Qdrant stores integer payloads as 64-bit; a larger match value cannot be sent."""


@dataclass(frozen=True)
class SearchFilter:
    """``path``: a folder/file prefix or a glob over source paths (under their root); ``file_types``:
    extensions; ``fields``: exact matches on any payload field (all must hold)."""

    path: str | None = None
    file_types: tuple[str, ...] = ()
    fields: tuple[tuple[str, Any], ...] = ()
    root: str | None = None
    """Only the documents of this root (its URI): what a path that begins with a root's label selects."""

    def __post_init__(self) -> None:
        for key, value in self.fields:
            if not key or key in RESERVED_FIELDS or not all(p.isidentifier() for p in key.split(".")):
                raise RaglineError(f"filter field {key!r} is not a valid payload field name")
            if not isinstance(value, str | int):  # bool is an int
                raise RaglineError(f"filter field {key!r}: the value must be a string, integer or boolean")
            if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
                raise RaglineError(f"filter field {key!r}: {value} is out of the 64-bit integer range")
        if self.is_glob:
            self._check_glob()

    def _check_glob(self) -> None:
        import re

        from pipeline.globs import compile_glob

        assert self.path is not None
        wildcards = sum(self.path.count(c) for c in GLOB_CHARS)
        if wildcards > MAX_GLOB_WILDCARDS:
            raise RaglineError(
                f"filter path {self.path!r} has {wildcards} wildcards (*, ?, [); at most {MAX_GLOB_WILDCARDS}"
            )
        stars = max((part.count("*") for part in self.path.split("/") if part != "**"), default=0)
        if stars > MAX_SEGMENT_STARS:
            raise RaglineError(
                f"filter path {self.path!r} has {stars} '*' in one folder or file name; at most {MAX_SEGMENT_STARS}"
            )
        try:
            compile_glob(self.path)
        except re.error as exc:
            raise RaglineError(f"filter path {self.path!r} is not a valid glob: {exc}") from None

    @property
    def empty(self) -> bool:
        return not (self.path or self.file_types or self.fields or self.root)

    @property
    def is_glob(self) -> bool:
        return self.path is not None and any(c in GLOB_CHARS for c in self.path)

    def matching_sources(self, sources: Iterable[str]) -> list[str]:
        """Sources a glob selects, with the same rules as the ingest include/exclude globs
        (``*`` stays within a folder, ``**/`` spans folders)."""
        from pipeline.globs import glob_match

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
    return SearchFilter(path=path or None, file_types=normal_types(file_types), fields=tuple(pairs))


def normal_types(file_types: Iterable[str]) -> tuple[str, ...]:
    """``["pdf,md", ".TXT"]`` as ``("pdf", "md", "txt")``: a comma list, a dot or capitals are what users type."""
    return tuple(t.strip().lower().lstrip(".") for item in file_types for t in item.split(",") if t.strip())


def check_filter(
    where: SearchFilter, held_types: Iterable[str], readable_types: Iterable[str], fields: Iterable[str]
) -> None:
    """A type that is no file type, or a field no chunk can have, is a mistake, not an empty answer: name it,
    and the choices. A type is known when the index holds a file of it (``held_types``, listed) or ragline
    reads it by name (``readable_types``: ``--type pdf`` on an index with no PDF is an empty answer)."""
    held = sorted(set(held_types))
    for value in where.file_types:
        if value not in held and value not in set(readable_types):
            choices = f"the index holds {', '.join(held)}" if held else "the index holds no file yet"
            raise RaglineError(f"unknown file type {value!r}: {_near(value, held)}{choices}")
    names = sorted(set(fields))
    for key, _ in where.fields:
        if key not in names and key.split(".")[0] not in names:
            raise RaglineError(
                f"unknown filter field {key!r}: {_near(key, names)}the filter fields are {', '.join(names)}"
            )


def _near(value: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(value, choices, n=2, cutoff=0.5)
    return f"did you mean {' or '.join(close)}? " if close else ""
