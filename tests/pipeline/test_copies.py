"""Copies collapse: a passage found in several files (a manual installed twice, a repeated paragraph) is one
result that names the others, and the next different chunk takes the freed place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.app import Ragline, SearchResponse
from pipeline.faces.http.responses import SearchResponse as SearchSchema
from pipeline.faces.render import render_results, search_dict
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.retrieval.documents import collapse_copies
from pipeline.types import Chunk, ScoredChunk
from tests.conftest import ingested_app, make_app

QUESTION = "How often should I descale the kettle?"
MANUAL = (
    "# Descaling\n\nDescale the Zephyr kettle every eight weeks with a citric acid solution, then rinse it twice "
    "with clean water.\n\n# Filters\n\nThe Zephyr kettle has a mesh limescale filter behind the spout; lift it "
    "out and rinse it under the tap once a month.\n"
)
OTHERS = {
    "hardness.md": "# Water hardness\n\nHard water leaves limescale faster: in a hard-water area descale the kettle "
    "every four weeks.\n",
    "warranty.md": "# Warranty\n\nThe warranty covers the heating element for two years if the kettle was descaled "
    "as the manual says.\n",
}


def scored(source: str, text: str, score: float) -> ScoredChunk:
    return ScoredChunk(Chunk(f"{source}-{score}", source, source, text, 0, 0, len(text)), fused=score)


@pytest.mark.unit
def test_each_text_once_in_order_with_its_copies() -> None:
    results = [
        scored("a.md", "Descale every  eight weeks.", 0.9),
        scored("b.md", "Rinse the filter.", 0.8),
        scored("copy/a.md", "Descale every eight\nweeks.", 0.7),  # the same words, spaced otherwise
        scored("c.md", "Descale every eight weeks!", 0.6),  # other text
        scored("d.md", "Rinse the filter.", 0.5),
    ]
    kept = collapse_copies(results)
    assert [r.chunk.source for r in kept] == ["a.md", "b.md", "c.md"]
    assert [[c.source for c in r.copies] for r in kept] == [["copy/a.md"], ["d.md"], []]
    assert [r.fused for r in kept] == [0.9, 0.8, 0.6]  # the best of each text stands for it
    assert collapse_copies(kept) == kept  # a second pass (the next round of results) changes nothing


@pytest.mark.unit
def test_only_other_files_are_named_as_copies() -> None:
    """A paragraph repeated within the result's own file folds into it too, but is no other place to look."""
    [kept] = collapse_copies(
        [scored("a.md", "Rinse.", 0.9), scored("a.md", "Rinse.", 0.8), scored("b.md", "Rinse.", 0.7)]
    )
    assert [c.source for c in kept.copies] == ["a.md", "b.md"]
    response = SearchResponse("rinse", [kept], {}, reranked=False)
    assert search_dict(response)["results"][0]["copies"] == ["b.md"]
    assert "also in: b.md\n" in render_results(response)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = tmp_path_factory.mktemp("copies") / "docs"
    (docs / "backup").mkdir(parents=True)
    for name in ("manual.md", "backup/manual.md"):
        (docs / name).write_text(MANUAL)
    for name, text in OTHERS.items():
        (docs / name).write_text(text)
    return docs


