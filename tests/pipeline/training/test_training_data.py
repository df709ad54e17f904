"""Training input: JSONL pairs become a BEIR-shaped set; validation is a seeded slice of training queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import RaglineError
from pipeline.training.data import empty_output_folder, load_pairs, training_data

pytestmark = pytest.mark.unit


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_pairs_share_documents_and_keep_given_negatives(tmp_path: Path) -> None:
    rows = [
        {"query": "q one", "positive": "shared text", "negatives": ["wrong a"]},
        {"query": "q two", "positive": "shared text"},
        {"query": "q three", "positive": "other text", "negatives": ["wrong a", "wrong b"]},
    ] + [{"query": f"filler {i}", "positive": f"doc {i}"} for i in range(7)]
    data = training_data(None, write(tmp_path / "p.jsonl", rows), "train", 0.2, seed=1)
    assert len(data.dataset.corpus) == 2 + 2 + 7  # "shared text" and "wrong a" are stored once
    assert len(data.validation_queries) == 2 and not set(data.validation_queries) & set(data.train_queries)
    three = next(q for q, text in data.dataset.queries.items() if text == "q three")
    assert [data.text(d) for d in data.positives(three)] == ["other text"]
    assert sorted(data.text(d) for d in data.given_negatives[three]) == ["wrong a", "wrong b"]
    again = training_data(None, tmp_path / "p.jsonl", "train", 0.2, seed=1)
    assert again.validation_queries == data.validation_queries  # seeded


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"p.jsonl line 1: not JSON"),
        ('{"query": "q"}', r'line 1: "query" and "positive" must be non-empty strings'),
        ('{"query": "q", "positive": "p", "negatives": "n"}', r'"negatives" must be a list of strings'),
    ],
)
def test_bad_pairs_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(RaglineError, match=message):
        load_pairs(write(tmp_path / "p.jsonl", [line]))


def test_input_choice_and_split_are_checked(tmp_path: Path) -> None:
    pairs = write(tmp_path / "p.jsonl", [{"query": "a", "positive": "b"}, {"query": "c", "positive": "d"}])
    with pytest.raises(RaglineError, match="either --beir DIR or --pairs"):
        training_data(None, None, "train", 0.1, 0)
    with pytest.raises(RaglineError, match="test split is for the final report only"):
        training_data(None, pairs, "test", 0.1, 0)
    with pytest.raises(RaglineError, match="too few to hold out"):
        training_data(None, pairs, "train", 0.1, 0)


def test_output_folder_must_be_new_or_empty(tmp_path: Path) -> None:
    assert empty_output_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "model.safetensors").write_text("x")
    with pytest.raises(RaglineError, match="is not empty"):
        empty_output_folder(tmp_path / "used")
