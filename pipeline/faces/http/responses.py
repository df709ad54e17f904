"""The response models of the HTTP API: what each endpoint returns, as the OpenAPI schema shows it.

The handlers build their bodies with :mod:`pipeline.faces.render` (the same dicts as ``--json`` on the
CLI); these models describe and check them, so a client generated from ``/openapi.json`` gets typed fields
rather than ``additionalProperties: true``.

(No ``from __future__ import annotations``: pydantic reads the annotations as objects.)
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Scores(BaseModel):
    dense: float | None = Field(description="Cosine similarity of the query and chunk embeddings.")
    bm25: float | None = Field(description="BM25 score (Qdrant sparse vector with the IDF modifier).")
    fused: float | None = Field(description="Score after fusing the dense and BM25 lists.")
    rerank: float | None = Field(description="Cross-encoder score; null when not reranked.")


class Highlight(BaseModel):
    start: int = Field(description="First character of the span in the result's `text`.")
    end: int = Field(description="One past the span's last character.")


class SearchResult(BaseModel):
    rank: int
    chunk_id: str
    source: str = Field(description="The file's path under its folder.")
    root: str = Field(description="The folder's label when the index holds several folders, else empty.")
    path: str = Field(description="label/source: what citations show and `filters.path` takes.")
    page: str | None = Field(description='Page or page span ("3", "3-4"); null for files without pages.')
    heading: str | None = Field(description="The heading path, outermost first, joined by ' > '.")
    text: str
    scores: Scores
    highlights: list[Highlight] = Field(
        description="The sentences of `text` that best match the query, as character spans, in text order."
    )
    copies: list[str] = Field(
        description="Paths of other chunks with this text (copied files, repeated paragraphs), left out of the results."
    )


class SearchResponse(BaseModel):
    query: str
    searched_query: str = Field(description="What was searched: `query`, or after a `history` the standalone query.")
    results: list[SearchResult]
    confidence: float | None = Field(description="How likely the first result is relevant, 0-1.")
    low_confidence: bool
    coverage: float = Field(
        description="The share of the index's chunks with dense vectors, 0-1: under 1 while a sync is embedding."
    )
    reranked: bool
    notices: list[str] = Field(description="Why something was skipped, e.g. the reranker could not be loaded.")
    timings_ms: dict[str, float] = Field(description="Milliseconds per stage: embed, retrieve, fuse, rerank, ...")


class ContextBlock(BaseModel):
    number: int
    citation: str
    source: str
    page: str | None
    heading: str | None
    text: str
    chunk_ids: list[str]
    pages: list[str | None] = Field(description="Each merged chunk's page, in the order of chunk_ids.")
    score: float


class ContextResponse(BaseModel):
    query: str
    searched_query: str
    context: str = Field(description="The numbered, cited blocks, as the prompt holds them.")
    prompt: str
    blocks: list[ContextBlock]
    token_count: int
    budget: int
    dropped_chunks: int
    note: str | None = Field(description="What the budget left out (the prompt itself does not say).")
    confidence: float | None
    low_confidence: bool
    timings_ms: dict[str, float]


class Source(BaseModel):
    number: int
    citation: str
    chunk_ids: list[str]


class AnswerResponse(SearchResponse):
    prompt: str
    prompt_tokens: int
    sources: list[Source]
    dropped_chunks: int
    note: str | None
    answer: str | None


class Skipped(BaseModel):
    source: str
    reason: str


class SyncSummary(BaseModel):
    root: str
    added: int
    updated: int
    unchanged: int
    removed: int
    skipped: list[Skipped]
    chunks_written: int
    backfilled: int = Field(description="Chunks an interrupted sync left without dense vectors, embedded now.")
    reused: int = Field(description="Added files copied from the same file under another folder, not embedded.")
    moved_from: list[str] = Field(description="Folders that moved here: their documents now point to this one.")
    seconds: float
    stages_s: dict[str, float]
    changed: bool


class Progress(BaseModel):
    phase: str | None = Field(description="parsing (files), writing (chunks BM25 can find), embedding (chunks).")
    done: int
    total: int
    coverage: float | None = Field(
        description="Of the chunks this sync has written, the share with dense vectors (null: none written yet)."
    )


class Job(BaseModel):
    id: str
    source: str
    status: Literal["queued", "running", "done", "failed"]
    progress: Progress
    summary: SyncSummary | None
    error: str | None
    created: float
    finished: float | None


class Jobs(BaseModel):
    jobs: list[Job] = Field(description="This server's ingest jobs, newest first.")


class Root(BaseModel):
    label: str
    folder: str
    documents: int
    chunks: int
    last_sync: str | None = Field(description="When a sync of it last finished, ISO 8601 UTC.")
    present: bool = Field(description="Whether the folder is there now.")


class LastSync(BaseModel):
    """The last sync: a job of this server (with its summary), or else the latest recorded in the index."""

    model_config = ConfigDict(extra="allow")
    job: str | None = Field(description="The job id; null for a sync run outside this server (the CLI).")
    source: str
    finished: float = Field(description="Unix time.")


class Watch(BaseModel):
    """The folder watcher of ``[server] watch = true``."""

    folders: list[str]
    state: Literal["starting", "catching up", "watching", "syncing", "stopped", "failed"]
    syncs: int
    changes_seen: int = Field(description="Paths named by file events so far.")
    errors: int
    last_error: str | None
    last_change: float | None = Field(description="Unix time of the last batch of file events.")
    last_sync: dict[str, Any] | None = Field(description="What the watcher's last sync did.")
    started: float


class Stats(BaseModel):
    documents: int
    chunks: int
    coverage: float = Field(
        description="The share of all chunks with dense vectors, 0-1: under 1 while a sync is still embedding "
        "(BM25 already finds the rest)."
    )
    model: str
    dimension: int
    store: str
    location: str
    roots: list[Root]
    last_sync: LastSync | None
    watch: Watch | None = Field(None, description="The folder watcher, when [server] watch = true (admins only).")
    llm: bool = Field(description="Whether an LLM endpoint is configured, so that /ask answers.")


class Health(BaseModel):
    status: Literal["ok"]
    version: str
