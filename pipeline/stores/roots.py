"""The folders an index holds ("roots"): a short label for each, its folder and its last sync.

Points name their root by URI (``file:///home/me/teamA``), which is exact but long. Citations and
``--path`` name it by label (``teamA/notes.md``), so two folders with a ``notes.md`` each stay apart.
A root keeps its label for life, even when its folder moves, so a citation means the same file tomorrow;
a new root whose folder name is taken gets ``name-2``. The record is kept with the index
(:meth:`Store.save_roots`); an index from before it was kept labels each root by its folder name.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pipeline.errors import RaglineError


@dataclass(frozen=True)
class Root:
    uri: str
    label: str
    folder: str | None = None
    """The folder on disk (None: a root that is not a folder, such as a BEIR corpus)."""
    last_sync: str | None = None
    """When a sync of it last finished, ISO 8601 in UTC."""

    @property
    def present(self) -> bool:
        """Whether its folder (or corpus file) is there now (a moved or deleted folder: not)."""
        return self.folder is not None and Path(self.folder).exists()


def folder_of(uri: str) -> str | None:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def default_label(uri: str) -> str:
    """A root's folder name (the last part of its URI)."""
    parsed = urlparse(uri)
    parts = [p for p in unquote(parsed.path).split("/") if p]
    return parts[-1] if parts else parsed.netloc or uri


def known(saved: Mapping[str, Mapping[str, Any]], uris: Iterable[str] = ()) -> dict[str, Root]:
    """The roots the record holds, and any of ``uris`` (roots found on points) it lacks, labelled by folder."""
    roots = {
        uri: Root(uri, str(entry.get("label") or default_label(uri)), folder_of(uri), entry.get("last_sync"))
        for uri, entry in saved.items()
    }
    for uri in uris:
        if uri and uri not in roots:
            roots[uri] = Root(uri, default_label(uri), folder_of(uri))
    return roots


def new_label(uri: str, roots: Mapping[str, Root]) -> str:
    """The folder's name, or ``name-2``, ``name-3``... when another root has it."""
    taken = {r.label for u, r in roots.items() if u != uri}
    base = default_label(uri)
    label, n = base, 1
    while label in taken:
        n += 1
        label = f"{base}-{n}"
    return label


def synced(roots: Mapping[str, Root], uri: str, label: str | None = None) -> dict[str, Root]:
    """The record after a sync of ``uri`` finished now (``label``: the one it takes over from a moved root)."""
    previous = roots.get(uri)
    chosen = label or (previous.label if previous else new_label(uri, roots))
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {**roots, uri: Root(uri, chosen, folder_of(uri), now)}


def to_record(roots: Mapping[str, Root]) -> dict[str, dict[str, Any]]:
    return {uri: {"label": r.label, "last_sync": r.last_sync} for uri, r in sorted(roots.items())}


def by_label(roots: Mapping[str, Root]) -> dict[str, Root]:
    return {r.label: r for r in roots.values()}


def holding(path: Path, roots: Mapping[str, Root]) -> Root | None:
    """The root whose folder holds ``path`` (a resolved path), the innermost when roots nest."""
    holders = [r for r in roots.values() if r.folder and path.is_relative_to(r.folder)]
    return max(holders, key=lambda r: len(r.folder or ""), default=None)


def locate(
    target: str, roots: Mapping[str, Root], must_exist: bool = False, files: bool = True
) -> tuple[Root | None, str]:
    """Which root a path a user typed names, and the path under it ("" for the whole root).

    A path is read as a file or folder on disk when it is absolute, starts with ``./``, ``../`` or ``~``, or
    exists (``demo_docs/faq.txt`` typed beside ``demo_docs``); else as ``label/path``; else as a path under
    any root (root None). ``must_exist``: a path that names no root is an error. ``files`` False (a glob):
    only ``label/path`` is tried.
    """
    raw = target.strip()
    explicit = raw.startswith(("/", "./", "../", "~")) or raw in (".", "..")
    if files and (explicit or _exists(raw)):
        resolved = Path(raw).expanduser().resolve()
        root = holding(resolved, roots)
        if root is not None and root.folder is not None:
            under = resolved.relative_to(root.folder).as_posix()
            return root, "" if under == "." else under
        if raw.startswith(("/", "~")) or must_exist:
            raise RaglineError(f"{target!r} is not in a folder the index holds ({_listing(roots)})")
    first, _, rest = raw.removeprefix("./").strip("/").partition("/")
    labelled = by_label(roots).get(first)
    if labelled is not None:
        return labelled, rest.strip("/")
    if must_exist:
        raise RaglineError(f"{target!r} names no folder the index holds ({_listing(roots)})")
    return None, raw.removeprefix("./").strip("/")


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, RuntimeError):  # a name too long for the file system; a ~user that does not exist
        return False


def _listing(roots: Mapping[str, Root]) -> str:
    if not roots:
        return "it holds none yet"
    return "it holds " + ", ".join(
        f"{r.label} = {r.folder or r.uri}" for r in sorted(roots.values(), key=lambda r: r.label)
    )
