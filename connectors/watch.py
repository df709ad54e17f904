"""Follow folders as they change: the paths that changed, folder by folder, from the system's file events.

``watchfiles`` (inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows; polling where none
works) reports every create, write, rename and delete below the folders. A burst (a copy of a thousand files,
an editor's save dance) is grouped into one batch: a batch ends once ``quiet_ms`` pass with no new event, or
after ``max_ms`` at most. A batch names paths, not what happened to them: the sync that follows looks at the
disk and the index to tell an edit from a delete or a rename. A folder that appeared or vanished is named as
a folder (sync takes everything below it), since the system reports a moved folder once, not its files.

Files the include and exclude globs leave out, and anything under ``ignore`` (the index itself, when it lies
in the folder), make no batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.globs import match_any


@dataclass(frozen=True)
class Changes:
    """Paths under ``folder`` that changed (POSIX, relative to it): files, or folders and all below them."""

    folder: Path
    paths: frozenset[str]


def watch(
    folders: Sequence[Path],
    include: Sequence[str],
    exclude: Sequence[str],
    ignore: Sequence[Path],
    stop: threading.Event,
    quiet_ms: int = 300,
    max_ms: int = 3000,
) -> Iterator[list[Changes]]:
    """Batches of changes until ``stop`` is set. An empty batch comes whenever half a second passes with none:
    the first one, or the first changes, says the folders are being watched (what changes from then on is
    reported, even while the caller is busy with something else), and each lets the caller look up."""
    import watchfiles

    roots = [folder.resolve() for folder in folders]
    skipped = [path.resolve() for path in ignore]

    def relevant(_: object, raw: str) -> bool:
        path = Path(raw)
        if any(path == s or path.is_relative_to(s) for s in skipped):
            return False
        root = _root_of(path, roots)
        if root is None or path == root:
            return False
        if not path.is_file():  # a folder, or gone: sync sorts out what it was
            return True
        relative = path.relative_to(root).as_posix()
        return match_any(relative, tuple(include)) and not match_any(relative, tuple(exclude))

    events = watchfiles.watch(
        *roots,
        watch_filter=relevant,
        debounce=max_ms,
        step=quiet_ms,
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=True,
        raise_interrupt=False,
    )
    for batch in events:
        changed: dict[Path, set[str]] = {}
        for _, raw in batch:
            path = Path(raw)
            root = _root_of(path, roots)
            if root is not None:
                changed.setdefault(root, set()).add(path.relative_to(root).as_posix())
        yield [Changes(root, frozenset(paths)) for root, paths in sorted(changed.items())]


def _root_of(path: Path, roots: Sequence[Path]) -> Path | None:
    """The deepest watched folder that holds ``path``."""
    holding = [root for root in roots if path.is_relative_to(root)]
    return max(holding, key=lambda root: len(root.parts)) if holding else None
