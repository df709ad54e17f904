"""The HTTP API (FastAPI): search, context, ask, ingest jobs, health and stats.

A thin shell over :class:`pipeline.app.Ragline`, like the CLI. Request models
are built from ``[server]`` so their limits (query length, top_k) show in the
OpenAPI schema and fail with a 422 that names the field. Filters are flat,
bounded data (a path, file types, up to ``MAX_FILTER_FIELDS`` scalar matches),
validated before any store sees them. Ingest only syncs folders named in
``server.sources``: a request names a source, never a path. Every error is a
JSON object with a one-line ``error``.
"""

import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pipeline.app import Ragline
from pipeline.config import Fusion, ServerConfig
from pipeline.errors import IndexUnavailableError, ModelUnavailableError, RaglineError

API_KEY_ENV = "RAGLINE_API_KEY"
MAX_FILTER_PATH = 1000
MAX_FILTER_FIELDS = 20
MAX_FIELD_KEY = 200
MAX_FIELD_VALUE = 1000
MAX_NAME = 200  # file types, source names, job ids


def _scalar_kind(value: object) -> str | None:
    """Which branch of a filter field's value type ``value`` is; None (a 422) for anything else."""
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "str" if isinstance(value, str) else None


def _shown(part: object, limit: int = 100) -> str:
    """``part`` (a field name, possibly from the request) printable on one line and short."""
    text = str(part)
    if not text.isprintable():
        text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class Job:
    """One ingest run, as GET /jobs/{id} reports it."""

    id: str
    source: str
    status: Literal["queued", "running", "done", "failed"] = "queued"
    phase: str | None = None
    done: int = 0
    total: int = 0
    summary: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "status": self.status,
            "progress": {"phase": self.phase, "done": self.done, "total": self.total},
            "summary": self.summary,
            "error": self.error,
            "created": self.created,
            "finished": self.finished,
        }


