"""``ragline eval``: index a BEIR corpus through the normal pipeline and measure each mode.

Two ways to cut the corpus into units:

* ``documents`` (default, the BEIR/MTEB protocol): title and text joined by a
  space make one unit; the embedder reads its first ``max_seq_length`` tokens
  and BM25 reads all of it. This is what published figures are measured on.
* ``chunks``: the configured chunker. A document then ranks where its best
  chunk ranks (max chunk score), so long-document corpora can be evaluated.

The index is kept in a cache folder named by a fingerprint of the corpus bytes
and every setting that changes what is written (model, units, chunking, BM25
k1/b, tokenizer, and the embedding backend unless it is torch). Evaluating the
same corpus and settings again re-uses it; sync's content hashes make that a
no-op (nothing is embedded).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline.app import Ragline, adapted_config
from pipeline.config import AppConfig, QdrantConfig, RetrievalConfig, cache_home, with_index
from pipeline.errors import RaglineError
from pipeline.eval.beir import BeirDataset, load_beir
from pipeline.eval.metrics import evaluate_run, per_query, roc_auc
from pipeline.models.backends import backend_tag
from pipeline.models.reranker import CrossEncoderReranker
from pipeline.models.vector_cache import CachedEmbedder
from pipeline.models.weights import canonical_model_name
from pipeline.retrieval import HybridRetriever, Mode, rerank_head
from pipeline.stages.bm25 import TOKENIZER_VERSION
from pipeline.stages.chunking import INDEXED_TEXT_VERSION, chunk_id
from pipeline.sync import SyncReport
from pipeline.types import Chunk, Document, ScoredChunk, Section, document_id

Units = Literal["documents", "chunks"]
EVAL_MODES = ("bm25", "dense", "hybrid", "hybrid+rerank")
DEPTH = 100  # Recall@100 needs a hundred documents per query


@dataclass(frozen=True)
class ModeResult:
    metrics: dict[str, float]
    latency_ms: dict[str, dict[str, float]]
    """Per stage (embed, retrieve, fuse, rerank, total): p50 and p95 over the queries."""
    per_query: tuple[dict[str, Any], ...] = ()
    """Each query's result: its id and text, its scores or rank, what ranked first (``eval --per-query``)."""


@dataclass(frozen=True)
class EvalReport:
    dataset: str
    split: str
    queries: int
    documents: int
    units: Units
    index: Path
    indexing: SyncReport
    modes: dict[str, ModeResult]
    tuning: dict[str, Any] | None = None
    """The tuning the ranking used (``ragline tune``'s report); with ``tune``, the ``@tuned`` modes'."""
    model: str = ""
    """The embedder the queries were searched with (an adapted index's own, when it has one)."""


def parse_modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in EVAL_MODES]
    if unknown or not modes:
        raise RaglineError(f"unknown eval mode {', '.join(unknown) or '(none)'}; choose from {', '.join(EVAL_MODES)}")
    return modes


def beir_documents(dataset: BeirDataset, root_uri: str) -> list[Document]:
    """One Document per corpus entry; the title is its heading, so each chunk carries it."""
    documents = []
    for entry in dataset.corpus:
        digest = hashlib.sha256(f"{entry.title}\x00{entry.text}".encode()).hexdigest()
        documents.append(
            Document(
                id=document_id(root_uri, entry.id),
                source=entry.id,
                sections=(Section(entry.text, heading=(entry.title,) if entry.title else ()),),
                content_hash=digest,
                metadata={"title": entry.title} if entry.title else {},
            )
        )
    return documents


WHOLE_DOCUMENT_VERSION = "title-as-context@1"


def whole_document(document: Document) -> list[Chunk]:
    """The BEIR unit: the title, then the text, as BEIR and MTEB encode them.

    The title travels in the chunk's metadata, so the indexed text is "title\\ntext" (the same words and word
    pieces as BEIR's "title text") while the chunk itself is the text alone: a citation does not repeat the
    title, and ``adapt`` can pair the title with the text it names.
    """
    title = str(document.metadata.get("title", "")).strip()
    if not (title or document.text.strip()):
        return []
    return [
        Chunk(
            id=chunk_id(document.id, 0, f"{title}\x00{document.text}"),
            document_id=document.id,
            source=document.source,
            text=document.text,
            ordinal=0,
            start=0,
            end=len(document.text),
            metadata={"title": title} if title else {},
        )
    ]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_fingerprint(corpus_file: Path, config: AppConfig, model: str, units: Units) -> str:
    digest = hashlib.sha256(file_hash(corpus_file).encode())
    settings = {
        "model": model,
        "units": units,
        "chunking": config.chunking.model_dump() if units == "chunks" else WHOLE_DOCUMENT_VERSION,
        "bm25": config.bm25.model_dump(),
        "tokenizer": TOKENIZER_VERSION,
        "indexed_text": INDEXED_TEXT_VERSION,
    }
    tag = backend_tag(config.embedding.backend)
    if tag:  # only when not torch, so that existing fp32 indexes keep their folder
        settings["embedding_backend"] = tag
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def default_index_folder(dataset: BeirDataset, fingerprint: str, units: Units) -> Path:
    return cache_home() / "eval" / f"{dataset.name}-{units}-{fingerprint}"


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}


