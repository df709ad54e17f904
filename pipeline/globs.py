"""Glob patterns matched against a relative POSIX path.

Python 3.11 has no ``PurePath.full_match``; ``fnmatch`` lets ``*`` cross
``/``. Rules here: ``*`` and ``?`` stay inside one path segment, ``[...]`` is
a character class (``[!...]`` negated), ``**/`` matches zero or more folders
(so ``**/*.md`` matches ``a.md`` and ``x/y/a.md``), a trailing ``/**`` or
``/`` matches everything below a folder. Matching is case-sensitive and
anchored to the whole path: ``*.md`` matches only top-level files.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate one glob pattern into an anchored regular expression."""
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    pattern = pattern.lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        at_segment_start = i == 0 or pattern[i - 1] == "/"
        if at_segment_start and pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif at_segment_start and pattern.startswith("**", i) and i + 2 == n:
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            close = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if close == -1:
                out.append(re.escape("["))
                i += 1
                continue
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def glob_match(path: str, pattern: str) -> bool:
    """True when the relative POSIX ``path`` matches ``pattern`` in full."""
    return compile_glob(pattern).fullmatch(path) is not None


def match_any(path: str, patterns: tuple[str, ...]) -> bool:
    return any(glob_match(path, p) for p in patterns)
