"""/metrics read by Prometheus' own parser, OpenTelemetry spans caught by the SDK's in-memory exporter, and
JSON log lines: what an operator gets, from a real server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from pipeline.app import Ragline
from pipeline.faces.cli import main
from pipeline.faces.http import create_app, running_server
from pipeline.faces.logs import JsonFormatter
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, make_app

pytestmark = pytest.mark.integration

KEY = "metrics-test-key"
QUESTION = "How often should I descale the Aurora 2 espresso machine?"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels (parsed by prometheus-client, as a scraper would)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[Ragline, str]]:
    rag = make_app(tmp_path_factory.mktemp("metrics"), embedder, server={"api_key": KEY, "max_body_bytes": 2048})
    with running_server(create_app(rag)) as url:
        yield rag, url
    rag.close()


def test_metrics_count_requests_stages_syncs_and_refusals(served: tuple[Ragline, str]) -> None:
    rag, url = served
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        assert client.get("/metrics").status_code == 401  # [server] metrics = "key": the API's credential
        rag.ingest(DEMO_DOCS)  # a sync in this process, as a job or the watcher would run it
        for _ in range(3):
            assert client.post("/search", json={"query": QUESTION}, headers=auth).status_code == 200
        assert client.post("/search", json={"query": QUESTION}).status_code == 401
        assert client.post("/search", json={"query": "x" * 5000}, headers=auth).status_code == 413
        assert client.post("/search", json={"query": ""}, headers=auth).status_code == 422
        assert client.get("/jobs/nope", headers=auth).status_code == 404
        scrape = client.get("/metrics", headers=auth)
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    found = samples(scrape.text)
    assert value(found, "ragline_http_requests_total", route="/search", method="POST", status="200") == 3
    assert value(found, "ragline_http_errors_total", route="/search", status="401") == 1
    assert value(found, "ragline_http_errors_total", route="/jobs/{job_id}", status="404") == 1  # the template
    for reason in ("unauthorized", "too_large", "invalid"):
        assert value(found, "ragline_http_refused_total", reason=reason) >= 1, reason
    assert value(found, "ragline_http_request_seconds_count", route="/search") == 6
    for stage in ("embed", "retrieve", "fuse", "payload", "highlight"):  # once per search, even a stage in two parts
        assert value(found, "ragline_stage_seconds_count", stage=stage) == 3, stage
    assert value(found, "ragline_sync_runs_total", outcome="ok") == 1
    assert value(found, "ragline_sync_seconds_count") == 1
    assert value(found, "ragline_index_documents") == 5 and value(found, "ragline_index_chunks") > 5


@pytest.mark.parametrize(("setting", "status"), [("open", 200), ("off", 404)])
def test_metrics_can_be_open_or_off(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, setting: str, status: int
) -> None:
    rag = make_app(tmp_path / "index", embedder, server={"api_key": KEY, "metrics": setting})
    with running_server(create_app(rag)) as url:
        assert httpx.get(f"{url}/metrics").status_code == status
        assert httpx.post(f"{url}/search", json={"query": "x"}).status_code == 401  # the API itself stays guarded
    rag.close()


def test_opentelemetry_spans_per_stage(demo_app: Ragline) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: ragline's tracer is a proxy that follows it

    response = demo_app.search(QUESTION, rerank=False)
    finished = exporter.get_finished_spans()
    (root,) = [s for s in finished if s.name == "ragline.search"]
    for stage in ("embed", "retrieve", "fuse", "payload", "highlight"):
        spans = [s for s in finished if s.name == f"ragline.{stage}"]  # fuse and payload come in two parts
        assert spans and all(s.parent is not None and s.parent.span_id == root.context.span_id for s in spans), stage
        assert all(s.context.trace_id == root.context.trace_id for s in spans)
        measured = [s.attributes["ragline.ms"] for s in spans if s.attributes]
        assert len(measured) == len(spans), stage
        assert sum(measured) == pytest.approx(response.timings_ms[stage], rel=1e-9)  # what the response reports
    assert root.attributes is not None and root.attributes["mode"] == "hybrid"


def test_json_log_lines(tmp_path: Path) -> None:
    record = logging.LogRecord("ragline.http", logging.INFO, __file__, 1, "POST %s %d", ("/search", 200), None)
    record.route, record.status = "/search", 200
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "POST /search 200" and line["level"] == "info" and line["logger"] == "ragline.http"
    assert line["route"] == "/search" and line["status"] == 200 and line["time"].endswith("+00:00")

    result = CliRunner().invoke(
        main, ["--log-format", "json", "-v", "--index", str(tmp_path / "index"), "ingest", str(DEMO_DOCS)]
    )
    assert result.exit_code == 0, result.output
    logged: list[dict[str, Any]] = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert logged and all({"time", "level", "logger", "message"} <= set(entry) for entry in logged)
    assert all(not line or line.startswith("{") for line in result.stderr.splitlines()), result.stderr[:500]
