"""The BEIR folder reader: what it keeps, and a clear error for each broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import RaglineError
from pipeline.eval.beir import load_beir

pytestmark = pytest.mark.unit


def write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: dict[str, str]) -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for split, text in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text(text)
    return folder


CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers fever."},
    {"_id": 2, "title": "", "text": "Numeric ids are read as strings."},
]
QUERIES = [{"_id": "q1", "text": "does aspirin lower fever"}, {"_id": "q2", "text": "unjudged"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t0\n"


def test_reads_corpus_queries_and_the_split(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path / "mini", CORPUS, QUERIES, {"test": QRELS}), "test")
    assert data.name == "mini" and data.split == "test"
    assert [(d.id, d.title) for d in data.corpus] == [("d1", "Aspirin"), ("2", "")]
    assert data.queries == {"q1": "does aspirin lower fever"}  # only judged queries of the split
    assert data.qrels == {"q1": {"d1": 1, "2": 0}}


def test_missing_split_names_the_ones_there(tmp_path: Path) -> None:
    folder = write_beir(tmp_path, CORPUS, QUERIES, {"test": QRELS, "train": QRELS})
    with pytest.raises(RaglineError, match=r"no qrels/dev.tsv; splits found: test, train"):
        load_beir(folder, "dev")


@pytest.mark.parametrize(
    ("corpus_text", "message"),
    [
        ('{"_id": "d1", "text": "ok"}\n{not json\n', r"corpus.jsonl line 2: not JSON"),
        ('{"text": "no id"}\n', r"corpus.jsonl line 1: a JSON object with an \"_id\""),
        ('{"_id": "d1"}\n{"_id": "d1"}\n', r"corpus.jsonl line 2: duplicate _id 'd1'"),
        ("\n", r"corpus.jsonl is empty"),
    ],
)
def test_broken_corpus_lines_are_named(tmp_path: Path, corpus_text: str, message: str) -> None:
    folder = write_beir(tmp_path, CORPUS, QUERIES, {"test": QRELS})
    (folder / "corpus.jsonl").write_text(corpus_text)
    with pytest.raises(RaglineError, match=message):
        load_beir(folder)


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("q1\td1\n", r"test.tsv line 1: expected query-id, corpus-id, score"),
        ("q1\td1\thigh\n", r"test.tsv line 1: score 'high' is not an integer"),
        ("q9\td1\t1\n", r"names 1 queries not in queries.jsonl \(first: 'q9'\)"),
        ("q1\tnope\t1\n", r"no document judged in qrels/test.tsv is in corpus.jsonl"),
        ("q1\td1\t0\n", r"judges no document relevant"),
    ],
)
def test_broken_qrels_are_named(tmp_path: Path, qrels: str, message: str) -> None:
    with pytest.raises(RaglineError, match=message):
        load_beir(write_beir(tmp_path, CORPUS, QUERIES, {"test": qrels}))


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(RaglineError, match="does not exist"):
        load_beir(tmp_path / "absent")
    folder = write_beir(tmp_path / "x", CORPUS, QUERIES, {"test": QRELS})
    (folder / "queries.jsonl").unlink()
    with pytest.raises(RaglineError, match="BEIR folder has no queries.jsonl"):
        load_beir(folder)
