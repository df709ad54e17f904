"""The LangChain and LlamaIndex retrievers, with the real frameworks: in process and over a real server on loopback,
called the ways apps call them (invoke, ainvoke, an LCEL chain; retrieve, aretrieve, a query engine)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from pipeline.access import Reader
from pipeline.app import Ragline
from pipeline.errors import RaglineError
from pipeline.faces.http import create_app, running_server
from pipeline.faces.identity import key_hash
from pipeline.models.embedder import SentenceTransformerEmbedder
from ragline.langchain import RaglineRetriever as LangChainRetriever
from ragline.llamaindex import RaglineRetriever as LlamaIndexRetriever
from tests.conftest import REPO, make_app

pytestmark = pytest.mark.integration

QUESTION = "How often should I descale the Aurora 2 espresso machine?"
KEY, BOB_KEY = "adapters-admin-key", "adapters-bob-key"
FRAMEWORKS = ("langchain", "llamaindex")
VOLATILE = ("highlights", "searched_query")  # being added to the search JSON; not what these tests are about


def retriever(framework: str, **kwargs: Any) -> Any:
    return (LangChainRetriever if framework == "langchain" else LlamaIndexRetriever)(**kwargs)


def call(found: Any, query: str, use_async: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(text, metadata) of each result, the way an app calls this framework's retriever; checks their types."""
    if isinstance(found, LangChainRetriever):
        docs = asyncio.run(found.ainvoke(query)) if use_async else found.invoke(query)
        assert all(type(d) is Document and d.id == d.metadata["chunk_id"] for d in docs)
        return [(d.page_content, d.metadata) for d in docs]
    hits = asyncio.run(found.aretrieve(query)) if use_async else found.retrieve(query)
    assert all(type(h) is NodeWithScore and type(h.node) is TextNode for h in hits)
    assert all(h.node.node_id == h.node.metadata["chunk_id"] and h.score == h.node.metadata["score"] for h in hits)
    return [(h.node.text, h.node.metadata) for h in hits]


def sources(found: list[tuple[str, dict[str, Any]]]) -> set[str]:
    return {meta["source"] for _, meta in found}


@pytest.fixture(scope="module")
def demo_url(demo_app: Ragline) -> Iterator[str]:
    """The demo index behind a real server with no key: it reads as an admin, as the in-process Python API."""
    with running_server(create_app(demo_app)) as url:
        yield url


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, demo_folder: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[Ragline, str]]:
    """The demo documents with access control on (the handbook is HR's) behind a server with an admin key and
    Bob's named key."""
    app = make_app(
        tmp_path_factory.mktemp("adapters-index"),
        embedder,
        access={
            "enabled": True,
            "rules": [{"path": "employee-handbook.md", "allow": ["group:hr"]}, {"path": "**", "allow": ["everyone"]}],
            "keys": [{"name": "bob", "sha256": key_hash(BOB_KEY), "principals": []}],
        },
        server={"api_key": KEY},
    )
    app.ingest(demo_folder)
    with running_server(create_app(app)) as url:
        yield app, url
    app.close()


