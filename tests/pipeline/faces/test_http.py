"""The HTTP API: a real uvicorn server on loopback (httpx), plus in-process checks (TestClient)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from pipeline.app import Ragline
from pipeline.faces.http import create_app, running_server
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, ChatServer, ingested_app, make_app

pytestmark = pytest.mark.integration

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUESTION = "How often should I descale the machine?"


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("api-docs") / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    return folder


@pytest.fixture(scope="module")
def rag(
    tmp_path_factory: pytest.TempPathFactory, docs: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[Ragline]:
    yield from ingested_app(
        tmp_path_factory.mktemp("api-index"),
        embedder,
        docs,
        api_key=KEY,
        sources={"demo": str(docs)},
        max_top_k=20,
        max_body_bytes=4096,
    )


def test_health_needs_no_key_and_everything_else_does(live: httpx.Client) -> None:
    assert live.get("/health").json()["status"] == "ok"
    missing = live.post("/search", json={"query": QUESTION})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = live.get("/stats", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "unknown API key"}


def test_search_returns_cited_chunks_with_scores_and_timings(live: httpx.Client) -> None:
    response = live.post("/search", json={"query": QUESTION, "top_k": 3}, headers=AUTH)
    assert response.status_code == 200
    data = response.json()
    first = data["results"][0]
    assert (first["source"], first["page"]) == ("aurora-2-manual.pdf", "2") and "8 weeks" in first["text"]
    assert set(first["scores"]) == {"dense", "bm25", "fused", "rerank"} and first["scores"]["fused"] is not None
    assert len(data["results"]) == 3
    assert {"embed", "retrieve", "fuse"} <= set(data["timings_ms"])


def test_search_filters(live: httpx.Client) -> None:
    only_md = live.post(
        "/search", json={"query": "vacation days", "filters": {"file_types": ["md"]}, "top_k": 20}, headers=AUTH
    ).json()
    assert only_md["results"] and {r["source"] for r in only_md["results"]} == {"employee-handbook.md"}
    by_glob = live.post("/search", json={"query": QUESTION, "filters": {"path": "*.pdf"}}, headers=AUTH).json()
    assert {r["source"] for r in by_glob["results"]} == {"aurora-2-manual.pdf"}
    no_match = live.post("/search", json={"query": QUESTION, "filters": {"path": "nothing/"}}, headers=AUTH)
    assert no_match.status_code == 200 and no_match.json()["results"] == []


def test_validation_errors_name_the_field(live: httpx.Client) -> None:
    response = live.post("/search", json={"query": "", "top_k": 500}, headers=AUTH)
    assert response.status_code == 422
    error = response.json()["error"]
    assert "query: String should have at least 1 character" in error
    assert "top_k: Input should be less than or equal to 20" in error
    unknown = live.post("/search", json={"query": "x", "limit": 3}, headers=AUTH)
    assert unknown.status_code == 422 and "limit: Extra inputs are not permitted" in unknown.json()["error"]
    bad_field = live.post("/search", json={"query": "x", "filters": {"fields": {"text": "a"}}}, headers=AUTH)
    assert bad_field.status_code == 400 and "'text' is not a valid payload field" in bad_field.json()["error"]


def test_body_size_limit(live: httpx.Client) -> None:
    big = {"query": "x" * 5000}
    assert live.post("/search", json=big, headers=AUTH).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body streams
        yield b'{"query": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    streamed = live.post("/search", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert streamed.status_code == 413 and "over 4096 bytes" in streamed.json()["error"]


def test_context_fits_the_budget(live: httpx.Client, rag: Ragline) -> None:
    data = live.post("/context", json={"query": QUESTION, "top_k": 3}, headers=AUTH).json()
    assert data["blocks"][0]["citation"].startswith("aurora-2-manual.pdf, p. 2")
    assert "8 weeks" in data["blocks"][0]["text"] and data["context"].startswith("[1] aurora-2-manual.pdf, p. 2")
    assert [b["number"] for b in data["blocks"]] == list(range(1, len(data["blocks"]) + 1))
    assert data["budget"] == 1500 and 0 < rag.embedder.tokens.count(data["context"]) <= 1500
    assert "prompt" in data["timings_ms"]

    tight = live.post("/context", json={"query": QUESTION, "budget": 120}, headers=AUTH).json()
    assert tight["budget"] == 120 and tight["dropped_chunks"] > 0
    assert (
        rag.embedder.tokens.count("\n\n".join(f"[{b['number']}] {b['citation']}\n{b['text']}" for b in tight["blocks"]))
        <= 120
    )


def test_ask_without_llm_is_503(live: httpx.Client) -> None:
    response = live.post("/ask", json={"query": QUESTION}, headers=AUTH)
    assert response.status_code == 503 and "no LLM endpoint configured" in response.json()["error"]


def test_ingest_job_lifecycle(live: httpx.Client, docs: Path) -> None:
    (docs / "new-note.txt").write_text("The rooftop garden opens every Friday at noon for all staff.\n")
    started = live.post("/ingest", json={"source": "demo"}, headers=AUTH)
    assert started.status_code == 202 and started.json()["status"] in {"queued", "running", "done"}
    job_id = started.json()["id"]
    deadline = time.monotonic() + 120
    while (job := live.get(f"/jobs/{job_id}", headers=AUTH).json())["status"] in {"queued", "running"}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["status"] == "done", job
    assert job["summary"]["added"] == 1 and job["summary"]["unchanged"] == 5
    assert job["progress"] == {"phase": "embedding", "done": 1, "total": 1, "coverage": 1.0}  # written, then embedded
    stats = live.get("/stats", headers=AUTH).json()
    assert stats["documents"] == 6 and stats["last_sync"]["job"] == job_id and stats["coverage"] == 1.0
    listed = live.get("/jobs", headers=AUTH).json()["jobs"]
    assert listed[0]["id"] == job_id and listed[0]["summary"]["added"] == 1
    assert live.get("/jobs").status_code == 401
    hit = live.post("/search", json={"query": "When does the rooftop garden open?", "top_k": 1}, headers=AUTH)
    assert hit.json()["results"][0]["source"] == "new-note.txt" and hit.json()["coverage"] == 1.0


def test_ingest_refuses_paths_and_unknown_sources(live: httpx.Client) -> None:
    unknown = live.post("/ingest", json={"source": "/etc"}, headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown source '/etc'; known sources: demo"
    with_path = live.post("/ingest", json={"source": "demo", "path": "/etc"}, headers=AUTH)
    assert with_path.status_code == 422
    assert live.get("/jobs/does-not-exist", headers=AUTH).status_code == 404


def test_every_response_has_a_typed_schema(live: httpx.Client) -> None:
    """Each 2xx response names a model with its properties (it was ``additionalProperties: true``)."""
    schema = live.get("/openapi.json").json()
    models = schema["components"]["schemas"]
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            ok = next(v for k, v in operation["responses"].items() if k.startswith("2"))
            ref = ok["content"]["application/json"]["schema"]["$ref"]
            assert models[ref.split("/")[-1]]["properties"], (method, path)
    result = models["SearchResult"]["properties"]
    assert {"source", "root", "path", "page", "scores"} <= set(result)
    assert models["Stats"]["properties"]["roots"]["items"]["$ref"].endswith("/Root")


def test_the_api_docs_load_their_scripts_from_this_server(live: httpx.Client) -> None:
    """/docs and /redoc took Swagger UI and ReDoc from a CDN: blank with no internet."""
    for page in ("/docs", "/redoc"):
        html = live.get(page).text
        scripts = [part.split('"')[1] for part in html.split("<script src=")[1:]]
        assert scripts and all(src.startswith("/") for src in scripts), (page, scripts)
        assert "cdn" not in html.lower()
        for src in scripts:
            asset = live.get(src)
            assert asset.status_code == 200 and len(asset.content) > 100_000


def test_openapi_schema_shows_the_limits(live: httpx.Client) -> None:
    schema = live.get("/openapi.json").json()
    assert {"/search", "/context", "/ask", "/ingest", "/jobs/{job_id}", "/health", "/stats"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["SearchRequest"]["properties"]
    assert request["query"]["maxLength"] == 2000


def test_ask_sends_the_context_to_the_llm(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, chat_server: ChatServer, docs: Path
) -> None:
    from fastapi.testclient import TestClient

    app = make_app(tmp_path / "index", embedder, llm={"base_url": chat_server.url, "model": "tiny-chat"})
    app.ingest(DEMO_DOCS)
    with TestClient(create_app(app)) as client:
        data = client.post("/ask", json={"query": QUESTION}).json()
    app.close()
    assert data["answer"] == "Every 8 weeks [1]."
    assert data["sources"][0]["citation"].startswith("aurora-2-manual.pdf, p.")
    assert "llm" in data["timings_ms"]
    sent = chat_server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["body"]["model"] == "tiny-chat"
    content = sent["body"]["messages"][0]["content"]
    assert "[1] aurora-2-manual.pdf, p." in content and "8 weeks" in content and QUESTION in content


def test_key_from_environment_wins_and_failed_job_reports(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    gone = tmp_path / "gone"
    gone.mkdir()
    app = make_app(tmp_path / "index", embedder, server={"api_key": "from-config", "sources": {"old": str(gone)}})
    monkeypatch.setenv("RAGLINE_API_KEY", "from-env")
    gone.rmdir()
    with TestClient(create_app(app)) as client:
        assert client.get("/stats", headers={"Authorization": "Bearer from-config"}).status_code == 401
        env_auth = {"Authorization": "Bearer from-env"}
        no_index = client.post("/search", json={"query": "x"}, headers=env_auth)
        assert no_index.status_code == 503 and "no index at" in no_index.json()["error"]
        job_id = client.post("/ingest", json={"source": "old"}, headers=env_auth).json()["id"]
        deadline = time.monotonic() + 30
        while (job := client.get(f"/jobs/{job_id}", headers=env_auth).json())["status"] in {"queued", "running"}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    app.close()
    assert job["status"] == "failed" and "no such file or folder" in job["error"]


def test_overload_is_refused_fast_not_queued(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """With one request allowed in flight, a second one gets 503 at once while the first (a slow LLM call) runs."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    arrived, release = threading.Event(), threading.Event()

    class SlowChat(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.set()
            release.wait(timeout=30)
            reply = b'{"choices": [{"message": {"content": "late"}}]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    chat = HTTPServer(("127.0.0.1", 0), SlowChat)
    threading.Thread(target=chat.serve_forever, daemon=True).start()
    app = make_app(
        tmp_path / "index",
        embedder,
        server={"max_concurrent": 1},
        llm={"base_url": f"http://127.0.0.1:{chat.server_port}/v1", "model": "slow"},
    )
    app.ingest(DEMO_DOCS)
    with running_server(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        slow: dict[str, Any] = {}
        asking = threading.Thread(target=lambda: slow.update(r=client.post("/ask", json={"query": QUESTION})))
        asking.start()
        assert arrived.wait(timeout=30)  # the /ask is in flight, waiting on the LLM
        busy = client.get("/stats")  # queued behind the held /ask, this would wait until release: it must not
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1" and "server busy" in busy.json()["error"]
        assert client.get("/health").status_code == 200  # health checks always pass
        release.set()
        asking.join(timeout=30)
        assert slow["r"].status_code == 200 and slow["r"].json()["answer"] == "late"
        assert client.get("/stats").status_code == 200
    chat.shutdown()
    app.close()


def test_load_script_smoke(demo_app: Ragline) -> None:
    """bench/load_api.py's driver on a small index: every request answered, none refused or failed."""
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("load_api", REPO / "bench" / "load_api.py")
    assert spec is not None and spec.loader is not None
    load_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_api)
    result = load_api.run_load(demo_app, [QUESTION, "vacation days", "error E-0x4F2"], 60, 4, 120)
    assert result["requests"] == 60 and result["ok"] == 60 and result["errors"] == 0 and result["refused"] == 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"] <= result["latency_ms"]["p99"]


def test_searches_stay_correct_while_an_ingest_job_writes(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    bulk = tmp_path / "bulk"
    bulk.mkdir()
    for i in range(80):
        (bulk / f"note-{i:03}.txt").write_text(
            f"Meeting note {i}. The team reviewed shipment batch {i} and the warehouse schedule.\n\n"
            + " ".join(f"Item {i}-{j} was checked and logged." for j in range(60))
        )
    app = make_app(tmp_path / "index", embedder, server={"sources": {"bulk": str(bulk)}})
    app.ingest(DEMO_DOCS)
    with running_server(create_app(app)) as url, httpx.Client(base_url=url, timeout=60) as client:
        job_id = client.post("/ingest", json={"source": "bulk"}).json()["id"]
        during = 0
        while client.get(f"/jobs/{job_id}").json()["status"] in {"queued", "running"}:
            first = client.post("/search", json={"query": QUESTION, "top_k": 1}).json()["results"][0]
            assert (first["source"], first["page"]) == ("aurora-2-manual.pdf", "2")
            during += 1
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "done" and job["summary"]["added"] == 80
        assert during > 0  # searches were answered while the job wrote
        assert client.get("/stats").json()["documents"] == 85
        hit = client.post("/search", json={"query": "shipment batch 42 warehouse", "top_k": 1}).json()["results"][0]
        assert hit["source"] == "note-042.txt"
    app.close()


def test_stats_keeps_the_last_sync_of_a_cli_ingest(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """/stats said ``last_sync: null`` after an ingest outside the server: the index records its syncs."""
    app = make_app(tmp_path / "index", embedder)
    app.ingest(DEMO_DOCS)
    before = time.time()
    with TestClient(create_app(app)) as client:
        last = client.get("/stats").json()["last_sync"]
    app.close()
    assert last["job"] is None and last["source"] == "demo_docs" and last["folder"] == str(DEMO_DOCS)
    assert before - 120 < last["finished"] <= before + 1


def test_sources_are_read_beside_the_config_and_checked_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.config import load_config
    from pipeline.errors import RaglineError
    from pipeline.faces.http.serve import check_sources

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "docs").mkdir()
    config_file = tmp_path / "conf" / "ragline.toml"
    config_file.write_text('[server]\nsources = { docs = "docs", gone = "../nowhere", abs = "/tmp" }\n', "utf-8")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    sources = load_config(config_file).server.sources
    assert sources == {"docs": str(tmp_path / "conf" / "docs"), "gone": str(tmp_path / "nowhere"), "abs": "/tmp"}
    with pytest.raises(RaglineError, match=f"sources: gone = {tmp_path / 'nowhere'} is not a folder"):
        check_sources(Ragline(load_config(config_file)))
