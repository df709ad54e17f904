"""A folder in five languages, indexed and searched through the real sync and Qdrant Edge (issue 14,
item 6): each question finds its document by BM25 in its own language, and a word that two languages
stem alike does not cross from one to the other."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.config import parse_config

pytestmark = pytest.mark.integration

DOCS = Path(__file__).parents[1] / "fixtures" / "multilingual"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_folder: Path) -> Iterator[Ragline]:
    root = tmp_path_factory.mktemp("multilingual")
    shutil.copytree(DOCS, root / "docs")
    config = {
        "index": {"path": str(root / "index")},
        "embedding": {"model": str(tiny_embedder_folder)},
        "chunking": {"chunk_tokens": 120, "overlap_tokens": 0},  # the tiny model reads 128 tokens
        "rerank": {"enabled": False},
    }
    with Ragline(parse_config(config)) as rag:
        rag.ingest(root / "docs")
        yield rag


def _bm25_sources(app: Ragline, question: str) -> list[str]:
    return [r.chunk.source for r in app.search(question, top_k=5, mode="bm25", rerank=False).results]


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("Wie oft muss die Kaffeemaschine entkalkt werden?", "entkalken.de.txt"),
        ("Combien de temps dure la garantie de fabrication ?", "garantie.fr.txt"),
        ("¿Cada cuánto hay que limpiar las muelas del molinillo?", "molinillo.es.txt"),
        ("咖啡机需要预热多久", "nuanji.zh.txt"),
        ("AX-4471", "garantie.fr.txt"),  # a code in a French page, asked bare
    ],
)
def test_a_question_finds_its_document_in_its_own_language(app: Ragline, question: str, source: str) -> None:
    assert _bm25_sources(app, question)[:1] == [source]


def test_a_word_two_languages_stem_alike_stays_in_its_language(app: Ragline) -> None:
    """German "Rat" (the manufacturer's advice) stems to the same letters as English "rat"; an English
    question about rats must not match the German page. English-only analysis matched both."""
    assert _bm25_sources(app, "rat") == ["council.en.txt"]


def test_the_index_records_the_multilingual_tokenizer(app: Ragline) -> None:
    from pipeline.stages.bm25 import TOKENIZER_VERSION

    assert app.store().meta.tokenizer == TOKENIZER_VERSION
