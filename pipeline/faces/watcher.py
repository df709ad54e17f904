"""Keep the index in step with its folders: ``ragline watch`` and ``[server] watch = true``.

A watcher first syncs each folder whole (so a watcher that was stopped, or killed, catches up with what
changed meanwhile), then syncs what the folders' file events name, a batch at a time
(``Ragline.changes``): only those paths, renames and deletes included, each batch one incremental sync. It
runs on its own thread; syncs of one app take turns with ingest jobs. Its state is what ``/stats`` shows.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.app import Ragline, SyncReport
from pipeline.errors import RaglineError

State = Literal["starting", "catching up", "watching", "syncing", "stopped", "failed"]


@dataclass
class WatchState:
    folders: list[str]
    state: State = "starting"
    syncs: int = 0
    changes_seen: int = 0
    """Paths named by file events so far."""
    errors: int = 0
    last_error: str | None = None
    last_change: float | None = None
    last_sync: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Watcher:
    """Follows ``folders`` on a background thread until :meth:`stop`."""

    def __init__(
        self,
        rag: Ragline,
        folders: list[str | Path],
        quiet_ms: int = 300,
        on_sync: Callable[[str, SyncReport], None] | None = None,
    ) -> None:
        self._rag = rag
        self._folders = [Path(f).expanduser().resolve() for f in folders]
        self._quiet_ms = quiet_ms
        self._on_sync = on_sync
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ragline-watch", daemon=True)
        self.status = WatchState([str(f) for f in self._folders])

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if self.status.state != "failed":
            self.status.state = "stopped"

    def wait_idle(self, quiet_s: float = 1.0, timeout: float = 300.0) -> bool:
        """Until the watcher has been watching, with no sync, for ``quiet_s`` (tests, benches)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = max(self.status.last_change or 0.0, (self.status.last_sync or {}).get("finished", 0.0))
            if self.status.state == "watching" and time.time() - last >= quiet_s:
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        try:
            self.status.state = "catching up"
            events = self._rag.changes(self._folders, self._stop, self._quiet_ms)
            first = next(events, [])  # the folders are watched from here: what changes during the catch-up counts
            self._rag.embedder.embed(["warm up"])  # the model loads now, not when the first change is saved
            for folder in self._folders:
                self._sync(folder, None)
            self.status.state = "watching"
            for batch in itertools.chain([first], events):
                if not batch:
                    continue
                self.status.state = "syncing"
                self.status.last_change = time.time()
                for changes in batch:
                    self.status.changes_seen += len(changes.paths)
                    self._sync(changes.folder, sorted(changes.paths))
                self.status.state = "watching"
        except Exception as exc:  # noqa: BLE001 - the watcher's thread ends; /stats says why
            self.status.state, self.status.last_error = "failed", f"{type(exc).__name__}: {exc}"
            self.status.errors += 1

    def _sync(self, folder: Path, only: list[str] | None) -> None:
        """One sync; a folder that is gone, or a failed sync, is recorded and the watcher goes on."""
        started = time.time()
        try:
            if not folder.is_dir():
                raise RaglineError(f"{folder} is not there (unmounted?): its documents are kept")
            report = self._rag.ingest(folder, only=only)
        except RaglineError as exc:
            self.status.errors += 1
            self.status.last_error = str(exc)
            return
        self.status.syncs += 1
        self.status.last_sync = {
            "folder": str(folder),
            "paths": len(only) if only is not None else None,
            "added": len(report.added),
            "updated": len(report.updated),
            "removed": len(report.removed),
            "access_updated": len(report.access_updated),
            "chunks_written": report.chunks_written,
            "started": started,
            "finished": time.time(),
        }
        if self._on_sync is not None:
            self._on_sync(str(folder), report)