def _documents_in_order(results: Iterable[ScoredChunk], limit: int) -> list[str]:
    """Each document once, where its best chunk ranks (max chunk score)."""
    ranked = list(dict.fromkeys(r.chunk.source for r in results))
    return ranked[:limit]


def latency_of(timings: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50 and p95 of each stage over the queries that ran it."""
    stages = sorted({stage for t in timings for stage in t})
    return {s: _percentiles([t[s] for t in timings if s in t]) for s in stages}


@dataclass(frozen=True)
class ModeRun:
    ranked: dict[str, list[str]]
    """Per query, the sources, each once, where its best chunk ranks."""
    heads: dict[str, list[ScoredChunk]]
    """Per query, the first ``HEAD`` chunks: where the folder evaluation looks for a labelled page or heading."""
    timings: list[dict[str, float]]
    """Per query, the time of each stage."""
    confidence: dict[str, float]
    """Per query with results, the search's confidence that its first result is relevant."""


HEAD = 10


def run_mode(
    app: Ragline,
    queries: dict[str, str],
    mode: str,
    chunks_per_query: int,
    progress: bool = False,
    retrieval: RetrievalConfig | None = None,
) -> ModeRun:
    """Every query run through ``mode`` (with ``retrieval``'s ranking settings; default: the app's in effect):
    ranked sources, first chunks and stage timings."""
    retriever = HybridRetriever(app.store(), app.embedder, retrieval or app.retrieval_config, cache_size=0)
    base: Mode = "hybrid" if mode == "hybrid+rerank" else mode  # type: ignore[assignment]
    rerank_depth = app.config.rerank.candidates

    def one(query: str) -> tuple[list[str], list[ScoredChunk], dict[str, float], float | None]:
        started = time.perf_counter()
        retrieved = retriever.retrieve(query, top_k=chunks_per_query, mode=base)
        timings = dict(retrieved.timings_ms)
        results = retrieved.results
        if mode == "hybrid+rerank":
            t0 = time.perf_counter()
            results = rerank_head(app.reranker, query, results, rerank_depth)
            timings["rerank"] = (time.perf_counter() - t0) * 1e3
        ranked = _documents_in_order(results, DEPTH)
        timings["total"] = (time.perf_counter() - started) * 1e3
        return ranked, results[:HEAD], timings, retrieved.confidence

    items = list(queries.items())
    one(items[0][1])  # warm-up: model load and first-call costs are not query latency
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=mode, unit="query", leave=False)
    run = ModeRun({}, {}, [], {})
    for query_id, text in items:
        ranked, head, timing, sure = one(text) if text.strip() else ([], [], {"total": 0.0}, None)
        run.ranked[query_id], run.heads[query_id] = ranked, head
        run.timings.append(timing)
        if sure is not None:
            run.confidence[query_id] = sure
    return run


def beir_per_query(dataset: BeirDataset, run: ModeRun) -> tuple[dict[str, Any], ...]:
    """Each judged query: its scores, the rank of its first relevant document (None: not in the top 10), the
    first three documents and the relevant ones, so a user sees which questions fail and what won instead."""
    scores = per_query(dataset.qrels, run.ranked, 10, DEPTH)
    rows = []
    for query_id in sorted(scores):
        relevant = sorted(d for d, grade in dataset.qrels[query_id].items() if grade > 0)
        ranked = run.ranked.get(query_id, [])
        rank = next((n for n, d in enumerate(ranked[:10], start=1) if d in relevant), None)
        rows.append(
            {
                "id": query_id,
                "query": dataset.queries.get(query_id, ""),
                "rank": rank,
                **{name: round(value, 4) for name, value in scores[query_id].items()},
                "top": ranked[:3],
                "relevant": relevant,
            }
        )
    return tuple(rows)


