"""The shipped demo documents, indexed with the real MiniLM model into a real Qdrant Edge folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.config import Fusion
from pipeline.errors import RaglineError
from pipeline.filters import parse_filter
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.retrieval import SIGNAL_DEPTH, HybridRetriever, confidence, rank
from pipeline.stages.bm25 import query_vector
from tests.conftest import make_app

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("query", "source", "page", "heading", "phrase"),
    [
        ("How often should I descale the machine?", "aurora-2-manual.pdf", "2", None, "8 weeks"),
        # make demo's question, word for word: the FAQ's grind-size answer came first before chunks had context.
        ("How often should I descale the Aurora 2 espresso machine?", "aurora-2-manual.pdf", "2", None, "8 weeks"),
        ("What does error E-0x4F2 mean?", "aurora-2-manual.pdf", "3", None, "E-0x4F2"),
        (
            "How many vacation days do I get?",
            "employee-handbook.md",
            None,
            ("Employee handbook", "Time off", "Vacation"),
            "25 days",
        ),
        ("What temperature does firmware 2.2 brew at?", "release-notes.html", None, None, "92 °C"),
        (
            "How long is parental leave?",
            "employee-handbook.md",
            None,
            ("Employee handbook", "Time off", "Parental leave"),
            "16 weeks",
        ),
    ],
)
def test_right_chunk_first(
    demo_app: Ragline, query: str, source: str, page: str | None, heading: tuple | None, phrase: str
) -> None:
    top = demo_app.search(query, top_k=3).results[0]
    assert top.chunk.source == source
    assert phrase in top.chunk.text
    if page is not None:
        assert top.chunk.page == page
    if heading is not None:
        assert top.chunk.heading == heading


PARTS = {
    "gasket-a.txt": "GK-58213-Q",
    "gasket-b.txt": "GK-58231-R",
    "gasket-c.txt": "GK-85213-S",
    "gasket-d.txt": "GK-58123-T",
}


def _part_sheets(folder: Path) -> Path:
    folder.mkdir()
    for name, code in PARTS.items():
        (folder / name).write_text(
            f"Spare part {code}: group head gasket for the Aurora 2. Replace the gasket once a year "
            "or when water leaks around the portafilter. Order from the service shop.",
            encoding="utf-8",
        )
    return folder


def test_exact_code_only_bm25_finds(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Near-identical part sheets that differ only in their part number: BM25 finds the exact
    code and the dense side cannot tell the sheets apart (hybrid: the xfail below)."""
    folder = _part_sheets(tmp_path / "parts")
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(folder)
        for name, code in PARTS.items():
            assert app.search(code, top_k=1, mode="bm25").results[0].chunk.source == name
        dense_right = sum(
            app.search(code, top_k=1, mode="dense").results[0].chunk.source == name for name, code in PARTS.items()
        )
        assert dense_right < len(PARTS)


