"""Training data for both trainers: queries, a corpus and judgements, from BEIR or JSONL pairs.

Both inputs become the same shape (a :class:`~pipeline.eval.beir.BeirDataset`), so hard-negative
mining and validation run the same way. A seeded slice of the training queries is held
out for validation; the test split is never read.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RaglineError
from pipeline.eval.beir import BeirDataset, BeirDocument, jsonl_rows, load_beir


@dataclass(frozen=True)
class Example:
    query_id: str
    query: str
    positive_id: str
    negative_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingData:
    dataset: BeirDataset
    """The whole corpus, with the training split's queries and judgements."""
    train_queries: tuple[str, ...]
    validation_queries: tuple[str, ...]
    given_negatives: dict[str, tuple[str, ...]]
    """Negatives that came with the input (JSONL ``negatives``), by query id."""

    def text(self, doc_id: str) -> str:
        doc = self._docs[doc_id]
        return f"{doc.title} {doc.text}".strip()

    @property
    def _docs(self) -> dict[str, BeirDocument]:
        cached = self.__dict__.get("_doc_index")
        if cached is None:
            cached = {d.id: d for d in self.dataset.corpus}
            object.__setattr__(self, "_doc_index", cached)
        return cached

    def positives(self, query_id: str) -> list[str]:
        return [d for d, score in self.dataset.qrels[query_id].items() if score > 0 and d in self._docs]


def empty_output_folder(out: str | Path) -> Path:
    """Training writes into a new or empty folder only, so no earlier model is overwritten."""
    folder = Path(out).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RaglineError(f"output folder {folder} is not empty: choose a new one")
    return folder


def _doc_id(text: str) -> str:
    return "p" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def load_pairs(path: str | Path) -> BeirDataset:
    """JSONL lines of {"query", "positive", "negatives"?} as a BEIR-shaped dataset (negatives in qrels as 0)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise RaglineError(f"pairs file {str(path)!r} does not exist")
    corpus: dict[str, BeirDocument] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for number, row in jsonl_rows(file):
        query, positive = (row.get("query"), row.get("positive")) if isinstance(row, dict) else (None, None)
        negatives = row.get("negatives", []) if isinstance(row, dict) else []
        if not isinstance(query, str) or not query.strip() or not isinstance(positive, str) or not positive.strip():
            raise RaglineError(f'{file.name} line {number}: "query" and "positive" must be non-empty strings')
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise RaglineError(f'{file.name} line {number}: "negatives" must be a list of strings')
        query_id = "q" + hashlib.sha1(query.encode("utf-8")).hexdigest()[:16]
        queries[query_id] = query
        for text, score in [(positive, 1), *((n, 0) for n in negatives)]:
            doc_id = _doc_id(text)
            corpus.setdefault(doc_id, BeirDocument(doc_id, "", text))
            judged = qrels.setdefault(query_id, {})
            judged[doc_id] = max(judged.get(doc_id, 0), score)
    if not queries:
        raise RaglineError(f"{file} holds no pairs")
    return BeirDataset(file.stem, "pairs", file.resolve(), tuple(corpus.values()), queries, qrels)


def training_data(
    beir: str | Path | None, pairs: str | Path | None, split: str, validation_share: float, seed: int
) -> TrainingData:
    if (beir is None) == (pairs is None):
        raise RaglineError("give either --beir DIR or --pairs FILE.jsonl")
    if split == "test":
        raise RaglineError(
            "the test split is for the final report only: train on 'train' (validation is held out of it)"
        )
    dataset = load_beir(beir, split) if beir is not None else load_pairs(pairs)  # type: ignore[arg-type]
    ids = sorted(dataset.queries)
    random.Random(seed).shuffle(ids)
    n_validation = round(len(ids) * validation_share)
    if n_validation < 1 or n_validation >= len(ids):
        raise RaglineError(f"{len(ids)} queries are too few to hold out {validation_share:.0%} for validation")
    given = {q: tuple(d for d, s in judged.items() if s <= 0) for q, judged in dataset.qrels.items() if beir is None}
    return TrainingData(dataset, tuple(sorted(ids[n_validation:])), tuple(sorted(ids[:n_validation])), given)