class Jobs:
    """Ingest jobs run one at a time on one worker thread: syncs of one index never overlap."""

    def __init__(self, rag: Ragline) -> None:
        self._rag = rag
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragline-ingest")
        self.last_sync: dict[str, Any] | None = None

    def submit(self, source: str, folder: str) -> Job:
        job = Job(id=uuid.uuid4().hex, source=source)
        self._jobs[job.id] = job
        self._pool.submit(self._run, job, folder)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def _run(self, job: Job, folder: str) -> None:
        job.status = "running"

        def progress(phase: str, done: int, total: int) -> None:
            job.phase, job.done, job.total = phase, done, total

        try:
            report = self._rag.ingest(folder, progress=progress)
        except Exception as exc:  # reported on the job; the server goes on
            job.status, job.error = "failed", str(exc) if isinstance(exc, RaglineError) else repr(exc)
        else:
            job.status, job.summary = "done", report.as_dict()
            self.last_sync = {"job": job.id, "source": job.source, "finished": time.time(), **report.as_dict()}
        job.finished = time.time()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, counting as they stream in
    (a chunked upload has no Content-Length to check up front)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from fastapi import HTTPException

        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(413, f"request body over {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            from fastapi.responses import JSONResponse

            await JSONResponse({"error": too_large.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise too_large
            return message

        await self.app(scope, counted, send)


class ConcurrencyLimit:
    """Refuse requests beyond ``limit`` in flight with 503 at once (health checks always pass).
    The counter lives on the event loop's one thread, so it needs no lock."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            from fastapi.responses import JSONResponse

            busy = JSONResponse(
                {"error": f"server busy: {self.active} requests in flight (server.max_concurrent); retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
            await busy(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def api_key(config: ServerConfig) -> str:
    return os.environ.get(API_KEY_ENV) or config.api_key


def create_app(rag: Ragline) -> Any:
    """The FastAPI application for one Ragline (one index, one config)."""
    from fastapi import Depends, FastAPI, HTTPException, Path, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from pipeline.filters import INT64

    limits = rag.config.server
    jobs = Jobs(rag)
    bearer = HTTPBearer(auto_error=False)

    class Filters(BaseModel):
        model_config = ConfigDict(extra="forbid")
        path: str | None = Field(
            None, max_length=MAX_FILTER_PATH, description="Folder/file prefix or glob over source paths."
        )
        file_types: list[Annotated[str, Field(max_length=MAX_NAME)]] = Field(
            default_factory=list, max_length=50, description='e.g. ["pdf", "md"]'
        )
        fields: dict[
            Annotated[str, Field(min_length=1, max_length=MAX_FIELD_KEY)],
            Annotated[
                Annotated[str, Field(max_length=MAX_FIELD_VALUE), Tag("str")]
                # lt 2**63, not le 2**63 - 1: the schema shows the bound as a float, and 2**63 is exact
                | Annotated[int, Field(ge=INT64[0], lt=INT64[1] + 1), Tag("int")]
                | Annotated[bool, Tag("bool")],
                Discriminator(
                    _scalar_kind,
                    custom_error_type="scalar_type",
                    custom_error_message="Input should be a string, integer or boolean",
                ),
            ],
        ] = Field(
            default_factory=dict,
            max_length=MAX_FILTER_FIELDS,
            description="Exact payload matches (all must hold): field name to a string, integer or boolean.",
        )

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: str = Field(min_length=1, max_length=limits.max_query_chars)
        top_k: int | None = Field(None, ge=1, le=limits.max_top_k)
        filters: Filters | None = None
        fusion: Fusion | None = None
        mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
        rerank: bool | None = None

        def search_args(self) -> dict[str, Any]:
            from pipeline.filters import SearchFilter

            where = None
            if self.filters is not None:
                types = tuple(t.lower().lstrip(".") for t in self.filters.file_types if t)
                where = SearchFilter(self.filters.path or None, types, tuple(self.filters.fields.items()))
            return {
                "top_k": self.top_k,
                "where": where,
                "fusion": self.fusion,
                "mode": self.mode,
                "rerank": self.rerank,
            }

    class ContextRequest(SearchRequest):
        query: str = Field(min_length=1, max_length=limits.max_query_chars, description="The user's question.")
        budget: int | None = Field(None, ge=32, le=100_000, description="Context token budget.")

    class IngestRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        source: str = Field(
            max_length=MAX_NAME,
            description=f"One of the configured sources: {sorted(limits.sources) or 'none configured'}",
            examples=sorted(limits.sources)[:1] or None,
        )

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        key = api_key(limits)
        if not key:
            return
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), key.encode()):
            raise HTTPException(401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(
        title="ragline",
        description="Hybrid (BM25 + dense) retrieval with citations, on Qdrant.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.rag, app.state.jobs = rag, jobs

    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    app.add_middleware(ConcurrencyLimit, limit=limits.max_concurrent)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        if isinstance(exc.body, bytes):  # FastAPI left the body unparsed: its Content-Type is not JSON
            return JSONResponse({"error": "the request body must be JSON (Content-Type: application/json)"}, 415)
        # The offending input is not echoed back: it may be 64 KiB, nested deeper than the JSON
        # encoder recurses, or hold lone surrogates that cannot be encoded (each was a 500).
        detail = [
            {"type": e["type"], "loc": [p if isinstance(p, int) else _shown(p) for p in e["loc"]], "msg": e["msg"]}
            for e in exc.errors()
        ]
        problems = [
            f"{'.'.join(str(p) for p in d['loc'] if p != 'body') or 'body'}: {' '.join(d['msg'].split())}"
            for d in detail
        ]
        return JSONResponse({"error": "; ".join(problems), "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)  # also FastAPI's own (a subclass) and routing's 404/405
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for a body json.loads cannot parse
            message = "request body is nested too deeply to parse"
        elif isinstance(exc.__cause__, UnicodeDecodeError):
            message = "request body is not valid UTF-8"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        # A bug: still a JSON error, never a traceback; uvicorn logs the exception.
        return JSONResponse({"error": "internal server error"}, status_code=500)

    @app.exception_handler(RaglineError)
    async def domain_error(_: Request, exc: RaglineError) -> JSONResponse:
        from pipeline.errors import LLMError

        status = 400
        if isinstance(exc, IndexUnavailableError | ModelUnavailableError):
            status = 503
        elif isinstance(exc, LLMError):
            status = 502  # the LLM endpoint failed, not the request
        return JSONResponse({"error": str(exc)}, status_code=status)

    guarded = [Depends(authorize)]

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness, without auth: the process answers."""
        return {"status": "ok", "version": _version()}

    @app.get("/stats", dependencies=guarded)
    def stats() -> dict[str, Any]:
        return {**rag.stats(), "last_sync": jobs.last_sync}

    @app.post("/search", dependencies=guarded)
    def search(request: SearchRequest) -> dict[str, Any]:
        """Ranked chunks with per-stage scores, citations and per-stage timings."""
        return dict(rag.search(request.query, **request.search_args()).as_dict())

    @app.post("/context", dependencies=guarded)
    def context(request: ContextRequest) -> dict[str, Any]:
        """Prompt-ready context for a chatbot: numbered, cited blocks within the token budget."""
        prompt, response = rag.context(request.query, request.budget, **request.search_args())
        return {
            "query": request.query,
            "context": "\n\n".join(b.render() for b in prompt.blocks),
            "prompt": prompt.text,
            "blocks": [
                {
                    "number": b.number,
                    "citation": b.citation,
                    "source": b.source,
                    "page": b.page,
                    "heading": " > ".join(b.heading) or None,
                    "text": b.text,
                    "chunk_ids": list(b.chunk_ids),
                    "score": b.score,
                }
                for b in prompt.blocks
            ],
            "token_count": prompt.token_count,
            "budget": prompt.budget,
            "dropped_chunks": prompt.dropped_chunks,
            "timings_ms": {k: round(v, 3) for k, v in response.timings_ms.items()},
        }

    @app.post("/ask", dependencies=guarded)
    def ask(request: ContextRequest) -> dict[str, Any]:
        """Answer through the configured OpenAI-compatible endpoint."""
        from pipeline.faces.render import answer_dict

        if not rag.config.llm.configured:
            raise HTTPException(503, "no LLM endpoint configured: set [llm] base_url and model in the config")
        return answer_dict(rag.ask(request.query, request.budget, **request.search_args()))

    @app.post("/ingest", dependencies=guarded, status_code=202)
    def ingest(request: IngestRequest) -> dict[str, Any]:
        """Start a sync of a configured source; poll GET /jobs/{id}."""
        folder = limits.sources.get(request.source)
        if folder is None:
            known = ", ".join(sorted(limits.sources)) or "none configured ([server] sources)"
            raise HTTPException(404, f"unknown source {request.source!r}; known sources: {known}")
        return jobs.submit(request.source, folder).as_dict()

    @app.get("/jobs/{job_id}", dependencies=guarded)
    def job(job_id: Annotated[str, Path(max_length=MAX_NAME)]) -> dict[str, Any]:
        found = jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return found.as_dict()

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragline")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


@contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """uvicorn in a background thread (tests, load scripts); yields its base URL; stops on exit."""
    import threading

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RaglineError("the HTTP server did not start")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve(rag: Ragline, host: str, port: int) -> None:
    import uvicorn

    rag.warm_up()
    uvicorn.run(create_app(rag), host=host, port=port, log_level="info")
