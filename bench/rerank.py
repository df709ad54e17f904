"""Rerank latency for top-20 and top-50 candidates of 256 tokens; prints one JSON object.

ragline's ``CrossEncoderReranker`` against the baseline a user would write:
``CrossEncoder.predict`` over the (query, passage) pairs, then a sort. Both use
the same weights; runs alternate and medians are reported. With no model given,
a cross-encoder is built from the packaged MiniLM with a fresh one-logit head:
latency depends on the architecture (6 layers, 384 wide, as ms-marco-MiniLM-L-6),
not on what the head learned. ragline's reranker runs its backend's ONNX export (fp32 for
``torch``, int8 for ``onnx-int8``), written on its first load, without PyTorch
(pipeline/models/backends.py); ``runs_on`` says which ran.

    python bench/rerank.py [--model PATH] [--backend onnx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def passages(count: int, tokens: int, tokenizer: Any) -> list[str]:
    """Real sentences (the shipped demo documents), cut to exactly ``tokens`` tokens each."""
    root = Path(__file__).resolve().parents[1] / "demo_docs"
    words = " ".join(p.read_text(encoding="utf-8", errors="ignore") for p in sorted(root.glob("*.md"))).split()
    rng = random.Random(0)
    out = []
    for _ in range(count):
        start = rng.randrange(len(words))
        text = " ".join((words[start:] + words)[: tokens * 2])
        ids = tokenizer.encode(text, add_special_tokens=False)[:tokens]
        out.append(tokenizer.decode(ids))
    return out


def fresh_cross_encoder(folder: Path) -> Path:
    from sentence_transformers import CrossEncoder

    from pipeline.models.weights import packaged_minilm_path

    CrossEncoder(str(packaged_minilm_path()), num_labels=1, device="cpu").save(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="A cross-encoder folder (default: MiniLM + fresh head).")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()

    from pipeline.config import parse_config
    from pipeline.models.reranker import CrossEncoderReranker
    from pipeline.types import Chunk, ScoredChunk

    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model or str(fresh_cross_encoder(Path(scratch) / "ce"))
        settings: dict[str, Any] = {"model": model_path, "max_length": 512}
        if args.backend != "torch":
            settings["backend"] = args.backend
        reranker = CrossEncoderReranker(parse_config({"rerank": settings}).rerank)
        model = reranker.load()
        baseline = _baseline_model(model_path)
        texts = passages(50, args.tokens, baseline.tokenizer)
        query = "how often should the machine be descaled and which cleaning program removes limescale"
        candidates = [
            ScoredChunk(Chunk(str(i), "d", "s", t, i, 0, len(t)), fused=1.0 / (i + 1)) for i, t in enumerate(texts)
        ]
        reranker.rerank(query, candidates[:20], top_n=20)
        baseline.predict([(query, t) for t in texts[:20]])
        out: dict[str, Any] = {}
        for n in (20, 50):
            ours, theirs = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                reranker.rerank(query, candidates[:n], top_n=n)
                ours.append((time.perf_counter() - started) * 1e3)
                started = time.perf_counter()
                scores = baseline.predict([(query, t) for t in texts[:n]], batch_size=16)
                sorted(zip(scores, texts[:n]), key=lambda pair: -pair[0])
                theirs.append((time.perf_counter() - started) * 1e3)
            out[f"top{n}_p50_ms"] = round(float(np.percentile(ours, 50)), 2)
            out[f"top{n}_p95_ms"] = round(float(np.percentile(ours, 95)), 2)
            out[f"baseline_top{n}_p50_ms"] = round(float(np.percentile(theirs, 50)), 2)
            out[f"top{n}_speedup"] = round(out[f"baseline_top{n}_p50_ms"] / out[f"top{n}_p50_ms"], 2)
        onnx = type(model).__name__ == "OnnxCrossEncoder"
        runs_on = f"{args.backend} ONNX runner" if onnx else "sentence-transformers"
        out.update(
            tokens=args.tokens,
            backend=args.backend,
            runs_on=runs_on,
            model=args.model or "all-MiniLM-L6-v2 + fresh 1-logit head",
            repeat=args.repeat,
            machine=f"{platform.machine()}, {os.cpu_count()} cores",
        )
        print(json.dumps(out))


def _baseline_model(path: str) -> Any:
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, device="cpu")


if __name__ == "__main__":
    main()
