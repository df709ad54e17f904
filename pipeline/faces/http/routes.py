"""The routers, one per endpoint group: status (health, stats), search (search, context, ask) and ingest
(ingest, jobs). Each handler parses, calls :class:`pipeline.app.Ragline`, and renders with
:mod:`pipeline.faces.render`.

(No ``from __future__ import annotations``: FastAPI reads the handlers' annotations, which name the
per-app request models, as objects.)
"""

from typing import TYPE_CHECKING, Annotated, Any

from pipeline.access import Reader
from pipeline.app import Ragline
from pipeline.faces import render
from pipeline.faces.http import responses, stream
from pipeline.faces.http.schemas import MAX_NAME, RequestModels, search_args
from pipeline.faces.jobs import Jobs
from pipeline.faces.watcher import Watcher


def status_router(rag: Ragline, jobs: Jobs, caller: Any, watcher: Watcher | None = None) -> Any:
    from fastapi import APIRouter

    router = APIRouter()

    @router.get("/health", response_model=responses.Health)
    def health() -> dict[str, Any]:
        """Liveness, without auth: the process answers."""
        return {"status": "ok", "version": render.package_version()}

    @router.get("/stats", response_model=responses.Stats)
    def stats(reader: Reader = caller) -> dict[str, Any]:
        """What the index holds of what the caller may read; ``last_sync``: this server's last ingest job, else
        the index's last sync."""
        held = rag.stats(reader)
        watching = watcher.status.as_dict() if watcher is not None and reader.admin else None
        last = render.last_sync_dict(jobs.last_done) or render.recorded_sync(held["roots"])
        return {**held, "last_sync": last, "watch": watching, "llm": rag.config.llm.configured}

    return router


def search_router(rag: Ragline, models: RequestModels, caller: Any) -> Any:
    from fastapi import APIRouter, HTTPException, Request
    from fastapi.responses import StreamingResponse
    from starlette.concurrency import run_in_threadpool

    router = APIRouter()
    if TYPE_CHECKING:
        from pipeline.faces.http.schemas import AskBody as AskRequest
        from pipeline.faces.http.schemas import ContextBody as ContextRequest
        from pipeline.faces.http.schemas import SearchBody as SearchRequest
    else:  # FastAPI reads the real models, with this app's limits
        SearchRequest, ContextRequest, AskRequest = models.search, models.context, models.ask

    @router.post("/search", response_model=responses.SearchResponse)
    def search(request: SearchRequest, reader: Reader = caller) -> dict[str, Any]:
        """Ranked chunks with per-stage scores, citations and per-stage timings, of what the caller may read."""
        return render.search_dict(rag.search(request.query, **search_args(request), reader=reader))

    @router.post("/context", response_model=responses.ContextResponse)
    def context(request: ContextRequest, reader: Reader = caller) -> dict[str, Any]:
        """Prompt-ready context for a chatbot: numbered, cited blocks within the token budget."""
        prompt, response = rag.context(request.query, request.budget, **search_args(request), reader=reader)
        return render.context_dict(request.query, prompt, response)

    @router.post(
        "/ask",
        response_model=responses.AnswerResponse,
        responses={200: {"content": {"text/event-stream": {"description": "With `stream`: sources, token*, done"}}}},
    )
    async def ask(request: AskRequest, http: Request, reader: Reader = caller) -> Any:
        """Answer through the configured OpenAI-compatible endpoint; with ``stream``, as Server-Sent Events."""
        if not rag.config.llm.configured:
            raise HTTPException(503, "no LLM endpoint configured: set [llm] base_url and model in the config")
        args = {**search_args(request), "reader": reader}
        if not request.stream:
            return render.answer_dict(await run_in_threadpool(rag.ask, request.query, request.budget, **args))
        prompt, response = await run_in_threadpool(rag.context, request.query, request.budget, **args)
        events = stream.answer_events(rag, http, prompt, response, args["history"])
        return StreamingResponse(events, media_type="text/event-stream", headers=stream.HEADERS)

    return router


def ingest_router(rag: Ragline, jobs: Jobs, models: RequestModels, caller: Any) -> Any:
    from fastapi import APIRouter, Depends, HTTPException, Path

    def admin(reader: Reader = caller) -> None:
        """With access control on, syncing and the jobs' list are an admin's."""
        if rag.config.access.enabled and not reader.admin:
            raise HTTPException(403, "only an admin may ingest or list jobs (a principal in [access] admins)")

    router = APIRouter(dependencies=[Depends(admin)])
    sources = rag.config.server.sources
    if TYPE_CHECKING:
        from pipeline.faces.http.schemas import IngestBody as IngestRequest
    else:
        IngestRequest = models.ingest

    @router.post("/ingest", status_code=202, response_model=responses.Job)
    def ingest(request: IngestRequest) -> dict[str, Any]:
        """Start a sync of a configured source; poll GET /jobs/{id}."""
        folder = sources.get(request.source)
        if folder is None:
            known = ", ".join(sorted(sources)) or "none configured ([server] sources)"
            raise HTTPException(404, f"unknown source {request.source!r}; known sources: {known}")
        return render.job_dict(jobs.submit(request.source, folder))

    @router.get("/jobs", response_model=responses.Jobs)
    def all_jobs() -> dict[str, Any]:
        """Every ingest job this server has run or queued, newest first."""
        return {"jobs": [render.job_dict(found) for found in jobs.all()]}

    @router.get("/jobs/{job_id}", response_model=responses.Job)
    def job(job_id: Annotated[str, Path(max_length=MAX_NAME)]) -> dict[str, Any]:
        found = jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return render.job_dict(found)

    return router
