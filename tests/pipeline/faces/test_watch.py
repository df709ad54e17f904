"""The folder watcher (``ragline watch``, ``[server] watch = true``), with real file events (watchfiles), the
real model and Qdrant Edge: saves, renames, deletes, a burst, a watcher that was stopped; and ``/stats``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.app import Ragline
from pipeline.faces.http import create_app, running_server
from pipeline.faces.watcher import Watcher
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, make_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def eventually(check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``check`` (file events and a sync take a moment; no time is asserted)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the watcher did not catch up"
        time.sleep(0.1)


def sources(app: Ragline) -> set[str]:
    return {state.source for state in app.store().documents().values()}


def index_state(app: Ragline) -> dict[str, Any]:
    """What must be equal between two indexes of one folder: the points, their texts and BM25 vectors."""
    points = [p for batch in app.store().export_points() for p in batch]
    return {p.id: (p.payload["source"], p.payload["text"], p.payload["content_hash"], p.sparse) for p in points}


def found(app: Ragline, query: str) -> set[str]:
    return {r.chunk.source for r in app.search(query, top_k=5, mode="bm25", rerank=False).results}


def test_the_watcher_follows_saves_renames_deletes_and_bursts(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    app = make_app(tmp_path / "index", embedder)
    watcher = Watcher(app, [folder], quiet_ms=100).start()
    assert watcher.wait_idle(0.5)
    assert sources(app) == {p.name for p in DEMO_DOCS.iterdir()}  # caught up at start

    (folder / "memo.md").write_text("# Memo\n\nThe zq41 badge readers are replaced on Monday.")
    eventually(lambda: found(app, "zq41") == {"memo.md"})
    (folder / "memo.md").rename(folder / "memo-badges.md")
    eventually(lambda: "memo.md" not in sources(app) and found(app, "zq41") == {"memo-badges.md"})
    (folder / "memo-badges.md").write_text("# Memo\n\nThe zq42 badge readers are replaced on Tuesday.")
    eventually(lambda: found(app, "zq42") == {"memo-badges.md"} and found(app, "zq41") == set())
    (folder / "memo-badges.md").unlink()
    eventually(lambda: "memo-badges.md" not in sources(app))

    burst = tmp_path / "burst"
    burst.mkdir()
    for n in range(120):
        (burst / f"note-{n:03d}.md").write_text(f"# Note {n}\n\nItem kw{n:03d} of the inventory, shelf {n % 7}.")
    shutil.copytree(burst, folder / "inventory")  # a folder appears with 120 files at once
    eventually(lambda: len([s for s in sources(app) if s.startswith("inventory/")]) == 120, timeout=300)
    assert watcher.wait_idle(1.0)
    (folder / "inventory").rename(folder / "stock")  # a folder moved: the system names the folder, not its files
    eventually(lambda: len([s for s in sources(app) if s.startswith("stock/")]) == 120, timeout=300)
    assert watcher.wait_idle(1.0)
    assert not any(s.startswith("inventory/") for s in sources(app))
    assert watcher.status.errors == 0 and watcher.status.syncs >= 6
    watcher.stop()
    assert watcher.status.state == "stopped"

    # changed while no watcher ran: the next one catches up before it watches
    (folder / "faq.txt").unlink()
    (folder / "late.md").write_text("Written while the watcher was stopped: zq43.")
    again = Watcher(app, [folder]).start()
    assert again.wait_idle(0.5)
    assert "faq.txt" not in sources(app) and found(app, "zq43") == {"late.md"}
    again.stop()

    clean = make_app(tmp_path / "clean", embedder)
    clean.ingest(folder)
    assert index_state(app) == index_state(clean)  # exactly the index one clean sync of the folder gives
    assert app.verify().ok
    clean.close()
    app.close()


def test_stats_show_the_watcher_of_a_server(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    key = "watch-admin-key"
    app = make_app(
        tmp_path / "index", embedder, server={"sources": {"docs": str(folder)}, "watch": True, "api_key": key}
    )
    with running_server(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        admin = {"Authorization": f"Bearer {key}"}

        def watch() -> dict[str, Any]:
            stats = client.get("/stats", headers=admin)  # a 503 until the watcher's first sync makes the index
            return dict(stats.json()["watch"]) if stats.status_code == 200 else {"state": "", "syncs": 0}

        eventually(lambda: watch()["state"] == "watching" and watch()["syncs"] == 1)
        (folder / "memo.md").write_text("The zq44 meeting moves to Friday.")
        eventually(lambda: watch()["syncs"] == 2)
        state = watch()
        assert state["folders"] == [str(folder.resolve())] and state["last_sync"]["added"] == 1
        assert state["changes_seen"] >= 1 and state["errors"] == 0
        hits = client.post("/search", json={"query": "zq44", "mode": "bm25"}, headers=admin).json()["results"]
        assert hits[0]["source"] == "memo.md"
    app.close()


@pytest.mark.timeout(180)
def test_cli_watch_syncs_then_stops_on_sigterm(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    command = [sys.executable, "-m", "pipeline.faces.cli", "--index", str(tmp_path / "index"), "watch", str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        first = process.stdout.readline()  # the catch-up sync of the whole folder
        assert "synced" in first and "added 5" in first
        (folder / "memo.md").write_text("The zq45 printer is fixed.")
        second = process.stdout.readline()
        assert "added 1" in second
    finally:
        process.terminate()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "stopped" in err
    bad = subprocess.run([*command[:-1], str(folder / "faq.txt")], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "not a folder" in bad.stderr
