"""The embedded index's folder: who owns it, whether its disk can take a write, and files written whole.

Layout of an index folder::

    meta.json    model name and dimension, BM25 k1/b, tokenizer version
    config.json  the config the index was last synced with
    tuned.json   the ranking settings ``ragline tune`` chose for it, with its report
    roots.json   the folders synced into it: label, path, last sync
    adapted.json the embedder ``ragline adapt`` fitted to it, from which base model, on which pairs
    shard/       the Qdrant Edge shard (dense "dense" + sparse "bm25" with IDF)
    lock         held (flock) by the process that has the index open
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import IndexUnavailableError, RaglineError
from pipeline.stores.base import IndexMeta

MIN_FREE_MB = 64.0
"""Default headroom for writes (config: index.min_free_mb)."""
BYTES_PER_POINT = 32 * 1024
"""A generous bound on the disk a written point takes (about 6 KiB measured: WAL, vectors, payload, indexes)."""
META_FILE = "meta.json"
CONFIG_FILE = "config.json"
TUNING_FILE = "tuned.json"
ROOTS_FILE = "roots.json"
ADAPTED_FILE = "adapted.json"


class FolderLock:
    """An exclusive flock on ``lock``; the holder's pid is written into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise IndexUnavailableError(
                f"index {path.parent} is in use by another process (pid {holder}); "
                "an embedded index is owned by one process at a time: if that is `ragline serve`, "
                "ask the server (GET /stats, POST /search) or stop it first"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


_NO_SPACE = re.compile(rf"\(os error ({errno.ENOSPC}|{errno.EFBIG})\)")
_FAILED_WRITE = re.compile(r"failed to write to file `([^`]+)`: (.+)$")


def engine_reason(exc: BaseException) -> str:
    """The engine's error on one line: its innermost cause where that is a failed file write."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = " ".join(str(exc).replace("Service runtime error: ", "").split())
    failed = _FAILED_WRITE.search(text)
    if failed:
        return f"{failed[2]} writing {failed[1]}"
    return text or type(exc).__name__


@contextmanager
def writing(folder: Path, file: Path | None = None) -> Iterator[None]:
    """A write that fails (the disk is full, a file size limit, an I/O error) as one line naming the index."""
    try:
        yield
    except RaglineError:
        raise
    except Exception as exc:  # noqa: BLE001 - any engine or OS failure of a write, in one line
        reason = engine_reason(exc) + (f" ({file})" if file is not None else "")
        full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG)) or bool(
            _NO_SPACE.search(str(exc))
        )
        hint = " (no space: the disk is full or a file size limit was reached)" if full else ""
        raise IndexUnavailableError(f"cannot write the index at {folder}{hint}: {reason}") from None


def check_space(folder: Path, min_free_mb: float, points: int = 0) -> None:
    """Refuse a write while the disk is nearly full. Qdrant Edge writes through memory-mapped files, and
    a write that finds no free block is a SIGBUS that kills the process with no message and no clean-up;
    stopping before the write keeps the index as it was and says why."""
    stats = os.statvfs(next(p for p in (folder, *folder.parents) if p.exists()))  # a new index: its parent
    free = stats.f_bavail * stats.f_frsize
    needed = min_free_mb * 2**20 + points * BYTES_PER_POINT
    if free < needed:
        batch = f" plus {points} points" if points else ""
        raise IndexUnavailableError(
            f"cannot write the index at {folder}: its disk has {free / 2**20:.1f} MB free, under the "
            f"{needed / 2**20:.1f} MB a write needs (index.min_free_mb = {min_free_mb:g}{batch}): free some space"
        )


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with writing(path.parent, tmp):
        try:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def read_meta(folder: Path) -> IndexMeta | None:
    file = folder / META_FILE
    if not file.exists():
        return None
    try:
        return IndexMeta(**json.loads(file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise IndexUnavailableError(f"index metadata {file} is damaged: {exc}") from None


def read_json(file: Path) -> dict[str, Any] | None:
    """A JSON object the index folder keeps (None: not written); a damaged one is one clear error."""
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IndexUnavailableError(f"{file} is damaged: {exc}") from None
    return data if isinstance(data, dict) else None


def read_config(folder: Path) -> dict[str, Any] | None:
    """The config the index was last synced with (None: never saved)."""
    return read_json(folder / CONFIG_FILE)
