"""Inference backends compared: PyTorch fp32 against ONNX Runtime int8 (``backend = "onnx-int8"``) for the
embedder and the cross-encoder; prints one JSON object.

Embedding: SciFact abstracts (title + text) cut to ``--tokens`` tokens, the size of a chunk, embedded by
ragline's embedder with each backend at the same batch size; runs alternate (fp32, int8, fp32, ...) and
chunks/s is the median run. Reranking: a SciFact query (the next one each round) against the first 20 and
50 abstracts of at least ``--passage-tokens`` tokens, cut to that many, through ``CrossEncoderReranker.rerank`` (tokenising included,
as a search pays it); alternating, p50 over ``--rerank-repeat`` calls. The cross-encoder is
/work/models/scifact-reranker when it exists (note: a model trained on shorter inputs keeps its own max
length, reported as ``rerank_max_length``), else the packaged MiniLM with a fresh one-logit head (timing
depends on the architecture, not on what the head learned); ``--rerank-model fresh`` forces the latter.

The fp32 reranker is timed twice: PyTorch itself (``rerank_fp32_*``) and the fp32 ONNX export that
``backend = "torch"`` runs on once it exists (``rerank_onnx_fp32_*``; pipeline/models/onnx/runtime.py).
The int8 export goes to a scratch folder, so it is timed (``int8_export_s``) and never read from an old run.
Also reported, as a consistency check (not a quality claim): the cosine of int8 to fp32 vectors, and how
the two rerankers' scores agree (Spearman; top-5 overlap).

    python bench/backends.py --texts 2000 --batch-size 32 --repeat 3    # about 8 minutes on 2 cores

``embed_speedup`` is the ratio of the median runs, ``embed_speedup_paired`` the median of each round's ratio
(steadier when the machine is shared: both runs of a round see about the same load).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
TRAINED_RERANKER = Path("/work/models/scifact-reranker")
BACKENDS = ("torch", "onnx-int8")


def read_jsonl(file: Path, limit: int) -> list[dict[str, Any]]:
    rows = []
    with file.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= limit:
                break
    return rows


def cut(text: str, tokens: int, counter: Any) -> tuple[str, int]:
    """The text up to its ``tokens``-th token (on a token border) and how many tokens that is."""
    spans = counter.offsets(text)
    if len(spans) <= tokens:
        return text, len(spans)
    return text[: spans[tokens - 1][1]], tokens


def corpus_texts(corpus: Path, limit: int) -> list[str]:
    return [f"{row.get('title', '')} {row.get('text', '')}".strip() for row in read_jsonl(corpus, limit)]


def alternate(runs: dict[str, Callable[[], Any]], repeat: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds of each run, the backends taking turns so that a busy spell on a shared machine hits both;
    also the last result of each."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            results[name] = run()
            seconds[name].append(time.perf_counter() - started)
    return seconds, results


def bench_embedding(args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    from pipeline.config import EmbeddingConfig
    from pipeline.models.embedder import SentenceTransformerEmbedder

    embedders = {
        b: SentenceTransformerEmbedder(EmbeddingConfig(batch_size=args.batch_size, backend=b), cache) for b in BACKENDS
    }
    counter = embedders["torch"].tokens
    cuts = [cut(t, args.tokens, counter) for t in corpus_texts(args.beir / "corpus.jsonl", args.texts)]
    texts = [text for text, _ in cuts]
    embedders["torch"].embed(texts[:8])
    started = time.perf_counter()
    embedders["onnx-int8"].embed(texts[:8])  # loads, and exports once
    export_s = time.perf_counter() - started
    runs: dict[str, Callable[[], Any]] = {b: partial(e.embed, texts) for b, e in embedders.items()}
    seconds, vectors = alternate(runs, args.repeat)
    rates = {b: len(texts) / statistics.median(s) for b, s in seconds.items()}
    paired = statistics.median(f / i for f, i in zip(seconds["torch"], seconds["onnx-int8"]))
    cosine = np.sum(vectors["torch"] * vectors["onnx-int8"], axis=1)
    return {
        "texts": len(texts),
        "mean_tokens": round(float(np.mean([n for _, n in cuts])), 1),
        "batch_size": args.batch_size,
        "embed_fp32_chunks_per_s": round(rates["torch"], 2),
        "embed_int8_chunks_per_s": round(rates["onnx-int8"], 2),
        "embed_speedup": round(rates["onnx-int8"] / rates["torch"], 2),
        "embed_speedup_paired": round(paired, 2),
        "embed_runs_s": {b: [round(x, 2) for x in s] for b, s in seconds.items()},
        "embed_cosine_int8_fp32": {"mean": round(float(cosine.mean()), 4), "min": round(float(cosine.min()), 4)},
        "int8_export_s": round(export_s, 2),
    }


def fresh_cross_encoder(folder: Path) -> Path:
    from sentence_transformers import CrossEncoder

    from pipeline.models.weights import packaged_minilm_path

    CrossEncoder(str(packaged_minilm_path()), num_labels=1, device="cpu").save(str(folder))
    return folder


def rerank_candidates(args: argparse.Namespace, counter: Any, count: int) -> list[Any]:
    from pipeline.types import Chunk, ScoredChunk

    passages = []
    for text in corpus_texts(args.beir / "corpus.jsonl", 4000):
        passage, tokens = cut(text, args.passage_tokens, counter)
        if tokens == args.passage_tokens:
            passages.append(passage)
        if len(passages) == count:
            break
    return [ScoredChunk(Chunk(str(i), "d", "s", t, i, 0, len(t)), fused=1.0 / (i + 1)) for i, t in enumerate(passages)]


def rerank_call(reranker: Any, queries: Sequence[str], head: Sequence[Any]) -> Callable[[], Any]:
    """One rerank of ``head`` per call, each call with the next query (both backends see the same sequence)."""
    calls = iter(range(10**9))
    return lambda: reranker.rerank(queries[next(calls) % len(queries)], head, top_n=len(head))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def bench_rerank(args: argparse.Namespace, cache: Path, scratch: Path, sizes: Sequence[int]) -> dict[str, Any]:
    from pipeline.config import RerankConfig
    from pipeline.models.embedder import load_token_counter
    from pipeline.models.reranker import CrossEncoderReranker

    use_trained = args.rerank_model is None and TRAINED_RERANKER.is_dir()
    model = args.rerank_model if args.rerank_model not in (None, "fresh") else None
    model = model or (str(TRAINED_RERANKER) if use_trained else str(fresh_cross_encoder(scratch / "ce")))

    class TorchOnly(CrossEncoderReranker):
        """PyTorch itself: the fp32 ONNX export that the torch backend switches to is bypassed."""

        def _runner(self, plan: object) -> None:
            return None

    rerankers = {
        "torch": TorchOnly(RerankConfig(model=model), cache),
        "onnx-fp32": CrossEncoderReranker(RerankConfig(model=model), cache),
        "onnx-int8": CrossEncoderReranker(RerankConfig(model=model, backend="onnx-int8"), cache),
    }
    loaded = {b: r.load() for b, r in rerankers.items()}
    candidates = rerank_candidates(args, load_token_counter(model), max(sizes))
    queries = [row["text"] for row in read_jsonl(args.beir / "queries.jsonl", args.rerank_repeat)]
    out: dict[str, Any] = {"rerank_model": model, "rerank_max_length": int(loaded["torch"].max_seq_length)}
    speedups = []
    for size in sizes:
        head = candidates[:size]
        runs = {b: rerank_call(r, queries, head) for b, r in rerankers.items()}
        alternate(runs, 2)  # warm-up: first-call costs are not latency
        seconds, _ = alternate(runs, args.rerank_repeat)
        p50 = {b: statistics.median(s) * 1e3 for b, s in seconds.items()}
        out[f"rerank_fp32_top{size}_p50_ms"] = round(p50["torch"], 1)
        out[f"rerank_int8_top{size}_p50_ms"] = round(p50["onnx-int8"], 1)
        out[f"rerank_onnx_fp32_top{size}_p50_ms"] = round(p50["onnx-fp32"], 1)
        out[f"rerank_speedup_top{size}"] = round(p50["torch"] / p50["onnx-int8"], 2)
        speedups.append(p50["torch"] / p50["onnx-int8"])
    pairs = [(queries[0], c.chunk.text) for c in candidates[: max(sizes)]]
    scores = {b: np.asarray(m.predict(pairs, show_progress_bar=False), dtype=np.float64) for b, m in loaded.items()}
    top = {b: set(np.argsort(-s)[:5].tolist()) for b, s in scores.items()}
    out["rerank_speedup"] = round(min(speedups), 2)
    out["rerank_spearman_int8_fp32"] = round(spearman(scores["torch"], scores["onnx-int8"]), 4)
    out["rerank_top5_overlap"] = len(top["torch"] & top["onnx-int8"]) / 5
    return out


def machine() -> dict[str, Any]:
    import torch

    from pipeline.models.onnx.quantize import quantisation_recipe

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "int8_target": quantisation_recipe().target,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beir", type=Path, default=SCIFACT, help="A BEIR folder (corpus.jsonl, queries.jsonl).")
    parser.add_argument("--texts", type=int, default=1000, help="Texts to embed per run.")
    parser.add_argument("--tokens", type=int, default=200, help="Each text is cut to this many tokens.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="Embedding runs per backend (median).")
    parser.add_argument("--rerank-model", default=None, help="A cross-encoder folder, or 'fresh'.")
    parser.add_argument("--rerank-sizes", default="20,50", help="Candidate counts to rerank.")
    parser.add_argument("--passage-tokens", type=int, default=256)
    parser.add_argument("--rerank-repeat", type=int, default=15, help="Rerank calls per backend and size (p50).")
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-rerank", action="store_true")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    started = time.perf_counter()
    out: dict[str, Any] = machine()
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "models"
        if not args.skip_embed:
            out.update(bench_embedding(args, cache))
        if not args.skip_rerank:
            sizes = [int(s) for s in args.rerank_sizes.split(",") if s.strip()]
            out.update(bench_rerank(args, cache, Path(scratch), sizes))
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
