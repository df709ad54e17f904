"""``/metrics`` in Prometheus' text format (prometheus-client), and one structured log line per request.

What an operator watches: requests and errors by route and status, refused requests (by why: no or a bad
credential, forbidden, too large, busy), request latency per route, the latency of each query stage
(embed, retrieve, fuse, payload, rerank, highlight, prompt, llm, rewrite: the intervals
:mod:`pipeline.tracing` times, so they equal what responses report), sync runs and their duration, and
what the index holds. Each app has its own registry, so several apps in one process never collide.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline.app import Ragline
from pipeline.tracing import watch

REFUSED = {401: "unauthorized", 403: "forbidden", 413: "too_large", 422: "invalid", 503: "busy"}
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SYNC_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)
INDEX_REFRESH_S = 30.0  # what the index holds is read at most this often (a read counts every document)

log = logging.getLogger("ragline.http")


class Metrics:
    """The app's metrics; :meth:`stage` is the observer of every timed stage in this process."""

    def __init__(self, rag: Ragline) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.rag = rag
        self.registry = CollectorRegistry()
        r = self.registry
        by_route = ["route", "status"]
        self.requests = Counter(
            "ragline_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.errors = Counter("ragline_http_errors", "HTTP 4xx and 5xx answers.", by_route, registry=r)
        self.refused = Counter("ragline_http_refused", "Requests refused, by why.", ["reason"], registry=r)
        self.latency = Histogram("ragline_http_request_seconds", "HTTP latency by route.", ["route"], registry=r)
        self.stages = Histogram(
            "ragline_stage_seconds", "Latency of each query stage.", ["stage"], buckets=STAGE_BUCKETS, registry=r
        )
        self.syncs = Counter("ragline_sync_runs", "Sync runs, by outcome.", ["outcome"], registry=r)
        self.sync_seconds = Histogram("ragline_sync_seconds", "Sync run duration.", buckets=SYNC_BUCKETS, registry=r)
        self._held: tuple[float, int, int] = (0.0, 0, 0)
        self._lock = threading.Lock()
        r.register(_IndexCollector(self))
        watch(self.stage)

    def stage(self, name: str, seconds: float, ok: bool) -> None:
        if name == "sync":
            self.syncs.labels("ok" if ok else "failed").inc()
            self.sync_seconds.observe(seconds)
            self._held = (0.0, *self._held[1:])  # read the index again at the next scrape
        elif name not in ("search", "ask"):
            self.stages.labels(name).observe(seconds)

    def held(self) -> tuple[int, int]:
        """Documents and chunks in the index, read at most every ``INDEX_REFRESH_S``."""
        with self._lock:
            at, documents, chunks = self._held
            if time.monotonic() - at > INDEX_REFRESH_S:
                try:
                    sources = self.rag.sources()
                except Exception:  # noqa: BLE001 - no index yet, or it is being swapped: report what was last read
                    return documents, chunks
                documents, chunks = sum(s["documents"] for s in sources), sum(s["chunks"] for s in sources)
                self._held = (time.monotonic(), documents, chunks)
            return documents, chunks

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _IndexCollector:
    """The index's size as gauges, read when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        documents, chunks = self.metrics.held()
        yield GaugeMetricFamily("ragline_index_documents", "Documents in the index.", value=documents)
        yield GaugeMetricFamily("ragline_index_chunks", "Chunks in the index.", value=chunks)


def _route(scope: Any, routes: list[Any]) -> str:
    """The route's template (``/jobs/{job_id}``), never the raw path: labels stay few whatever clients send.
    A request a guard refused before routing is matched here, so a 413 on /search counts for /search."""
    from starlette.routing import Match

    path = getattr(scope.get("route"), "path", None)
    if path is None:
        path = next((r.path for r in routes if r.matches(scope)[0] == Match.FULL), None)
    return str(path) if path else "unmatched"


class Measured:
    """ASGI middleware, outermost: counts and times every HTTP request (refusals by the guards included)
    and logs one line per request with its route, status and milliseconds (fields of a JSON log line)."""

    def __init__(self, app: Any, metrics: Metrics, routes: list[Any]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        t0 = time.perf_counter()

        async def sent(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            seconds = time.perf_counter() - t0
            self._count(scope, status, seconds)

    def _count(self, scope: Any, status: int, seconds: float) -> None:
        m = self.metrics
        route = _route(scope, self.routes)
        if route == "/metrics":
            return  # scrapes would otherwise be most of the traffic
        m.requests.labels(route, scope["method"], str(status)).inc()
        m.latency.labels(route).observe(seconds)
        if status >= 400:
            m.errors.labels(route, str(status)).inc()
        if status in REFUSED:
            m.refused.labels(REFUSED[status]).inc()
        log.info(
            "%s %s %d %.1f ms",
            scope["method"],
            route,
            status,
            seconds * 1e3,
            extra={"route": route, "method": scope["method"], "status": status, "ms": round(seconds * 1e3, 3)},
        )


def metrics_router(metrics: Metrics, caller: Any, access: str) -> Any:
    """``GET /metrics``: behind the API's credential (``access = "key"``), open, or absent (``"off"``)."""
    from fastapi import APIRouter, Response

    router = APIRouter()
    if access == "off":
        return router
    guard = [caller] if access == "key" else []

    @router.get("/metrics", include_in_schema=False, dependencies=guard)
    def scrape() -> Response:
        body, media_type = metrics.render()
        return Response(body, media_type=media_type)

    return router
