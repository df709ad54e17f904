"""Pseudo-questions for ``ragline tune`` (issue 14, item 5): drawn from an index's own chunks, and, in a
one-window document, the window scored exactly as if the question's sentence had never been in it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.eval.pseudo import PseudoQuestion, cut_scores, pseudo_questions, put_back
from pipeline.filters import SearchFilter
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.stages.bm25 import query_vector
from pipeline.stores.base import Hit, Store
from pipeline.types import Chunk
from tests.conftest import make_app


def _chunk(cid: str, document: str, text: str, heading: tuple[str, ...] = ()) -> Chunk:
    return Chunk(cid, document, f"{document}.txt", text, 0, 0, len(text), heading=heading)


PROSE = "The pump pushes hot water through the coffee puck at nine bar of pressure for thirty seconds."
REST = "Grind the coffee beans fine and tamp them evenly. Warm the cup first: the pump then holds a steady pressure."


@pytest.mark.unit
def test_headings_that_name_one_document_become_questions() -> None:
    chunks = [
        _chunk("a1", "A", "x", ("Descaling the boiler",)),
        _chunk("b1", "B", "y", ("Examples",)),
        _chunk("c1", "C", "z", ("Examples",)),  # shared by two documents: ambiguous, left out
        _chunk("d1", "D", "w", ("Pump",)),  # one word says too little
    ]
    questions = pseudo_questions(chunks, count=10)
    assert [(q.text, q.kind, q.document) for q in questions] == [("descaling the boiler", "heading", "A")]


@pytest.mark.unit
def test_a_sentence_question_hides_every_window_that_holds_it_or_is_cut_out_of_a_lone_window() -> None:
    chunks = [
        _chunk("a1", "A", f"Intro words here. {PROSE}"),
        _chunk("a2", "A", f"{PROSE} More follows."),  # an overlapping neighbour holds it too
        _chunk("a3", "A", "Cleaning the group head needs a brush and five minutes of patience every week."),
        _chunk("b1", "B", f"{PROSE} Tamp it evenly. Warm the cup. Then pull the shot."),  # one window: cut out of it
        _chunk("c1", "C", PROSE),  # nothing would be left of it to find it by
    ]
    questions = {q.document: q for q in pseudo_questions(chunks, count=20) if q.text == PROSE}
    assert set(questions) == {"A", "B"}
    assert set(questions["A"].removed) == {"a1", "a2"} and not questions["A"].cut_from
    assert questions["B"].removed == ("b1",) and questions["B"].cut_from == "b1"


@pytest.mark.unit
def test_questions_are_spread_over_documents_and_reproducible() -> None:
    chunks = [
        _chunk(f"{d}{i}", d, f"Sentence number {i} of document {d} talks about brewing coffee at home today.")
        for d in "ABCDEFGHIJ"
        for i in range(6)
    ]
    first = pseudo_questions(chunks, count=20, seed=3)
    assert first == pseudo_questions(chunks, count=20, seed=3)
    sentences = [q for q in first if q.kind == "sentence"]
    # No headings here: sentences take their half too, drawn one per document in turn.
    assert len(sentences) == 20 and Counter(q.document for q in sentences) == dict.fromkeys("ABCDEFGHIJ", 2)


@pytest.mark.unit
def test_a_cut_window_goes_back_in_its_place_or_not_at_all() -> None:
    hits = [Hit("x", 3.0, "X"), Hit("y", 2.0, "Y"), Hit("z", 1.0, "Z")]
    chunk = _chunk("c1", "C", PROSE)
    assert [h.id for h in put_back(hits, chunk, 2.5, 3)] == ["x", "c1", "y"]
    assert put_back(hits, chunk, 0.5, 3) == hits  # it would not have been fetched
    assert [h.id for h in put_back(hits, chunk, 0.5, 4)] == ["x", "y", "z", "c1"]
    assert put_back(hits, chunk, None, 4) == hits  # no BM25 term of the question is left in it


OTHERS = {
    "grinder.txt": "The burr grinder has forty settings. Coarse settings suit a French press and the water filter jug.",
    "milk.txt": "Steam the milk to sixty degrees. The wand purges water first; wipe it after every use.",
    "kettle.txt": "The kettle boils a litre of water in three minutes and switches itself off when it is done.",
}


def _index(root: Path, brew: str, embedder: SentenceTransformerEmbedder) -> tuple[Ragline, Store, Chunk]:
    folder = root / "docs"
    folder.mkdir(parents=True)
    for name, text in {**OTHERS, "brew.txt": brew}.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    app = make_app(root / "index", embedder)
    app.ingest(folder)
    store = app.store()
    (chunk,) = [c for page in store.all_chunks() for c in page if c.source.endswith("brew.txt")]
    return app, store, chunk


@pytest.mark.integration
def test_a_cut_window_scores_as_the_window_without_the_sentence_does_in_an_index_built_without_it(
    tmp_path: Path, torch_embedder: SentenceTransformerEmbedder
) -> None:
    """fp32 vectors: int8's are quantised per call, so a text embedded alone differs from one embedded in a batch
    by up to about 0.01 cosine, which is the noise an int8 index lives with anyway."""
    embedder = torch_embedder
    with_it, store, chunk = _index(tmp_path / "with", f"{REST} {PROSE}", embedder)
    without, other_store, other_chunk = _index(tmp_path / "without", REST, embedder)
    try:
        question = PseudoQuestion(PROSE, "sentence", chunk.document_id, (chunk.id,), cut_from=chunk.id)
        query = embedder.embed_query(PROSE)
        scores = cut_scores(question, query, chunk, store, embedder)
        assert scores is not None and scores.sparse is not None
        only = SearchFilter(fields=(("document_id", other_chunk.document_id),))
        dense, sparse = other_store.search(query, query_vector(PROSE), 5, only)
        assert scores.sparse == pytest.approx(sparse[0].score, rel=1e-5)  # the IDF and the length pivot alike
        assert scores.dense == pytest.approx(dense[0].score, abs=1e-4)
        full = store.search(query, query_vector(PROSE), 5, SearchFilter(fields=(("document_id", chunk.document_id),)))
        assert full[1][0].score > scores.sparse + 1 and full[0][0].score > scores.dense  # the sentence mattered
    finally:
        with_it.close()
        without.close()
