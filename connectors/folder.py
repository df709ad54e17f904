"""Find the files under a folder that ragline should index, and say why others are skipped.

The scan never follows a symlink out of the folder (a link could otherwise
pull ``/etc`` or a home directory into the index), never enters the same
folder twice (symlink loops), lists a file reached through several symlinks
once, and never opens a file: it only stats them, so
FIFOs or huge files cannot stall a sync.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import RaglineError
from pipeline.globs import compile_glob, match_any
from pipeline.types import SkippedFile

from .formats import parser_module


@dataclass(frozen=True, order=True)
class SourceFile:
    """A file to index. ``source`` is its path relative to the folder, POSIX style (the citation);
    ``root`` is the scanned folder's URI, which with ``source`` gives the document's id."""

    path: Path
    source: str
    size: int
    mtime: float
    root: str = ""


@dataclass(frozen=True)
class ScanResult:
    """Files to index, sorted by ``source``; files left out with a reason, also sorted."""

    files: list[SourceFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


_DirKey = tuple[int, int]  # (st_dev, st_ino): identifies a folder however it is reached


@dataclass
class _Walk:
    files: dict[str, SourceFile] = field(default_factory=dict)
    skipped: dict[str, SkippedFile] = field(default_factory=dict)
    seen_dirs: dict[_DirKey, str] = field(default_factory=dict)
    seen_files: dict[_DirKey, str] = field(default_factory=dict)
    links: list[tuple[str, Path]] = field(default_factory=list)
    root: str = ""


class FolderSource:
    """A local folder scanned recursively with include/exclude globs.

    Globs match the path relative to ``root`` in POSIX form (see
    ``pipeline.globs``); a file is kept when it matches some ``include``
    and no ``exclude``. Files and folders whose name starts with "." are
    ignored silently, as are files the globs leave out; everything else that
    cannot be indexed is reported in ``ScanResult.skipped`` with a reason.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        include: Iterable[str] = ("**/*",),
        exclude: Iterable[str] = (),
        max_file_bytes: int = 50_000_000,
        *,
        extensions: Collection[str] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        self.max_file_bytes = max_file_bytes
        self.extensions = None if extensions is None else frozenset(e.lower() for e in extensions)
        for pattern in self.include + self.exclude:
            compile_glob(pattern)  # fail early on a pattern we cannot compile

    def __repr__(self) -> str:
        return (
            f"FolderSource({str(self.root)!r}, include={self.include!r}, "
            f"exclude={self.exclude!r}, max_file_bytes={self.max_file_bytes})"
        )

    def scan(self) -> ScanResult:
        """List the indexable files; deterministic (sorted by relative path)."""
        root = Path(os.path.abspath(self.root))
        if not root.exists():
            raise RaglineError(f"source folder does not exist: {root}")
        if not root.is_dir():
            raise RaglineError(f"source path is not a folder: {root}")
        real_root = Path(os.path.realpath(root))
        walk = _Walk(root=real_root.as_uri())
        self._walk_dir(walk, root, "")
        # Symlinks are handled after the real tree is known, so a link to a
        # folder that is also reachable directly never hides the real folder.
        while walk.links:
            walk.links.sort(reverse=True)
            rel, path = walk.links.pop()
            self._follow_link(walk, real_root, path, rel)
        return ScanResult(
            files=[walk.files[k] for k in sorted(walk.files)],
            skipped=[walk.skipped[k] for k in sorted(walk.skipped)],
        )

    # -- internals -------------------------------------------------------

    def _skip(self, walk: _Walk, rel: str, reason: str) -> None:
        walk.skipped[rel] = SkippedFile(source=rel, reason=reason)

    def _walk_dir(self, walk: _Walk, directory: Path, rel_dir: str) -> None:
        try:
            st = directory.stat()
        except OSError as exc:
            self._skip(walk, rel_dir or ".", f"cannot open folder: {exc.strerror or exc}")
            return
        key = (st.st_dev, st.st_ino)
        if key in walk.seen_dirs:
            return
        walk.seen_dirs[key] = rel_dir
        try:
            with os.scandir(directory) as entries:
                children = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            self._skip(walk, rel_dir or ".", f"cannot open folder: {exc.strerror or exc}")
            return
        for entry in children:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    walk.links.append((rel, path))
                elif entry.is_dir(follow_symlinks=False):
                    self._walk_dir(walk, path, rel)
                else:
                    self._consider_file(walk, path, rel, entry.stat(follow_symlinks=False))
            except OSError as exc:
                self._skip(walk, rel, f"cannot read: {exc.strerror or exc}")

    def _follow_link(self, walk: _Walk, real_root: Path, path: Path, rel: str) -> None:
        try:
            st = os.stat(path)  # follows the whole chain
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._skip(walk, rel, "symlink loop")
            elif exc.errno == errno.ENOENT:
                self._skip(walk, rel, "broken symlink: its target does not exist")
            else:
                self._skip(walk, rel, f"cannot read symlink target: {exc.strerror or exc}")
            return
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(real_root):
            self._skip(walk, rel, "symlink points outside the folder")
            return
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in walk.seen_dirs:
                real_parent = Path(os.path.realpath(path.parent))
                if real_parent.is_relative_to(target):
                    self._skip(walk, rel, "symlink loop: it points to a folder that contains it")
                # else: a second name for a folder already scanned; its files are already listed.
                return
            self._walk_dir(walk, path, rel)
            return
        if (st.st_dev, st.st_ino) in walk.seen_files:
            return  # a second name for a file already listed: index it once
        self._consider_file(walk, path, rel, st)

    def _consider_file(self, walk: _Walk, path: Path, rel: str, st: os.stat_result) -> None:
        if not match_any(rel, self.include) or match_any(rel, self.exclude):
            return
        if not stat.S_ISREG(st.st_mode):
            self._skip(walk, rel, "not a regular file")
            return
        ext = path.suffix.lower()
        if parser_module(ext) is None or (self.extensions is not None and ext not in self.extensions):
            label = f"'{ext}'" if ext else "(no extension)"
            self._skip(walk, rel, f"unsupported file type {label}")
            return
        if st.st_size > self.max_file_bytes:
            self._skip(
                walk,
                rel,
                f"file too large: {st.st_size:,} bytes (limit {self.max_file_bytes:,} bytes)",
            )
            return
        if not os.access(path, os.R_OK):
            self._skip(walk, rel, "permission denied: the file cannot be read")
            return
        walk.seen_files.setdefault((st.st_dev, st.st_ino), rel)
        walk.files[rel] = SourceFile(path=path, source=rel, size=st.st_size, mtime=st.st_mtime, root=walk.root)
