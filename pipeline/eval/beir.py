"""Read a BEIR-format folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

The layout is the one ``beir.datasets.data_loader.GenericDataLoader`` reads.
Every problem is a ``RaglineError`` naming the file and line, so a broken
download fails before anything is indexed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import RaglineError


@dataclass(frozen=True)
class BeirDocument:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class BeirDataset:
    name: str
    split: str
    corpus_file: Path
    corpus: tuple[BeirDocument, ...]
    queries: dict[str, str]
    """Only the queries of ``split`` that have at least one judged document."""
    qrels: dict[str, dict[str, int]]


def jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; a line that is not JSON is an error naming it."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise RaglineError(f"{path.name} line {number}: not JSON ({exc.msg})") from None


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise RaglineError(f"BEIR folder has no {path.name} ({path})")
    rows = []
    for number, row in jsonl_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("_id"), str | int):
            raise RaglineError(f'{path.name} line {number}: a JSON object with an "_id" is expected')
        rows.append((number, row))
    if not rows:
        raise RaglineError(f"{path} is empty")
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise RaglineError(f"{path.name} line {number}: expected query-id, corpus-id, score (tab-separated)")
            try:
                score = int(row[2])
            except ValueError:
                raise RaglineError(f"{path.name} line {number}: score {row[2]!r} is not an integer") from None
            qrels.setdefault(row[0], {})[row[1]] = score
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise RaglineError(f"BEIR folder {str(folder)!r} does not exist")
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise RaglineError(f"BEIR folder has no qrels/{split}.tsv; splits found: {', '.join(splits) or 'none'}")
    qrels = {q: docs for q, docs in _read_qrels(qrels_file).items() if any(s > 0 for s in docs.values())}
    if not qrels:
        raise RaglineError(f"{qrels_file} judges no document relevant")

    corpus = []
    seen: set[str] = set()
    for number, row in _read_jsonl(root / "corpus.jsonl"):
        doc_id = str(row["_id"])
        if doc_id in seen:
            raise RaglineError(f"corpus.jsonl line {number}: duplicate _id {doc_id!r}")
        seen.add(doc_id)
        corpus.append(BeirDocument(doc_id, str(row.get("title") or ""), str(row.get("text") or "")))

    all_queries = {str(row["_id"]): str(row.get("text") or "") for _, row in _read_jsonl(root / "queries.jsonl")}
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise RaglineError(
            f"qrels/{split}.tsv names {len(missing)} queries not in queries.jsonl (first: {missing[0]!r})"
        )
    unknown = {d for docs in qrels.values() for d in docs} - seen
    if len(unknown) == sum(len(docs) for docs in qrels.values()):
        raise RaglineError(f"no document judged in qrels/{split}.tsv is in corpus.jsonl")
    queries = {q: all_queries[q] for q in qrels}
    return BeirDataset(root.resolve().name, split, (root / "corpus.jsonl").resolve(), tuple(corpus), queries, qrels)
