"""A sync that changes nothing: `ragline ingest FOLDER` run again on an up-to-date index; prints one JSON object.

The wall time of the whole command, as a user waits for it, beside `ragline stats` on the same index (the
floor: interpreter, imports, opening the index). With ``--baseline SRC`` (a checkout of an older commit,
e.g. from ``git worktree add``), that code's no-op sync runs too, alternating with this one, each on its own
copy of the index. Medians.

    python bench/noop_sync.py [--folder demo_docs] [--repeat 5] [--baseline /tmp/old-checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(code: Path, *args: str) -> float:
    """Seconds the command took, with ``code`` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run(  # cwd: not a checkout, whose own pipeline/ would come first on the path (python -m)
        [sys.executable, "-m", "pipeline.faces.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{code}: ragline {' '.join(args[:3])} failed: {proc.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REPO / "demo_docs")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, default=None, help="Source folder of the code to compare with.")
    args = parser.parse_args()
    sides = {"now": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    with tempfile.TemporaryDirectory() as tmp:
        indexes = {name: Path(tmp) / name for name in sides}
        for name, code in sides.items():  # built once, and searched once (the query model's export is cached)
            run(code, "--index", str(indexes[name]), "ingest", str(args.folder))
            run(code, "--index", str(indexes[name]), "search", "warm up", "--no-rerank")
        times: dict[str, list[float]] = {name: [] for name in sides}
        stats: list[float] = []
        for _ in range(args.repeat):
            for name, code in sides.items():
                times[name].append(run(code, "--index", str(indexes[name]), "ingest", str(args.folder)))
            stats.append(run(REPO, "--index", str(indexes["now"]), "stats"))
    print(
        json.dumps(
            {
                "folder": str(args.folder),
                "repeat": args.repeat,
                "noop_sync_s": {name: round(statistics.median(t), 3) for name, t in times.items()},
                "noop_sync_runs_s": {name: [round(x, 3) for x in t] for name, t in times.items()},
                "stats_s": round(statistics.median(stats), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
