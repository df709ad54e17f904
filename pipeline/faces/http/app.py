"""The HTTP API (FastAPI): search, context, ask, ingest jobs, health and stats.

A thin shell over :class:`pipeline.app.Ragline`, like the CLI: this factory wires the request models
(:mod:`.schemas`), the guards (:mod:`pipeline.faces.guards`), the error handlers (:mod:`.errors`) and the
routers (:mod:`.routes`). Ingest only syncs folders named in ``server.sources``: a request names a source,
never a path. Every error is a JSON object with a one-line ``error``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pipeline.access import Reader
from pipeline.app import Ragline
from pipeline.faces import render
from pipeline.faces.guards import BodyLimit, ConcurrencyLimit
from pipeline.faces.http.errors import install_error_handlers
from pipeline.faces.http.metrics import Measured, Metrics, metrics_router
from pipeline.faces.http.routes import ingest_router, search_router, status_router
from pipeline.faces.http.schemas import request_models
from pipeline.faces.http.web import web_router
from pipeline.faces.identity import Identify, Unauthorized
from pipeline.faces.jobs import Jobs
from pipeline.faces.mcp import McpEndpoint
from pipeline.faces.watcher import Watcher


def caller_dependency(identify: Identify) -> Any:
    """The dependency every guarded route takes: the request's :class:`Reader`, or a 401 naming what is wrong."""
    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Reader:  # noqa: B008
        try:
            return identify(credentials.credentials if credentials is not None else None)
        except Unauthorized as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None

    return Depends(authorize)


def create_app(rag: Ragline, host: str | None = None) -> Any:
    """The FastAPI application for one Ragline (one index, one config); ``host``: the address it is served on
    (default ``[server] host``), which decides whether /mcp checks the Host header against DNS rebinding."""
    from fastapi_offline import FastAPIOffline
    from starlette.routing import Route

    limits = rag.config.server
    identify = Identify(rag.config.access, limits)  # a config that identifies no one fails here
    caller = caller_dependency(identify)
    jobs = Jobs(rag)
    mcp = McpEndpoint(rag, identify, host or limits.host)

    watcher = Watcher(rag, list(limits.sources.values()), limits.watch_quiet_ms) if limits.watch else None

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        async with mcp.session_manager.run():
            yield
        if watcher is not None:
            watcher.stop()
        jobs.shutdown()

    app = FastAPIOffline(  # /docs and /redoc load their scripts from this server: they work with no internet
        title="ragline",
        description="Hybrid (BM25 + dense) retrieval with citations, on Qdrant.",
        version=render.package_version(),
        lifespan=lifespan,
    )
    app.state.rag, app.state.jobs = rag, jobs
    metrics = Metrics(rag)
    install_error_handlers(app)
    models = request_models(limits)
    routers = [
        status_router(rag, jobs, caller, watcher),
        search_router(rag, models, caller),
        ingest_router(rag, jobs, models, caller),
        metrics_router(metrics, caller, limits.metrics),
        web_router(),
    ]
    for router in routers:
        app.include_router(router)
    mcp_route = Route("/mcp", mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    app.router.routes.append(mcp_route)
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    app.add_middleware(ConcurrencyLimit, limit=limits.max_concurrent)
    # The last added is the outermost: it sees every refusal, and names its route from the routers' own routes
    app.add_middleware(Measured, metrics=metrics, routes=[r for router in routers for r in router.routes] + [mcp_route])
    return app