@pytest.fixture(params=["in-process", "remote"])
def where(request: pytest.FixtureRequest, demo_app: Ragline, demo_url: str) -> dict[str, Any]:
    return {"rag": demo_app} if request.param == "in-process" else {"url": demo_url}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_framework_gets_its_own_documents_with_ragline_citations_and_scores(
    framework: str, use_async: bool, where: dict[str, Any], demo_app: Ragline
) -> None:
    found = call(retriever(framework, top_k=4, **where), QUESTION, use_async)
    expected = demo_app.search(QUESTION, top_k=4)
    assert [text for text, _ in found] == [r.chunk.text for r in expected.results] and len(found) == 4
    for rank, ((_, meta), want) in enumerate(zip(found, expected.results), start=1):
        assert meta["rank"] == rank and meta["chunk_id"] == want.chunk.id
        assert (meta["source"], meta["path"], meta["page"]) == (want.chunk.source, want.chunk.path, want.chunk.page)
        assert meta["heading"] == (" > ".join(want.chunk.heading) or None)
        assert meta["citation"] == want.chunk.citation  # as the CLI and the prompt's blocks cite it
        assert meta["scores"] == want.scores() and set(meta["scores"]) == {"dense", "bm25", "fused", "rerank"}
        assert meta["score"] == want.score
        assert meta["confidence"] == round(expected.confidence or 0, 4) and meta["low_confidence"] is not None
    first = found[0][1]
    assert first["citation"].startswith("aurora-2-manual.pdf, p. 2") and (first["source"], first["page"]) == (
        "aurora-2-manual.pdf",
        "2",
    )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_in_process_and_remote_give_the_same_results_and_metadata(
    framework: str, demo_app: Ragline, demo_url: str
) -> None:
    def stable(found: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        return [(text, {k: v for k, v in meta.items() if k not in VOLATILE}) for text, meta in found]

    for query in (QUESTION, "vacation days", "what changed in the firmware?"):
        local = call(retriever(framework, rag=demo_app, top_k=6), query)
        remote = call(retriever(framework, url=demo_url, top_k=6), query, use_async=True)
        assert [m["chunk_id"] for _, m in local] == [m["chunk_id"] for _, m in remote] and local
        assert stable(local) == stable(remote)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_filters_top_k_and_mode_are_honoured(framework: str, where: dict[str, Any]) -> None:
    assert len(call(retriever(framework, top_k=2, **where), QUESTION)) == 2
    handbook = call(retriever(framework, top_k=10, file_types=["MD"], **where), "vacation days")
    assert handbook and sources(handbook) == {"employee-handbook.md"}
    manual = call(retriever(framework, path="*.pdf", **where), QUESTION, use_async=True)
    assert manual and sources(manual) == {"aurora-2-manual.pdf"}
    page_two = call(retriever(framework, fields={"page_start": 2}, top_k=10, **where), QUESTION)
    assert page_two and {meta["page"] for _, meta in page_two} <= {"2", "2-3"}
    assert call(retriever(framework, path="nothing/", **where), QUESTION) == []
    bm25 = call(retriever(framework, mode="bm25", top_k=3, **where), QUESTION)
    assert bm25 and all(meta["scores"]["dense"] is None and meta["scores"]["bm25"] for _, meta in bm25)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_wrong_api_key_is_a_one_line_error_naming_401(
    framework: str, use_async: bool, guarded: tuple[Ragline, str]
) -> None:
    _, url = guarded
    assert call(retriever(framework, url=url, api_key=KEY), QUESTION, use_async)
    for key in ("wrong", None):
        with pytest.raises(RaglineError) as error:
            call(retriever(framework, url=url, api_key=key), QUESTION, use_async)
        message = str(error.value)
        assert "\n" not in message and f"the ragline server at {url} answered 401" in message
        assert ("unknown API key" if key else "missing bearer credential") in message


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_reader_applies_access_control_in_process_and_the_key_over_http(
    framework: str, guarded: tuple[Ragline, str]
) -> None:
    app, url = guarded
    hr = call(retriever(framework, rag=app, reader=Reader.person("alice", ["hr"]), top_k=10), "vacation days")
    assert "employee-handbook.md" in sources(hr)
    for bob in (
        retriever(framework, rag=app, reader=Reader.person("bob"), top_k=10),
        retriever(framework, url=url, api_key=BOB_KEY, top_k=10),
    ):
        for use_async in (False, True):
            seen = call(bob, "vacation days", use_async)
            assert seen and "employee-handbook.md" not in sources(seen)
    admin = call(retriever(framework, rag=app, top_k=10), "vacation days")  # the Python API reads as an admin
    assert "employee-handbook.md" in sources(admin)


def cited(docs: list[Document]) -> str:
    return "\n\n".join(f"[{doc.metadata['citation']}]\n{doc.page_content}" for doc in docs)


def test_langchain_apps_chain_it_with_lcel(where: dict[str, Any]) -> None:
    chain = LangChainRetriever(top_k=2, **where) | RunnableLambda(cited)
    text = chain.invoke(QUESTION)
    assert text.startswith("[aurora-2-manual.pdf, p. 2") and text.count("\n\n[") == 1
    assert asyncio.run(chain.ainvoke(QUESTION)) == text
    assert chain.batch([QUESTION, "vacation days"])[0] == text


def test_llamaindex_shows_the_llm_the_citation_only_and_runs_in_a_query_engine(where: dict[str, Any]) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    found = LlamaIndexRetriever(top_k=2, **where)
    hit = found.retrieve(QUESTION)[0]
    for_llm = hit.node.get_content(metadata_mode=MetadataMode.LLM)
    assert for_llm.startswith(f"citation: {hit.node.metadata['citation']}") and "scores" not in for_llm
    assert hit.node.get_content(metadata_mode=MetadataMode.EMBED) == hit.node.text
    engine = RetrieverQueryEngine.from_args(found, llm=MockLLM())
    answer = engine.query(QUESTION)
    assert [n.node.node_id for n in answer.source_nodes] == [n.node.node_id for n in found.retrieve(QUESTION)]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({}, "give rag= (a Ragline in this process) or url= (a ragline server)"),
        ({"rag": "demo", "url": "http://127.0.0.1:1"}, "give rag="),
        ({"rag": "demo", "api_key": "k"}, "api_key= is for url="),
        ({"url": "http://127.0.0.1:1", "reader": Reader.person("bob")}, "reader= is for rag="),
        ({"url": "127.0.0.1:8000"}, "is not an HTTP address"),
        ({"url": "http://127.0.0.1:1", "fields": {"text": "x"}}, "filter field 'text' is not a valid payload field"),
        ({"url": "http://127.0.0.1:1", "path": "*" * 9}, "wildcards"),
        ({"url": "http://127.0.0.1:1", "top_k": 0}, "top_k must be at least 1"),
    ],
)
def test_bad_arguments_fail_when_the_retriever_is_made(
    framework: str, arguments: dict[str, Any], says: str, demo_app: Ragline
) -> None:
    arguments = {k: demo_app if v == "demo" else v for k, v in arguments.items()}
    with pytest.raises(RaglineError, match=re.escape(says)):
        retriever(framework, **arguments)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_server_that_is_not_there_is_a_one_line_error(framework: str) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for use_async in (False, True):
        with pytest.raises(RaglineError, match=rf"^the ragline server at http://127.0.0.1:{port} did not answer: "):
            call(retriever(framework, url=f"http://127.0.0.1:{port}"), QUESTION, use_async)