@pytest.fixture(scope="module")
def rag(
    tmp_path_factory: pytest.TempPathFactory, folder: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[Ragline]:
    yield from ingested_app(tmp_path_factory.mktemp("copies-index"), embedder, folder)


@pytest.mark.integration
def test_a_copied_file_is_one_result_and_the_next_file_moves_up(rag: Ragline) -> None:
    response = rag.search(QUESTION, top_k=4)
    texts = [" ".join(r.chunk.text.split()) for r in response.results]
    assert len(texts) == 4 and len(set(texts)) == 4  # four results, four different passages
    sources = {r.chunk.source for r in response.results}
    assert {"hardness.md", "warranty.md"} <= sources  # the places the copies would have taken
    manual = [r for r in response.results if r.chunk.source.endswith("manual.md")]
    assert len(manual) == 2  # Descaling and Filters, each once
    for result in manual:
        assert [c.source for c in result.copies] == [
            {"manual.md": "backup/manual.md", "backup/manual.md": "manual.md"}[result.chunk.source]
        ]
    first = search_dict(response)["results"][0]
    assert first["copies"] and SearchSchema.model_validate(search_dict(response)).results[0].copies == first["copies"]
    assert f"also in: {first['copies'][0]}" in render_results(response)
    from ragline.langchain import RaglineRetriever

    documents = RaglineRetriever(rag=rag, top_k=4).invoke(QUESTION)
    assert [d.metadata.get("copies", []) for d in documents] == [r["copies"] for r in search_dict(response)["results"]]


@pytest.mark.integration
def test_places_left_by_many_copies_are_filled_from_every_candidate(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Twelve copies fill the first ten fused candidates (the head ranked before payloads are read), so the
    places they free are filled by ranking the rest of the candidate lists too."""
    share = tmp_path / "share"
    for n in range(12):
        (share / f"copy-{n:02d}").mkdir(parents=True)
        (share / f"copy-{n:02d}" / "manual.md").write_text(MANUAL)
    for name, text in OTHERS.items():
        (share / name).write_text(text)
    app = make_app(tmp_path / "index", embedder, retrieval={"document_candidates": 1})
    try:
        app.ingest(share)
        results = app.search(QUESTION, top_k=4).results
    finally:
        app.close()
    assert len(results) == 4 and {"hardness.md", "warranty.md"} <= {r.chunk.source for r in results}
    assert sorted(len(r.copies) for r in results) == [0, 0, 11, 11]


@pytest.mark.integration
def test_collapse_off_returns_every_copy(tmp_path: Path, folder: Path, embedder: SentenceTransformerEmbedder) -> None:
    app = make_app(tmp_path / "index", embedder, retrieval={"collapse_copies": False})
    try:
        app.ingest(folder)
        response = app.search(QUESTION, top_k=4)
    finally:
        app.close()
    sources = [r.chunk.source for r in response.results]
    assert {"manual.md", "backup/manual.md"} <= set(sources)
    assert all(not r.copies for r in response.results)
    assert len({" ".join(r.chunk.text.split()) for r in response.results}) < 4  # a passage twice


@pytest.mark.integration
def test_a_copy_the_caller_may_not_read_is_never_named(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """The manual also lies in ``secret/`` (admins alone) and ``hr/`` (group:hr): the copies a result names are
    candidates the caller could read, so a copy in a folder it may not read is not even hinted at."""
    from pipeline.access import Reader

    share = tmp_path / "share"
    for copy in ("manual.md", "secret/manual.md", "hr/manual.md"):
        (share / copy).parent.mkdir(parents=True, exist_ok=True)
        (share / copy).write_text(MANUAL)
    rules = [{"path": "hr/**", "allow": ["group:hr"]}, {"path": "manual.md", "allow": ["everyone"]}]
    app = make_app(tmp_path / "index", embedder, access={"enabled": True, "rules": rules, "admins": ["group:it"]})
    try:
        app.ingest(share)
        seen = {}
        for name, reader in {
            "admin": Reader.holding(["group:it"], admins=["group:it"]),
            "hr": Reader.holding(["group:hr"]),
            "anyone": Reader.holding([]),
        }.items():
            found = search_dict(app.search(QUESTION, top_k=3, reader=reader))["results"]
            seen[name] = {r["path"] for r in found if r["text"].startswith("Descale")} | {
                p for r in found if r["text"].startswith("Descale") for p in r["copies"]
            }
    finally:
        app.close()
    assert seen["admin"] == {"manual.md", "hr/manual.md", "secret/manual.md"}  # one result, two copies named
    assert seen["hr"] == {"manual.md", "hr/manual.md"}
    assert seen["anyone"] == {"manual.md"}
