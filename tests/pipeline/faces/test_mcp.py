"""The MCP face, driven by the official SDK's own client over both transports: ``ragline mcp`` as a
subprocess on stdio, and ``/mcp`` on a real uvicorn server with bearer keys and access control."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.app import Ragline
from pipeline.faces.http import create_app, running_server
from pipeline.faces.identity import key_hash
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, ChatServer, make_app, recording_chat_server

pytestmark = pytest.mark.integration

QUESTION = "How often should I descale the Aurora 2 espresso machine?"
SECRET_DOC = "hr/salaries.md"
SECRET_TEXT = "# Salary bands\n\nThe salary bands for 2027 are listed under the code ZX-4471 for the hr team only.\n"
KEYS = {"alice": "key-of-alice-in-hr-0001", "bob": "key-of-bob-in-eng-0002"}
ADMIN_KEY = "the-admin-key-of-the-mcp-test"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def session(target: Any, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    """List the tools, then make each call, in one client session."""
    from mcp import Client

    async with Client(target) as client:
        tools = (await client.list_tools()).tools
        return tools, [await client.call_tool(name, args) for name, args in calls]


def http_target(url: str, key: str | None) -> Any:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=60))


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mcp") / "docs"
    shutil.copytree(DEMO_DOCS, folder)
    (folder / "hr").mkdir()
    (folder / SECRET_DOC).write_text(SECRET_TEXT)
    return folder


def test_stdio_session_lists_tools_and_answers(
    docs: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    index = tmp_path / "index"
    with make_app(index, embedder) as rag:
        rag.ingest(docs)
    from mcp.client.stdio import StdioServerParameters

    cli = "from pipeline.faces.cli import main; main()"
    server = StdioServerParameters(command=sys.executable, args=["-c", cli, "--index", str(index), "mcp"])
    calls = [
        ("search", {"query": QUESTION, "top_k": 3}),
        ("get_context", {"query": QUESTION, "budget": 400}),
        ("list_sources", {}),
        ("search", {"query": "descale", "file_types": ["nope"]}),
        ("search", {"query": "descale", "top_k": 0}),
        ("search", {"query": "ZX-4471 salary bands", "top_k": 1}),
    ]
    tools, (search, context, sources, bad_type, bad_k, secret) = run(session(server, calls))

    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"search", "get_context", "list_sources"}  # no ask: no LLM configured
    schema = by_name["search"].input_schema
    assert schema["required"] == ["query"] and schema["properties"]["query"]["maxLength"] == 2000
    assert schema["properties"]["top_k"]["minimum"] == 1 and "history" in schema["properties"]

    first = search.structured_content["results"][0]
    assert not search.is_error and (first["source"], first["page"]) == ("aurora-2-manual.pdf", "2")
    assert any("8 weeks" in first["text"][h["start"] : h["end"]] for h in first["highlights"])
    blocks = context.structured_content["blocks"]
    assert blocks[0]["citation"].startswith("aurora-2-manual.pdf, p. 2") and context.structured_content["budget"] == 400
    assert "confidence" in context.structured_content and "[1]" in context.structured_content["context"]
    assert sources.structured_content["sources"][0]["documents"] == 6
    for bad, words in (
        (bad_type, "unknown file type 'nope'"),
        (bad_k, "top_k: Input should be greater than or equal to 1"),
    ):
        text = bad.content[0].text
        assert bad.is_error and words in text and "\n" not in text
    assert secret.structured_content["results"][0]["source"] == SECRET_DOC  # stdio is the local admin


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    with recording_chat_server() as server:
        yield server


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, docs: Path, embedder: SentenceTransformerEmbedder, chat: ChatServer
) -> Iterator[str]:
    access = {
        "enabled": True,
        "rules": [{"path": "hr/**", "allow": ["group:hr"]}, {"path": "**", "allow": ["everyone"]}],
        "keys": [
            {"name": "alice", "sha256": key_hash(KEYS["alice"]), "principals": ["user:alice", "group:hr"]},
            {"name": "bob", "sha256": key_hash(KEYS["bob"]), "principals": ["user:bob"]},
        ],
    }
    rag: Ragline = make_app(
        tmp_path_factory.mktemp("mcp-index"),
        embedder,
        access=access,
        server={"api_key": ADMIN_KEY},
        llm={"base_url": chat.url, "model": "tiny-chat"},
    )
    rag.ingest(docs)
    with running_server(create_app(rag)) as url:
        yield url
    rag.close()


def test_http_transport_applies_each_callers_access(guarded: str, chat: ChatServer) -> None:
    probe = [("search", {"query": "ZX-4471 salary bands", "top_k": 10}), ("list_sources", {})]
    _, (alice, alice_sources) = run(session(http_target(guarded, KEYS["alice"]), probe))
    _, (bob, bob_sources) = run(session(http_target(guarded, KEYS["bob"]), probe))
    assert alice.structured_content["results"][0]["source"] == SECRET_DOC
    assert SECRET_DOC not in {r["source"] for r in bob.structured_content["results"]}
    assert "ZX-4471" not in json.dumps(bob.structured_content["results"])  # the query itself names it
    assert alice_sources.structured_content["sources"][0]["documents"] == 6
    assert bob_sources.structured_content["sources"][0]["documents"] == 5

    asked = [
        ("ask", {"query": "What are the salary bands?", "top_k": 10}),
        ("get_context", {"query": "salary bands ZX-4471"}),
    ]
    tools, (answer, context) = run(session(http_target(guarded, KEYS["bob"]), asked))
    assert "ask" in {t.name for t in tools} and answer.structured_content["answer"] == "Every 8 weeks [1]."
    assert "ZX-4471" not in chat.requests[-1]["body"]["messages"][-1]["content"]  # nothing of hr reached the LLM
    assert "ZX-4471" not in context.structured_content["context"]


@pytest.mark.parametrize("key", [None, "not-a-key", KEYS["alice"] + "x"])
def test_http_transport_refuses_missing_and_wrong_credentials(guarded: str, key: str | None) -> None:
    import httpx

    with pytest.raises(Exception) as failed:  # noqa: PT011 - the SDK raises an exception group around its error
        run(session(http_target(guarded, key), []))
    assert "Server returned an error response" in repr(failed.value)  # the SDK's words for the 401 below
    raw = httpx.post(
        f"{guarded}/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )
    assert raw.status_code == 401 and raw.headers["www-authenticate"] == "Bearer" and "error" in raw.json()


def test_follow_up_history_through_mcp(guarded: str, chat: ChatServer) -> None:
    history = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Every 8 weeks [1]."}]
    call = [("get_context", {"query": "and how long does that take?", "history": history})]
    _, (context,) = run(session(http_target(guarded, ADMIN_KEY), call))
    assert context.structured_content["searched_query"] == chat.rewrite
    assert context.structured_content["blocks"][0]["source"] == "aurora-2-manual.pdf"
