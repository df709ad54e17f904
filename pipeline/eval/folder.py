"""``ragline eval --folder DIR --queries FILE.tsv``: how often a real folder's answer file ranks first.

The folder is indexed through the normal sync into a cache folder named by the folder and every setting
that changes what is written (re-used, and so not re-embedded, while nothing changed). Questions are
scored at file level: a result is right when its file's stem (the name without ``.html``, ``.rst.txt``,
``.txt``, ``.pdf``, ...) is one the question lists; any copy of that file in any folder counts, as shares
hold many. A file ranks where its best chunk ranks.

The TSV format is ``../shared/datasets/debian-dev/queries.tsv``'s: ``qid<TAB>question<TAB>stem|stem``,
lines starting with ``#`` are comments. An optional fourth column says where in the file the answer is:
``p.N`` (a page) or a heading the answering chunk's heading path contains (``-``: no place). Questions with
a place are also scored at that level: the first chunk that is in a right file *and* at the place.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from connectors import PARSERS_VERSION
from pipeline.app import Ragline, SyncReport, adapted_config
from pipeline.config import AppConfig, QdrantConfig, cache_home, with_index
from pipeline.errors import RaglineError
from pipeline.eval.evaluate import DEPTH, ModeResult, confidence_auc, latency_of, ranking_configs, run_mode
from pipeline.models.backends import backend_tag
from pipeline.models.vector_cache import CachedEmbedder
from pipeline.models.weights import canonical_model_name
from pipeline.stages.bm25 import TOKENIZER_VERSION
from pipeline.stages.chunking import INDEXED_TEXT_VERSION
from pipeline.types import Chunk, ScoredChunk

STEM_SUFFIXES = (".rst.txt", ".html", ".htm", ".txt", ".text", ".pdf", ".md", ".markdown", ".docx", ".pptx", ".eml")
"""Longest first: ``library.rst.txt`` has the stem ``library``."""
CHUNKS_PER_QUERY = DEPTH
"""Chunks retrieved per question; files are ranked by their best chunk among them."""


@dataclass(frozen=True)
class FolderQuery:
    id: str
    text: str
    stems: frozenset[str]
    where: str | None = None
    """``p.N`` or a heading (any part of the heading path, case-insensitive); None: the file is the answer."""


@dataclass(frozen=True)
class FolderEvalReport:
    folder: Path
    queries_file: Path
    queries: tuple[FolderQuery, ...]
    documents: int
    index: Path
    indexing: SyncReport
    modes: dict[str, ModeResult]
    ranks: dict[str, dict[str, int | None]]
    """Per mode, per question: the rank of the first right file (1-based), None when not in the top 10."""
    section_ranks: dict[str, dict[str, int | None]]
    """Per mode, per question with a place: the rank of the first chunk at it (among the first 10 chunks)."""
    tuning: dict[str, Any] | None = None
    """The tuning the ranking used (``ragline tune``'s report); with ``tune``, the ``@tuned`` modes'."""
    model: str = ""
    """The embedder the questions were searched with (an adapted index's own, when it has one)."""


def file_stem(source: str) -> str:
    name = PurePosixPath(source).name
    for suffix in STEM_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return PurePosixPath(name).stem or name


def load_queries(path: str | Path) -> tuple[FolderQuery, ...]:
    """The questions of a TSV file; a malformed line is a one-line error naming it."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RaglineError(f"cannot read the questions file {file}: {exc}") from None
    queries: dict[str, FolderQuery] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        stems = frozenset(s.strip() for s in parts[2].split("|") if s.strip()) if len(parts) in (3, 4) else frozenset()
        if len(parts) not in (3, 4) or not parts[0].strip() or not parts[1].strip() or not stems:
            raise RaglineError(
                f"{file}:{number}: expected qid<TAB>question<TAB>stem|stem[<TAB>place], got {line[:80]!r}"
            )
        if parts[0].strip() in queries:
            raise RaglineError(f"{file}:{number}: question id {parts[0].strip()!r} appears twice")
        where = parts[3].strip() if len(parts) == 4 and parts[3].strip() not in ("", "-") else None
        if where is not None and where.lower().startswith("p.") and not where[2:].strip().isdigit():
            raise RaglineError(f"{file}:{number}: a page place is p.N with N a number, got {where!r}")
        queries[parts[0].strip()] = FolderQuery(parts[0].strip(), parts[1].strip(), stems, where)
    if not queries:
        raise RaglineError(f"{file} holds no questions")
    return tuple(queries.values())


def first_right(ranked: Sequence[str], stems: frozenset[str], depth: int = 10) -> int | None:
    """The 1-based rank of the first file whose stem is right, within ``depth``; None if there is none."""
    for rank, source in enumerate(ranked[:depth], start=1):
        if file_stem(source) in stems:
            return rank
    return None


def at_place(chunk: Chunk, where: str) -> bool:
    """Whether the chunk lies at the labelled place: on page N (``p.N``), or under a heading containing it."""
    if where.lower().startswith("p."):
        page = int(where[2:])
        return chunk.page_start is not None and chunk.page_start <= page <= (chunk.page_end or chunk.page_start)
    return where.lower() in " > ".join(chunk.heading).lower()


def first_at_place(head: Sequence[ScoredChunk], query: FolderQuery) -> int | None:
    """The 1-based rank of the first chunk in a right file and at the question's place; None if none."""
    assert query.where is not None
    for rank, result in enumerate(head, start=1):
        if file_stem(result.chunk.source) in query.stems and at_place(result.chunk, query.where):
            return rank
    return None


def folder_metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    """Success@1, Success@5 and MRR@10 (0 for a question whose right file is not in the top 10)."""
    n = max(len(ranks), 1)
    return {
        "success@1": sum(1 for r in ranks if r == 1) / n,
        "success@5": sum(1 for r in ranks if r is not None and r <= 5) / n,
        "mrr@10": sum(1.0 / r for r in ranks if r is not None) / n,
    }


def folder_fingerprint(folder: Path, config: AppConfig) -> str:
    settings = {
        "folder": str(folder),
        "model": canonical_model_name(config.embedding.model),
        "chunking": config.chunking.model_dump(),
        "source": config.source.model_dump(),
        "bm25": config.bm25.model_dump(),
        "tokenizer": TOKENIZER_VERSION,
        "indexed_text": INDEXED_TEXT_VERSION,
        "parsers": PARSERS_VERSION,
        "embedding_backend": backend_tag(config.embedding.backend),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@contextmanager
def folder_index(
    folder: Path, config: AppConfig, index: str | Path | None = None, progress: bool = False
) -> Iterator[tuple[Ragline, SyncReport]]:
    """An app on an index of ``folder``, synced (so re-used while the folder and settings are unchanged)."""
    target = (
        Path(index).expanduser()
        if index
        else cache_home() / "eval" / f"folder-{folder.name}-{folder_fingerprint(folder, config)}"
    )
    # Always embedded: an evaluation never writes into a configured Qdrant server; an adapted index is searched
    # with its adapted model.
    local = adapted_config(with_index(config, target).model_copy(update={"qdrant": QdrantConfig()}))
    embedder = CachedEmbedder(local.embedding, cache_home() / "embeddings.sqlite")
    try:
        with Ragline(local, embedder) as app:
            if {s.root for s in app.store(create=True).documents().values()} - {folder.as_uri()}:
                raise RaglineError(f"index {target} holds documents of other folders; evaluate into an empty folder")
            yield app, app.ingest(folder, progress=progress)
    finally:
        embedder.close()


def evaluate_folder(
    folder: str | Path,
    queries_file: str | Path,
    config: AppConfig,
    modes: Sequence[str] = ("bm25", "dense", "hybrid"),
    index: str | Path | None = None,
    progress: bool = False,
    tune: bool = False,
) -> FolderEvalReport:
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise RaglineError(f"cannot evaluate {str(folder)!r}: not a folder")
    queries = load_queries(queries_file)
    with folder_index(root, config, index, progress) as (app, report):
        if "hybrid+rerank" in modes:
            app.reranker.load()  # a missing reranker is one line before any question runs
        results: dict[str, ModeResult] = {}
        ranks: dict[str, dict[str, int | None]] = {}
        sections: dict[str, dict[str, int | None]] = {}
        configs, tuning = ranking_configs(app, tune, progress)
        for (suffix, retrieval), mode in itertools.product(configs.items(), modes):
            name = mode + suffix
            run = run_mode(app, {q.id: q.text for q in queries}, mode, CHUNKS_PER_QUERY, progress, retrieval)
            ranks[name] = {q.id: first_right(run.ranked[q.id], q.stems) for q in queries}
            sections[name] = {q.id: first_at_place(run.heads[q.id], q) for q in queries if q.where}
            metrics = folder_metrics(list(ranks[name].values()))
            metrics |= confidence_auc(run, {q for q, r in ranks[name].items() if r == 1})
            if sections[name]:
                at = folder_metrics(list(sections[name].values()))
                metrics.update({"section_success@1": at["success@1"], "section_mrr@10": at["mrr@10"]})
            per_query = tuple(
                {
                    "id": q.id,
                    "query": q.text,
                    "rank": ranks[name][q.id],
                    **({"place_rank": sections[name][q.id]} if q.where else {}),
                    "top": run.ranked[q.id][:3],
                    "right": sorted(q.stems),
                }
                for q in queries
            )
            results[name] = ModeResult(metrics, latency_of(run.timings), per_query)
        documents = len(app.store().documents())
    return FolderEvalReport(
        root,
        Path(queries_file),
        queries,
        documents,
        app.index_path,
        report,
        results,
        ranks,
        sections,
        tuning,
        app.embedder.name,
    )
