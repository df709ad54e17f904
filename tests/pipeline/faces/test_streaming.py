"""Streamed answers and follow-up questions over real HTTP: uvicorn in front, a loopback OpenAI-compatible
server behind that streams Server-Sent Events (tests/conftest.py), read with httpx-sse as a client would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from httpx_sse import connect_sse

from pipeline.app import Ragline
from pipeline.faces.cli import main
from pipeline.faces.http import create_app, running_server
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import ANSWER, DEMO_DOCS, ChatServer, make_app, recording_chat_server

pytestmark = pytest.mark.integration

QUESTION = "How often should I descale the Aurora 2 espresso machine?"
FOLLOW_UP = "and how long does that take?"
HISTORY = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Every 8 weeks [1]."}]


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    with recording_chat_server() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(chat: ChatServer) -> None:
    chat.requests.clear()
    chat.tokens, chat.delay_s, chat.streamed = ("Every ", "8 ", "weeks ", "[1]."), 0.0, 0
    chat.client_left.clear()


@pytest.fixture(scope="module")
def rag(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder, chat: ChatServer
) -> Iterator[Ragline]:
    app = make_app(tmp_path_factory.mktemp("stream"), embedder, llm={"base_url": chat.url, "model": "tiny-chat"})
    app.ingest(DEMO_DOCS)
    yield app
    app.close()


@pytest.fixture(scope="module")
def url(rag: Ragline) -> Iterator[str]:
    with running_server(create_app(rag)) as base:
        yield base


def events(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    with httpx.Client(timeout=60) as client, connect_sse(client, "POST", f"{url}/ask", json=body) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(sse.event, json.loads(sse.data)) for sse in source.iter_sse()]


def test_stream_sends_sources_then_tokens_then_done(url: str, chat: ChatServer) -> None:
    got = events(url, {"query": QUESTION, "stream": True})
    names = [name for name, _ in got]
    assert names == ["sources", "token", "token", "token", "token", "done"]
    sources = got[0][1]
    assert sources["results"][0]["source"] == "aurora-2-manual.pdf" and sources["results"][0]["page"] == "2"
    assert sources["sources"][0]["citation"].startswith("aurora-2-manual.pdf, p. 2")
    assert [data["text"] for name, data in got if name == "token"] == list(chat.tokens)
    done = got[-1][1]
    assert done["answer"] == ANSWER and done["timings_ms"]["llm"] > 0 and "retrieve" in done["timings_ms"]
    sent = chat.requests[-1]["body"]
    assert sent["stream"] is True and sent["messages"][-1]["content"] == sources["prompt"]


def test_a_client_that_leaves_stops_the_upstream_request(url: str, chat: ChatServer) -> None:
    chat.tokens, chat.delay_s = tuple(f"t{i} " for i in range(400)), 0.02
    with httpx.Client(timeout=60) as client:
        with connect_sse(client, "POST", f"{url}/ask", json={"query": QUESTION, "stream": True}) as source:
            seen = []
            for sse in source.iter_sse():
                seen.append(sse.event)
                if seen.count("token") == 3:
                    break  # leaving the block closes the connection
    assert chat.client_left.wait(10), "the upstream stream was still being read after the client left"
    assert chat.streamed < 100, chat.streamed  # 400 tokens take 8 s; the upstream stopped within a second or so


def test_stream_errors_come_as_an_event_and_bad_requests_before_it(
    url: str, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    with httpx.Client(timeout=60) as client:
        refused = client.post(
            f"{url}/ask", json={"query": QUESTION, "stream": True, "filters": {"file_types": ["nope"]}}
        )
    assert refused.status_code == 400 and "nope" in refused.json()["error"]
    down = make_app(tmp_path / "index", embedder, llm={"base_url": "http://127.0.0.1:9/v1", "model": "m"})
    down.ingest(DEMO_DOCS)
    with running_server(create_app(down)) as other:
        got = events(other, {"query": QUESTION, "stream": True})
    down.close()
    assert [name for name, _ in got] == ["sources", "error"]
    assert "unreachable" in got[1][1]["error"] and "\n" not in got[1][1]["error"]


def test_follow_up_is_rewritten_by_the_llm(url: str, chat: ChatServer) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/ask", json={"query": FOLLOW_UP, "history": HISTORY}).json()
    assert answer["query"] == FOLLOW_UP and answer["searched_query"] == chat.rewrite
    rewrite, final = chat.requests[-2]["body"], chat.requests[-1]["body"]
    assert QUESTION in rewrite["messages"][0]["content"] and FOLLOW_UP in rewrite["messages"][0]["content"]
    assert [m["role"] for m in final["messages"]] == ["user", "assistant", "user"]  # the chat, then the prompt
    assert final["messages"][0]["content"] == QUESTION
    assert answer["results"][0]["source"] == "aurora-2-manual.pdf"
    assert "rewrite" in answer["timings_ms"]


def test_follow_up_without_an_llm_searches_with_the_last_question(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    plain = make_app(tmp_path / "index", embedder)
    plain.ingest(DEMO_DOCS)
    with running_server(create_app(plain)) as base, httpx.Client(base_url=base, timeout=60) as client:
        alone = client.post("/context", json={"query": FOLLOW_UP}).json()
        followed = client.post("/context", json={"query": FOLLOW_UP, "history": HISTORY}).json()
        too_many = client.post("/search", json={"query": "x", "history": [HISTORY[0]] * 51})
        bad_role = client.post("/search", json={"query": "x", "history": [{"role": "system", "content": "hi"}]})
    plain.close()
    assert alone["searched_query"] == FOLLOW_UP
    assert followed["searched_query"] == f"{QUESTION} {FOLLOW_UP}"
    assert followed["blocks"][0]["source"] == "aurora-2-manual.pdf"
    assert too_many.status_code == 422 and "history" in too_many.json()["error"]
    assert bad_role.status_code == 422 and "role" in bad_role.json()["error"]


def test_results_carry_highlighted_sentences(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        first = client.post("/search", json={"query": QUESTION, "top_k": 3}).json()["results"][0]
    marked = [first["text"][h["start"] : h["end"]] for h in first["highlights"]]
    assert any("descaled every 8 weeks" in m for m in marked), marked
    assert all(h["end"] > h["start"] for h in first["highlights"])


def test_cli_ask_stream_prints_tokens_as_they_come(chat: ChatServer, tmp_path: Path) -> None:
    config = tmp_path / "ragline.toml"
    config.write_text(f'[llm]\nbase_url = "{chat.url}"\nmodel = "tiny-chat"\n[rerank]\nenabled = false\n')
    common = ["--config", str(config), "--index", str(tmp_path / "index")]
    assert CliRunner().invoke(main, [*common, "ingest", str(DEMO_DOCS)]).exit_code == 0
    args = [*common, "ask", QUESTION, "--stream"]
    chat.delay_s = 0.2
    started = time.perf_counter()
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    elapsed = time.perf_counter() - started
    got = [json.loads(line) for line in lines]
    assert [g["event"] for g in got] == ["sources", "token", "token", "token", "token", "done"]
    assert got[-1]["answer"] == ANSWER and elapsed >= 0.8  # four tokens, 0.2 s apart, read as they came
    chat.delay_s = 0.0
    text = CliRunner().invoke(main, args, catch_exceptions=False).stdout
    assert text.rstrip().endswith("== answer ==\n" + ANSWER) and "== sources ==" in text
