"""Cold start: a new `ragline search` process to its first printed result; prints one JSON object.

Also the time `import pipeline` adds to a bare interpreter. The baseline is the
naive script: import sentence-transformers, load the model, embed the query and
take the best of the same stored vectors with numpy. Runs alternate; medians.

    python bench/coldstart.py [--index DIR]   (default: the demo documents, indexed first)
    python bench/coldstart.py --reranker PATH  (also a reranked search with that cross-encoder)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QUERY = "How often should I descale the Aurora 2 espresso machine?"
BASELINE = """
import sys, numpy as np
from sentence_transformers import SentenceTransformer
from pipeline.models.weights import packaged_minilm_path
model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
data = np.load(sys.argv[1])
query = model.encode([sys.argv[2]], normalize_embeddings=True)[0]
print(int(np.argmax(data @ query)), flush=True)
"""


def first_line_s(command: list[str]) -> float:
    """Seconds from process start to its first line on stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.communicate()
    if process.returncode != 0 or not line.strip():
        raise SystemExit(f"{command[:4]} failed (exit {process.returncode})")
    return elapsed


def run_s(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--reranker", type=Path, default=None, help="Also time a reranked search with this cross-encoder"
    )
    args = parser.parse_args()
    ragline = [sys.executable, "-m", "pipeline.faces.cli"]
    with tempfile.TemporaryDirectory() as scratch:
        index = args.index
        if index is None:
            index = Path(scratch) / "index"
            docs = Path(__file__).resolve().parents[1] / "demo_docs"
            subprocess.run([*ragline, "--index", str(index), "ingest", str(docs)], check=True, capture_output=True)
        vectors = Path(scratch) / "vectors.npy"
        _export_vectors(index, vectors)
        search = [*ragline, "--index", str(index), "search", QUERY, "-k", "1", "--no-rerank"]
        reranked: list[float] = []
        if args.reranker:
            config = Path(scratch) / "ragline.toml"
            config.write_text(f'[rerank]\nmodel = "{args.reranker.resolve()}"\non_failure = "stop"\n', encoding="utf-8")
            with_rerank = [*ragline, "--config", str(config), *search[3:-1]]
            first_line_s(with_rerank)  # the first reranked search writes the cross-encoder's ONNX export
            reranked = [first_line_s(with_rerank) for _ in range(args.repeat)]
        naive = [sys.executable, "-c", BASELINE, str(vectors), QUERY]
        ours, theirs, imports, bare = [], [], [], []
        for _ in range(args.repeat):
            ours.append(first_line_s(search))
            theirs.append(first_line_s(naive))
            imports.append(run_s("import pipeline, pipeline.faces.cli"))
            bare.append(run_s("pass"))
    first, base = statistics.median(ours), statistics.median(theirs)
    print(
        json.dumps(
            {
                "first_result_s": round(first, 3),
                "baseline_first_result_s": round(base, 3),
                "ratio": round(first / base, 3),
                **({"first_result_reranked_s": round(statistics.median(reranked), 3)} if reranked else {}),
                "import_s": round(statistics.median(imports) - statistics.median(bare), 3),
                "interpreter_s": round(statistics.median(bare), 3),
                "repeat": args.repeat,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )


def _export_vectors(index: Path, out: Path) -> None:
    from pipeline.stores.edge import EdgeStore

    with EdgeStore.open(index) as store:
        np.save(out, np.asarray([p.dense for batch in store.export_points() for p in batch], dtype=np.float32))


if __name__ == "__main__":
    main()
