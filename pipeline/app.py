"""The Python API: one object that every face (CLI, HTTP) is a thin shell over. Composition only: it opens
the store, holds the models, and wires sync, retrieval, reranking, prompts and whole-index operations.

Nothing heavy happens in the constructor; the index opens, and models load, on first use.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import AsyncGenerator, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors import worker_main
from connectors.formats import SUPPORTED_EXTENSIONS
from connectors.watch import Changes
from pipeline import lifecycle
from pipeline.access import ADMIN, Reader
from pipeline.config import TUNABLE, AppConfig, Fusion, RetrievalConfig, config_to_dict, load_config
from pipeline.errors import IndexUnavailableError, ModelUnavailableError, RaglineError
from pipeline.filters import SearchFilter, check_filter
from pipeline.lifecycle import Moved
from pipeline.lifecycle.verify import VerifyReport
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.reranker import CrossEncoderReranker
from pipeline.models.weights import canonical_model_name
from pipeline.retrieval import HybridRetriever, Mode, rerank_head
from pipeline.stages.bm25 import TOKENIZER_VERSION, TOKENIZERS
from pipeline.stages.followup import standalone
from pipeline.stages.highlights import highlight
from pipeline.stages.llm import astream, complete, stream
from pipeline.stages.prompt import Prompt, build_prompt
from pipeline.stores import CHUNK_IDS, IndexMeta, Store, dense_coverage, open_store, roots
from pipeline.stores.folder import ADAPTED_FILE, check_space, read_json
from pipeline.stores.schema import PAYLOAD_FIELDS
from pipeline.sync import Progress, Splitter, SyncReport, file_grant, sync_documents, sync_folder
from pipeline.tracing import span, stage
from pipeline.types import Document, ScoredChunk, Turn, document_id

READABLE_TYPES = frozenset(ext.lstrip(".") for ext in SUPPORTED_EXTENSIONS)
"""File types ragline reads by name: ``--type`` may ask for one the index holds no file of (an empty answer)."""

__all__ = ["Answer", "Moved", "Prompt", "Ragline", "SearchResponse", "SyncReport", "VerifyReport"]


@dataclass(frozen=True)
class SearchResponse:
    query: str
    results: list[ScoredChunk]
    timings_ms: dict[str, float]
    reranked: bool
    notices: tuple[str, ...] = ()
    confidence: float | None = None
    """How likely the first-stage first result is relevant, 0-1 (pipeline/retrieval/confidence.py); None: no result."""
    low_confidence: bool = False
    """``confidence`` is under ``retrieval.low_confidence``: the context may not hold the answer."""
    searched_query: str = ""
    """What was searched: ``query`` itself, or, after a chat history, the standalone query made of both."""
    coverage: float = 1.0
    """The share of the index's chunks that have their dense vectors: under 1 while a sync is still embedding,
    when dense search sees only that share (BM25 sees every chunk written)."""


@dataclass(frozen=True)
class Answer:
    search: SearchResponse
    prompt: Prompt
    answer: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class Ragline:
    """Index folders, search them, and build cited prompts, on one index."""

    def __init__(self, config: AppConfig | None = None, embedder: SentenceTransformerEmbedder | None = None) -> None:
        worker_main.stop_if_rerun()  # a parser worker re-running an unguarded script goes back to parsing here
        self.config = adapted_config(config or load_config())
        # The models' ONNX exports (fp32 and onnx-int8) go to the user cache, ~/.cache/ragline/onnx, keyed by the
        # weights and the quantisation recipe: every index on this machine shares one export of a model.
        self.embedder = embedder or SentenceTransformerEmbedder(self.config.embedding)
        self.reranker = CrossEncoderReranker(self.config.rerank)
        self._store: Store | None = None
        self._retriever: HybridRetriever | None = None
        self._labels: dict[str, roots.Root] | None = None  # the roots' record, read once per sync, not per search
        self._opening = threading.RLock()  # the HTTP API opens the index from worker threads
        self._idle = threading.Condition(self._opening)
        self._syncing = threading.Lock()
        self._searching = 0  # searches running: a swap waits for them, since a shard closed under a query fails
        self._swapping = False  # and new searches wait for the swap, or a steady stream of them would starve it

    @property
    def index_path(self) -> Path:
        return Path(self.config.index.path).expanduser().resolve()

    def _meta(self) -> IndexMeta:
        config = self.config
        quantized = config.qdrant.quantization if config.qdrant.enabled else config.index.quantization
        return IndexMeta(
            model=self.embedder.name,
            dimension=self.embedder.dimension,
            k1=self.config.bm25.k1,
            b=self.config.bm25.b,
            tokenizer=TOKENIZER_VERSION,
            avg_len=self.config.bm25.avg_len,
            chunk_ids=CHUNK_IDS,
            quantization="" if quantized == "none" else quantized,
        )

    def store(self, create: bool = False, check_model: bool = True) -> Store:
        """The embedded index, or the Qdrant server when ``qdrant.url`` is set."""
        with self._opening:
            return self._open_store(create, check_model)

    def _open_store(self, create: bool, check_model: bool) -> Store:
        if self._store is None:  # a missing index is reported before any model loads
            self._store = open_store(self.config, self._meta, create, check_model)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._retriever = None
            self._labels = None

    def __enter__(self) -> Ragline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def ingest(
        self,
        path: str | Path,
        progress: Progress = False,
        allow_empty: bool = False,
        only: Collection[str] | None = None,
    ) -> SyncReport:
        """Sync a folder, or one file (into the indexed folder that holds it, else its own folder).

        ``allow_empty``: a folder with no file left may remove all its documents (else that is refused).
        ``only``: just these paths under the folder (files or folders, gone ones included: a watcher's batch).
        Syncs of one app run one at a time (a watcher and an ingest job may both start one)."""
        target = Path(path).expanduser()
        if not target.exists():
            raise RaglineError(f"cannot ingest {str(path)!r}: no such file or folder")
        if not (target.is_dir() or target.is_file()):
            raise RaglineError(f"cannot ingest {str(path)!r}: not a file or folder")
        with self._syncing, stage("sync", {}):
            store = self._writable_store()
            folder = target
            if target.is_file():
                holder = roots.holding(target.resolve(), roots.known(store.roots()))
                folder = Path(holder.folder) if holder and holder.folder else target.resolve().parent
                only = [target.resolve().relative_to(folder.resolve()).as_posix()]
            report = sync_folder(folder, store, self.embedder, self.config, progress, allow_empty, only)
            self._labels = None
            store.save_config(config_to_dict(self.config))
        return report

    def changes(
        self, folders: Sequence[str | Path], stop: threading.Event, quiet_ms: int = 300
    ) -> Iterator[list[Changes]]:
        """Batches of the paths that change under ``folders`` (as ``[source]`` include and exclude select them;
        never the index itself), until ``stop`` is set: what a watcher syncs with ``ingest(folder, only=...)``."""
        from connectors.watch import watch

        source = self.config.source
        ignore = [] if self.config.qdrant.enabled else [self.index_path]
        watched = [Path(f).expanduser().resolve() for f in folders]
        return watch(watched, source.include, source.exclude, ignore, stop, quiet_ms)

    def remove(self, target: str) -> list[str]:
        """Remove from the index a root (by label or folder), or a file or folder under one; returns the
        sources removed, as ``label/path``. The files themselves are not touched."""
        with self._syncing:
            removed = lifecycle.remove_source(self._writable_store(), target)
        self._labels = None
        return removed

    def _recorded_roots(self) -> dict[str, roots.Root]:
        """The roots' record, as the last sync or remove in this process left it (like the tuned settings, a
        sync by another process shows once this one syncs or calls :meth:`forget_retriever`)."""
        with self._opening:
            if self._labels is None:
                self._labels = roots.known(self.store().roots())
            return self._labels

    def _roots(self) -> dict[str, roots.Root]:
        """The roots the index records; in an index from before they were recorded, those its points name."""
        store = self.store(check_model=False)
        saved = store.roots()
        return roots.known(saved) if saved else roots.known({}, {s.root for s in store.documents().values()})

    def label_path(self, path: str) -> str:
        """A path typed at a shell (``./faq.txt``, ``demo_docs/faq.txt`` beside ``demo_docs``, an absolute path)
        as the ``label/path`` citations use; a path that is no file or folder here comes back as it was."""
        if any(c in path for c in "*?["):
            return path
        root, under = roots.locate(path, self._roots())
        return f"{root.label}/{under}".rstrip("/") if root is not None else under

    def sources(self, reader: Reader = ADMIN) -> list[dict[str, Any]]:
        """The folders the index holds: label, folder, documents, chunks, last sync, whether the folder is there
        (to ``reader``: the documents it may read, in the folders it reads any of, by label)."""
        return lifecycle.held_sources(self.store(check_model=False), self.readers(reader))

    def explain_access(self, path: str | Path) -> dict[str, Any]:
        """Who may read a file and why: its rule, its permissions, and what the index holds for it now."""
        from connectors.permissions import describe

        target = Path(path).expanduser().resolve()
        if not target.is_file():
            raise RaglineError(f"cannot explain {str(path)!r}: no such file")
        try:
            held = self._roots()
        except IndexUnavailableError:
            held = {}
        root = roots.holding(target, held)
        folder = Path(root.folder) if root is not None and root.folder else target.parent
        access = self.config.access
        found = file_grant(target, folder, access)
        source = target.relative_to(folder).as_posix()
        indexed = None
        if root is not None:
            state = self.store(check_model=False).documents().get(document_id(root.uri, source))
            indexed = None if state is None else state.readers
        return {
            "path": f"{root.label}/{source}" if root is not None else source,
            "file": str(target),
            "enabled": access.enabled,
            "readers": list(found.readers),
            "rule": found.rule,
            "permissions": describe(target),
            "reasons": found.explain(access),
            "admins": list(access.admins),
            "indexed": None if indexed is None else list(indexed),
        }

    def readers(self, reader: Reader) -> tuple[str, ...] | None:
        """The principals the store matches for ``reader``: None (everything) for an admin, or with access
        control off."""
        return reader.visible if self.config.access.enabled else None

    def ingest_documents(
        self,
        documents: Iterable[Document],
        root_uri: str,
        split: Splitter | None = None,
        progress: Progress = False,
    ) -> SyncReport:
        """Sync already-parsed documents as one collection named ``root_uri``."""
        with self._syncing:
            store = self._writable_store()
            report = sync_documents(documents, root_uri, store, self.embedder, self.config, split, progress)
            self._labels = None
            store.save_config(config_to_dict(self.config))
        return report

    def _writable_store(self) -> Store:
        if not self.config.qdrant.enabled:  # a nearly full disk is refused before any model loads
            check_space(self.index_path, self.config.index.min_free_mb)
        store = self.store(create=True)
        bm25 = self.config.bm25
        # An index from before the fixed pivot keeps its write-time average (store.meta.avg_len is 0).
        # So does one from before languages were told apart: it keeps its English-only analysis (bm25.TOKENIZERS).
        tokenizer = store.meta.tokenizer if store.meta.tokenizer in TOKENIZERS else TOKENIZER_VERSION
        wanted = (bm25.k1, bm25.b, tokenizer, bm25.avg_len if store.meta.avg_len else 0.0)
        have = (store.meta.k1, store.meta.b, store.meta.tokenizer, store.meta.avg_len)
        if wanted != have:
            raise RaglineError(
                f"the index was built with BM25 k1={have[0]}, b={have[1]}, avg_len={have[3]}, tokenizer {have[2]}; "
                f"the config asks for k1={wanted[0]}, b={wanted[1]}, avg_len={bm25.avg_len}, tokenizer {wanted[2]}: "
                "use a new index folder"
            )
        return store

    # -- reading ---------------------------------------------------------------------------
    @property
    def retriever(self) -> HybridRetriever:
        with self._opening:
            if self._retriever is None:
                self._retriever = HybridRetriever(self.store(), self.embedder, self.retrieval_config)
            return self._retriever

    @contextmanager
    def _reading(self) -> Iterator[HybridRetriever]:
        """The retriever, held open until the caller is done with it (see :meth:`swap_in`)."""
        with self._opening:
            self._idle.wait_for(lambda: not self._swapping)
            retriever = self.retriever
            self._searching += 1
        try:
            yield retriever
        finally:
            with self._opening:
                self._searching -= 1
                self._idle.notify_all()

    @property
    def retrieval_config(self) -> RetrievalConfig:
        """The ranking settings in effect: the config's and, for each of ``TUNABLE`` it does not set, the one
        ``ragline tune`` saved with the index (``retrieval.tuned = false`` or ``--untuned``: the config's alone)."""
        config = self.config.retrieval
        if not config.tuned:
            return config
        saved = (self.store().tuning() or {}).get("settings") or {}
        chosen = {k: v for k, v in saved.items() if k in TUNABLE and k not in config.model_fields_set}
        return RetrievalConfig.model_validate({**config.model_dump(), **chosen}) if chosen else config

    def forget_retriever(self) -> None:
        """The next search builds its retriever again (after ``tune`` saved new settings)."""
        with self._opening:
            self._retriever = None
            self._labels = None

    def warm_up(self) -> None:
        """Load the embedder and open the index now, so that the first request is not the slow one."""
        self.embedder.embed_query("warm up")
        try:
            self.store()
        except IndexUnavailableError:
            pass  # no index yet: the first ingest creates it

    def search(
        self,
        query: str,
        top_k: int | None = None,
        where: SearchFilter | None = None,
        fusion: Fusion | None = None,
        rerank: bool | None = None,
        mode: Mode = "hybrid",
        reader: Reader = ADMIN,
        history: Sequence[Turn] = (),
    ) -> SearchResponse:
        """Ranked chunks for ``query`` of what ``reader`` may read (the CLI and the Python API read as an admin;
        every HTTP request as its caller). After a chat ``history``, ``query`` is first made a standalone query
        (pipeline/stages/followup.py), which the response gives as ``searched_query``."""
        with span("search", mode=mode):
            readers = self.readers(reader)
            top_k = top_k or self.config.retrieval.top_k
            use_rerank = self.config.rerank.enabled if rerank is None else rerank
            depth = max(top_k, self.config.rerank.candidates) if use_rerank else top_k
            if where is not None:
                held = self.store().file_types(readers) if where.file_types else ()
                check_filter(where, held, READABLE_TYPES, PAYLOAD_FIELDS)
            known = self._recorded_roots()
            where = _scoped(where, known)
            timings: dict[str, float] = {}
            searched = query
            if history:
                with stage("rewrite", timings):
                    searched = standalone(query, history, self.config.llm, self.config.server.max_query_chars)
            with self._reading() as retriever:
                retrieved = retriever.retrieve(
                    searched, top_k=depth, where=where, fusion=fusion, mode=mode, readers=readers
                )
            timings.update(retrieved.timings_ms)
            results = retrieved.results
            notices: list[str] = []
            reranked = False
            if use_rerank and results:
                with stage("rerank", timings):
                    try:
                        results = rerank_head(self.reranker, searched, results, depth)
                        reranked = True
                    except ModelUnavailableError as exc:
                        if self.config.rerank.on_failure == "stop":
                            raise
                        notices.append(f"{exc}; results are not reranked (rerank.on_failure = continue)")
            if not results and where is not None and where.fields:
                asked = ", ".join(f"{key} = {value!r}" for key, value in where.fields)
                notices.append(f"no chunk has {asked}: --where matches a field's whole value, exactly")
            coverage = dense_coverage(self.store(check_model=False))
            notices.extend(_coverage_notice(coverage, mode))
            sure = retrieved.confidence
            low = sure is None or sure < self.config.retrieval.low_confidence
            kept = [_labelled(r, known) for r in results[:top_k]] if len(known) > 1 else results[:top_k]
            with stage("highlight", timings):
                spans = highlight(searched, [r.chunk.text for r in kept], self.config.retrieval.highlights)
                kept = [dataclasses.replace(r, highlights=s) for r, s in zip(kept, spans, strict=True)]
            return SearchResponse(query, kept, timings, reranked, tuple(notices), sure, low, searched, coverage)

    def context(
        self, question: str, budget: int | None = None, history: Sequence[Turn] = (), **search_args: Any
    ) -> tuple[Prompt, SearchResponse]:
        """Prompt-ready context for ``question`` (after ``history``, for the standalone query it makes)."""
        response = self.search(question, history=history, **search_args)
        timings = dict(response.timings_ms)
        with stage("prompt", timings):
            prompt = build_prompt(
                question,
                response.results,
                self.config.prompt,
                self.embedder.tokens,
                budget,
                response.low_confidence,
                response.searched_query,
            )
        return prompt, dataclasses.replace(response, timings_ms=timings)

    def ask(self, question: str, budget: int | None = None, history: Sequence[Turn] = (), **search_args: Any) -> Answer:
        """Build the prompt and, when an LLM endpoint is configured, send it after the chat ``history``."""
        with span("ask"):
            prompt, response = self.context(question, budget, history, **search_args)
            answer = None
            timings = dict(response.timings_ms)
            if self.config.llm.configured:
                with stage("llm", timings):
                    answer = complete(prompt.text, self.config.llm, history)
        return Answer(response, prompt, answer, timings)

    def answer_tokens(self, prompt: Prompt, history: Sequence[Turn] = ()) -> Iterator[str]:
        """The LLM's answer to ``prompt`` as its tokens stream in (``ask --stream``)."""
        return stream(prompt.text, self.config.llm, history)

    def answer_tokens_async(self, prompt: Prompt, history: Sequence[Turn] = ()) -> AsyncGenerator[str]:
        """:meth:`answer_tokens` for an event loop; closing the iterator closes the upstream request."""
        return astream(prompt.text, self.config.llm, history)

    def stats(self, reader: Reader = ADMIN) -> dict[str, Any]:
        """What the index holds (of what ``reader`` may read; where it lies, to admins alone)."""
        store = self.store(check_model=False)
        readers = self.readers(reader)
        held = self.sources(reader)
        return {
            "documents": sum(r["documents"] for r in held),
            "chunks": store.count(readers),
            "coverage": dense_coverage(store),
            "model": store.meta.model,
            "dimension": store.meta.dimension,
            "store": store.kind,
            "location": store.location if readers is None else "",
            "roots": held,
        }

    # -- whole-index operations (pipeline.lifecycle) ---------------------------------------
    def verify(self, repair: bool = False) -> VerifyReport:
        """Check the index against its folders and itself (``ragline verify``); ``repair``: re-sync what differs."""
        from pipeline.lifecycle import verify

        if not repair:
            return verify.verify(self.store(check_model=False), self.config)
        with self._syncing:  # a repair syncs: it takes its turn with a watcher's and a job's syncs
            store = self._writable_store()
            found = verify.verify(store, self.config)
            if not found.ok:
                found = verify.repair(store, self.embedder, self.config, found)
                self._labels = None
        return found

    def migrate(self, url: str, collection: str | None = None, progress: bool = False) -> Moved:
        """Copy the embedded index into an empty collection on a Qdrant server, without re-embedding."""
        return lifecycle.migrate_to_server(self.config, url, collection, progress)

    def adaptation(self) -> dict[str, Any] | None:
        """What ``ragline adapt`` recorded in the embedded index (None: never adapted, or a server)."""
        return None if self.config.qdrant.enabled else read_json(self.index_path / ADAPTED_FILE)

    def swap_in(self, fresh: Path, embedder: SentenceTransformerEmbedder) -> None:
        """Put the complete index folder ``fresh`` (embedded with ``embedder``) in place of this one, and search
        it with that embedder from now on (already loaded: no second copy of the model); searches wait for the
        swap, and none sees half of it."""
        with self._opening:
            self._swapping = True
            try:
                self._idle.wait_for(lambda: self._searching == 0)
                self.close()
                lifecycle.swap_folder(self.index_path, fresh)
                self.config = self.config.model_copy(update={"embedding": embedder.config})
                self.embedder = embedder
            finally:
                self._swapping = False
                self._idle.notify_all()

    def reindex(self, embedder: str, progress: bool = False) -> Moved:
        """Re-embed the embedded index's stored chunks with another embedder (no file is parsed again)."""
        self.close()  # the index is re-opened, and replaced, by the operation
        model = SentenceTransformerEmbedder(self.config.embedding.model_copy(update={"model": embedder}))
        return lifecycle.reindex(self.config, model, progress)


def adapted_config(config: AppConfig) -> AppConfig:
    """``config``, with the embedder ``ragline adapt`` fitted to its embedded index when the config names no
    embedder, or names the one the index was adapted from."""
    if config.qdrant.enabled:
        return config
    record = read_json(Path(config.index.path).expanduser() / ADAPTED_FILE) or {}
    model, base = record.get("model"), record.get("base_model")
    named = canonical_model_name(config.embedding.model) if "model" in config.embedding.model_fields_set else None
    if not isinstance(model, str) or named not in (None, base, model):
        return config
    return config.model_copy(update={"embedding": config.embedding.model_copy(update={"model": model})})


def _coverage_notice(coverage: float, mode: Mode) -> list[str]:
    """What a dense or hybrid search says while a sync is still embedding (rounded down: 99.9 % is not 100)."""
    if coverage >= 1 or mode == "bm25":
        return []
    share = math.floor(coverage * 100)
    return [
        f"{share}% of the chunks have dense vectors so far (a sync is still embedding): "
        "the rest are found by BM25 alone"
    ]


def _scoped(where: SearchFilter | None, known: dict[str, roots.Root]) -> SearchFilter | None:
    """``where`` with a path that begins with a root's label (``teamA/notes.md``) split into that root and the
    path under it; a path that names none stays a path under any root. Never a look at this machine's files:
    the path may come from an HTTP client (the CLI turns a path on disk into a label first:
    :meth:`Ragline.label_path`)."""
    if where is None or not where.path:
        return where
    root, under = roots.locate(where.path, known, files=False)
    return dataclasses.replace(where, path=under or None, root=root.uri if root else None)


def _labelled(result: ScoredChunk, known: dict[str, roots.Root]) -> ScoredChunk:
    uri = str(result.chunk.metadata.get("root") or "")
    if not uri:
        return result
    label = known[uri].label if uri in known else roots.default_label(uri)
    copies = tuple(dataclasses.replace(c, root_label=label) for c in result.copies)
    return dataclasses.replace(result, chunk=dataclasses.replace(result.chunk, root_label=label), copies=copies)