def confidence_auc(run: ModeRun, right: Collection[str]) -> dict[str, float]:
    """``confidence_auc``: the ROC AUC of the searches' confidence against their first result being right
    (left out when every first result is right, or every one wrong); ``right``: the queries whose is."""
    scored = sorted(run.confidence)
    auc = roc_auc([run.confidence[q] for q in scored], [q in right for q in scored])
    return {} if auc is None else {"confidence_auc": auc}


def ranking_configs(
    app: Ragline, tune: bool, progress: bool
) -> tuple[dict[str, RetrievalConfig], dict[str, Any] | None]:
    """The ranking settings to measure, by the suffix of their modes' names, and the tuning behind them.

    Without ``tune``: the app's settings in effect (a tuning saved with the index included) as plain mode
    names. With ``tune``: the index is tuned first (``pipeline.eval.tune``), then measured untuned (plain
    names) and tuned (``hybrid@tuned``, ...), side by side in one run."""
    if not tune:
        return {"": app.retrieval_config}, app.store().tuning()
    from pipeline.eval.tune import tune as tune_index

    untuned = app.config.retrieval.model_copy(update={"tuned": False})
    try:
        tuning = tune_index(app, progress=progress).as_dict()
    except RaglineError as exc:  # too small an index, or one-window documents: measured untuned, and why
        return {"": untuned}, {"not_tuned": str(exc)}
    return {"": untuned, "@tuned": app.retrieval_config}, tuning


@contextmanager
def eval_index(
    dataset: BeirDataset,
    config: AppConfig,
    units: Units = "documents",
    index: str | Path | None = None,
    progress: bool = False,
) -> Iterator[tuple[Ragline, SyncReport]]:
    """An app on an index of the dataset's corpus: built, or re-used when it is up to date."""
    fingerprint = index_fingerprint(dataset.corpus_file, config, canonical_model_name(config.embedding.model), units)
    folder = Path(index).expanduser() if index else default_index_folder(dataset, fingerprint, units)
    # Always embedded: an evaluation never writes a corpus into a configured Qdrant server. An index that
    # `ragline adapt` fitted is searched with its adapted model, as the app would.
    local = adapted_config(with_index(config, folder).model_copy(update={"qdrant": QdrantConfig()}))
    embedder = CachedEmbedder(local.embedding, cache_home() / "embeddings.sqlite")
    try:
        with Ragline(local, embedder) as app:
            root_uri = dataset.corpus_file.as_uri()
            if {s.root for s in app.store(create=True).documents().values()} - {root_uri}:
                raise RaglineError(f"index {folder} holds documents of other sources; evaluate into an empty folder")
            split = whole_document if units == "documents" else None
            report = app.ingest_documents(beir_documents(dataset, root_uri), root_uri, split, progress)
            yield app, report
    finally:
        embedder.close()


def evaluate_beir(
    folder: str | Path,
    config: AppConfig,
    split: str = "test",
    modes: Sequence[str] = ("bm25", "dense", "hybrid"),
    units: Units = "documents",
    index: str | Path | None = None,
    progress: bool = False,
    tune: bool = False,
) -> EvalReport:
    dataset = load_beir(folder, split)
    reranker = CrossEncoderReranker(config.rerank)
    if "hybrid+rerank" in modes:
        reranker.load()  # a missing reranker fails before any indexing
    with eval_index(dataset, config, units, index, progress) as (app, report):
        app.reranker = reranker
        per_doc = max(1, math.ceil(app.store().count() / max(len(dataset.corpus), 1)))
        results: dict[str, ModeResult] = {}
        configs, tuning = ranking_configs(app, tune, progress)
        for (suffix, retrieval), mode in itertools.product(configs.items(), modes):
            run = run_mode(app, dataset.queries, mode, DEPTH * per_doc, progress, retrieval)
            metrics = evaluate_run(dataset.qrels, run.ranked, 10, DEPTH)
            right = {q for q, docs in run.ranked.items() if docs and dataset.qrels.get(q, {}).get(docs[0], 0) > 0}
            metrics |= confidence_auc(run, right)
            results[mode + suffix] = ModeResult(metrics, latency_of(run.timings), beir_per_query(dataset, run))
    return EvalReport(
        dataset=dataset.name,
        split=split,
        queries=len(dataset.queries),
        documents=len(dataset.corpus),
        units=units,
        index=app.index_path,
        indexing=report,
        modes=results,
        tuning=tuning,
        model=app.embedder.name,
    )