def test_the_server_error_is_passed_on_in_one_line(demo_url: str) -> None:
    too_many = LlamaIndexRetriever(url=demo_url, top_k=1000)
    with pytest.raises(RaglineError, match=r"answered 422: top_k: Input should be less than or equal to 100$"):
        too_many.retrieve(QUESTION)
    unknown = LangChainRetriever(url=demo_url, file_types=["xyz"])
    with pytest.raises(RaglineError, match=r"answered 400: unknown file type 'xyz'"):
        unknown.invoke(QUESTION)


@pytest.mark.parametrize(("module", "extra"), [("langchain", "langchain_core"), ("llamaindex", "llama_index")])
def test_a_missing_framework_says_what_to_install(module: str, extra: str) -> None:
    code = f"import sys; sys.modules[{extra!r}] = None; import ragline.{module}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 1 and f"pip install 'ragline[{module}]'" in done.stderr.splitlines()[-1]


def readme_snippets() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## LangChain and LlamaIndex\n(.*?)^## ", readme, re.S | re.M)
    assert section, "README.md has no '## LangChain and LlamaIndex' section"
    return re.findall(r"^```python\n(.*?)^```", section.group(1), re.S | re.M)


def run_snippet(code: str, capsys: pytest.CaptureFixture[str]) -> str:
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_snippet"})  # noqa: S102 - the README's own code
    return capsys.readouterr().out


def test_the_readme_snippets_run_as_written(
    tmp_path: Path,
    demo_folder: Path,
    demo_url: str,
    embedder: SentenceTransformerEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The in-process one on an index built as ``make demo`` builds it; the HTTP one against a live server, only
    its port changed."""
    from pipeline.config import load_config, with_index

    in_process, remote = readme_snippets()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAGLINE_INDEX", raising=False)
    with Ragline(with_index(load_config(), ".ragline-demo"), embedder) as rag:
        rag.ingest(demo_folder)
    capsys.readouterr()
    out = run_snippet(in_process, capsys)
    assert re.match(r"1 aurora-2-manual\.pdf, p\. 2, Descaling \{'dense': 0\.\d+", out), out
    assert "\n[aurora-2-manual.pdf, p. 2, Descaling]\n" in out and len(out.splitlines()[:3]) == 3

    assert remote.count("http://127.0.0.1:8000") == 1
    out = run_snippet(remote.replace("http://127.0.0.1:8000", demo_url), capsys)
    assert re.match(r"\d+\.\d{3} aurora-2-manual\.pdf, p\. 2, Descaling\n", out), out
    assert len(out.splitlines()) == 3
