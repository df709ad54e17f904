"""How fast a watched folder's changes become searchable, and whether a burst ends in the right index; prints
one JSON object.

A :class:`Watcher` (what ``ragline watch`` and ``[server] watch = true`` run) follows a folder holding the demo
documents. Then:

* ``--saves`` times, a small file with a new code word is saved, and the time from the save to the first
  BM25 search that finds it is measured (the search polls every 20 ms);
* ``--files`` files are copied in at once (one ``copytree``), and once the watcher is idle its index is
  compared with one clean sync of the same folder into a new index: the same points, texts, content
  hashes and BM25 vectors, and dense vectors within float rounding.

    python bench/watch_latency.py [--saves 20] [--files 1000] [--quiet-ms 300]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.app import Ragline
from pipeline.config import parse_config
from pipeline.faces.watcher import Watcher

DEMO = Path(__file__).resolve().parents[1] / "demo_docs"


def app_on(index: Path) -> Ragline:
    return Ragline(parse_config({"index": {"path": str(index)}, "rerank": {"enabled": False}}))


def state(app: Ragline) -> dict[str, Any]:
    return {
        p.id: (p.payload["source"], p.payload["text"], p.payload["content_hash"], p.sparse, np.asarray(p.dense))
        for batch in app.store().export_points()
        for p in batch
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Whether two indexes hold the same points, texts, hashes and BM25 vectors, and how close their dense
    vectors are (int8 inference quantises each batch's activations by that batch's range, so a text embedded
    in another batch gets a vector a hair away)."""
    same = a.keys() == b.keys() and all(a[k][:4] == b[k][:4] for k in a)
    cosine = min((float(a[k][4] @ b[k][4]) for k in a if k in b), default=0.0)
    return {"same_points_texts_and_bm25": same, "dense_min_cosine": round(cosine, 6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--quiet-ms", type=int, default=300)
    args = parser.parse_args()
    text = " ".join(p.read_text(encoding="utf-8", errors="ignore") for p in sorted(DEMO.glob("*.md")))
    words = [w for w in ("".join(c for c in word if c.isalnum()) for word in text.split()) if w]
    with tempfile.TemporaryDirectory(prefix="ragline-watch-bench-") as scratch:
        base = Path(scratch)
        folder = base / "docs"
        shutil.copytree(DEMO, folder)
        app = app_on(base / "index")
        watcher = Watcher(app, [folder], args.quiet_ms).start()
        if not watcher.wait_idle(0.5):
            sys.exit("the watcher did not start")
        latencies = []
        for n in range(args.saves):
            code = f"qx{n:04d}z"
            saved = time.perf_counter()
            (folder / f"memo-{n:03d}.md").write_text(f"# Memo {n}\n\nThe code of this memo is {code}.")
            while not app.search(code, top_k=1, mode="bm25", rerank=False).results:
                if time.perf_counter() - saved > 120:
                    sys.exit(f"memo {n} was not searchable after 120 s")
                time.sleep(0.02)
            latencies.append(time.perf_counter() - saved)
            time.sleep(0.5)

        burst = base / "burst"
        burst.mkdir()
        for n in range(args.files):
            text = " ".join(words[(n * 37 + i) % len(words)] for i in range(60))
            (burst / f"file-{n:04d}.md").write_text(f"# File {n}\n\n{text}\n")
        syncs_before = watcher.status.syncs
        copied, copied_at = time.perf_counter(), time.time()
        shutil.copytree(burst, folder / "burst")
        while (watcher.status.last_change or 0) < copied_at:
            time.sleep(0.05)  # until the first events of the copy arrive
        if not watcher.wait_idle(2.0, timeout=1800):
            sys.exit("the watcher did not settle in 30 minutes")
        settled = time.perf_counter() - copied
        watcher.stop()
        followed = state(app)
        chunks = len(followed)
        clean = app_on(base / "clean")
        clean.ingest(folder)
        equal = compare(followed, state(clean))
        clean.close()
        app.close()
    print(
        json.dumps(
            {
                "saves": len(latencies),
                "save_to_searchable_s": {
                    "p50": round(statistics.median(latencies), 3),
                    "p95": round(float(np.percentile(latencies, 95)), 3),
                    "max": round(max(latencies), 3),
                },
                "burst": {
                    "files": args.files,
                    "seconds_to_indexed_and_idle": round(settled, 1),
                    "syncs": watcher.status.syncs - syncs_before,
                    "chunks": chunks,
                    "against_one_clean_sync": equal,
                },
                "quiet_ms": args.quiet_ms,
                "errors": watcher.status.errors,
            }
        )
    )


if __name__ == "__main__":
    main()