def test_hybrid_keeps_the_exact_code_on_top(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """The sheets differ by their part number alone, so their dense scores differ by a hair (a range of about
    0.025): min-max fusion stretched that over [0, 1] and, at dense weight 0.7, outvoted BM25's exact match.
    The floor on the dense range (``retrieval.min_dense_range``) keeps it from doing so."""
    folder = _part_sheets(tmp_path / "parts")
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(folder)
        assert all(app.search(code, top_k=1).results[0].chunk.source == name for name, code in PARTS.items())
    with make_app(tmp_path / "index", embedder, retrieval={"min_dense_range": 0.0}) as unfloored:
        right = sum(unfloored.search(code, top_k=1).results[0].chunk.source == name for name, code in PARTS.items())
        assert right < len(PARTS)


PARAPHRASE_DOCS = {
    "battery.txt": "The vehicle would not start this morning because the battery had drained overnight; "
    "a jump start from a neighbour fixed it.",
    "dashboard.txt": "Turn the dial on the dashboard to the car symbol to show the trip computer, then turn it "
    "back to leave the car menu.",
    "baking.txt": "Whisk two eggs with sugar until pale, then fold in the flour and bake for twenty minutes.",
}


def test_paraphrase_only_dense_finds(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """The query shares no word with the answer ('car won't turn on' vs 'vehicle would not start'):
    BM25 ranks the document that repeats 'car' and 'turn' first; dense and hybrid find the answer."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in PARAPHRASE_DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    query = "my car won't turn on"
    with make_app(tmp_path / "index", embedder) as app:
        app.ingest(folder)
        assert app.search(query, top_k=1, mode="bm25").results[0].chunk.source == "dashboard.txt"
        assert app.search(query, top_k=1, mode="dense").results[0].chunk.source == "battery.txt"
        assert "battery.txt" in [r.chunk.source for r in app.search(query, top_k=2).results]


def test_scores_per_stage(demo_app: Ragline) -> None:
    response = demo_app.search("descaling citric acid", top_k=5)
    first = response.results[0]
    assert first.dense is not None and first.bm25 is not None and first.fused is not None and first.rerank is None
    fused = [r.fused for r in response.results]
    assert fused == sorted(fused, reverse=True)
    assert {"embed", "retrieve", "fuse"} <= set(response.timings_ms)


@pytest.mark.parametrize("fusion", list(Fusion))
def test_every_fusion_finds_the_descaling_page(demo_app: Ragline, fusion: Fusion) -> None:
    top = demo_app.search("how often to descale with hard water", top_k=1, fusion=fusion).results[0]
    assert top.chunk.source == "aurora-2-manual.pdf" and top.chunk.page == "2"


def test_filters_apply_to_both_sides(demo_app: Ragline) -> None:
    only_md = demo_app.search("descale the machine", top_k=10, where=parse_filter(file_types=["md"]))
    assert only_md.results and {r.chunk.source for r in only_md.results} == {"employee-handbook.md"}
    by_glob = demo_app.search("temperature", top_k=10, where=parse_filter(path="*.html"))
    assert by_glob.results and {r.chunk.source for r in by_glob.results} == {"release-notes.html"}
    by_prefix = demo_app.search("temperature", top_k=10, where=parse_filter(path="faq.txt"))
    assert {r.chunk.source for r in by_prefix.results} == {"faq.txt"}
    by_field = demo_app.search("warranty", top_k=10, where=parse_filter(fields=["ext=pdf"]))
    assert {r.chunk.source for r in by_field.results} == {"aurora-2-manual.pdf"}
    nothing = demo_app.search("warranty", top_k=10, where=parse_filter(path="*.docx"))
    assert nothing.results == []


def test_prompt_cites_pages_within_budget(demo_app: Ragline) -> None:
    prompt, response = demo_app.context("How often should I descale the machine?", budget=400, top_k=5)
    assert prompt.blocks[0].source == "aurora-2-manual.pdf" and prompt.blocks[0].page == "2"
    assert "[1] aurora-2-manual.pdf, p. 2" in prompt.text
    assert "How often should I descale the machine?" in prompt.text
    context_tokens = sum(demo_app.embedder.tokens.count(b.render()) for b in prompt.blocks)
    assert context_tokens <= 400
    assert "prompt" in response.timings_ms


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_ranks_as_rank_over_every_candidates_document(demo_app: Ragline, mode: str) -> None:
    """Search weighs documents over the first ``document_candidates`` fused (here 5) and reads documents off
    the chunk ids; the sweep, tune and the confidence fit rank through ``rank`` from lists the store fetched
    with their documents. Both must give the same results and confidence."""
    store, config = demo_app.store(), demo_app.retrieval_config
    retriever = HybridRetriever(store, demo_app.embedder, config.model_copy(update={"document_candidates": 5}))
    for query in ("How often should I descale the machine?", "error E-0x4F2", "warranty period", "grind size"):
        got = retriever.retrieve(query, top_k=8, mode=mode)  # type: ignore[arg-type]
        terms = query_vector(query, tokenizer=store.meta.tokenizer)
        dense, sparse = store.search(demo_app.embedder.embed_query(query), terms, 400, documents=True)
        lists = (dense if mode != "bm25" else [], sparse if mode != "dense" else [])
        ranked = rank(*lists, mode, retriever.config, SIGNAL_DEPTH)  # type: ignore[arg-type]
        assert [r.chunk.id for r in got.results] == [f.id for f in ranked][:8]
        assert got.signals == confidence.features(*lists, ranked, len(terms) if mode != "dense" else 0)


def test_filter_mistakes_are_named_with_the_choices(demo_app: Ragline) -> None:
    both = demo_app.search("descale", top_k=20, where=parse_filter(file_types=["pdf,md"]), rerank=False)
    assert {r.chunk.metadata["ext"] for r in both.results} == {"pdf", "md"}
    with pytest.raises(RaglineError, match=r"unknown file type 'xyz': the index holds html, md, pdf, txt$"):
        demo_app.search("descale", where=parse_filter(file_types=["xyz"]))
    assert demo_app.search("descale", where=parse_filter(file_types=["docx"])).results == []  # a type, none here
    with pytest.raises(RaglineError, match=r"unknown file type 'mdx': did you mean md\? the index holds html"):
        demo_app.search("descale", where=parse_filter(file_types=["pdf", ".MDX"]))
    with pytest.raises(RaglineError, match="unknown filter field .page.: did you mean page_end or page_start"):
        demo_app.search("descale", where=parse_filter(fields=["page=4"]))
    with pytest.raises(RaglineError, match="unknown filter field 'subjekt': did you mean subject"):
        demo_app.search("descale", where=parse_filter(fields=["subjekt=Hello"]))
    on_page = demo_app.search("descale", where=parse_filter(fields=["page_start=2"]), rerank=False).results
    assert on_page and {r.chunk.page_start for r in on_page} == {2}
    exact = demo_app.search("descale", where=parse_filter(fields=["title=Aurora"]), rerank=False)
    assert exact.results == [] and "matches a field's whole value, exactly" in exact.notices[0]
