"""``ragline train-embedder``: InfoNCE with in-batch negatives (and mined hard negatives).

sentence-transformers' MultipleNegativesRankingLoss is InfoNCE: each query's positive
must outscore every other document in the batch (the other queries' positives and
all hard negatives), with cosine similarity scaled by 1 / temperature. The loop is
plain PyTorch, so it needs neither ``datasets`` nor ``accelerate``, stops on the
validation nDCG@10, and keeps the best checkpoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RaglineError
from pipeline.eval.metrics import evaluate_run
from pipeline.training.data import Example, TrainingData
from pipeline.training.loop import Schedule, TrainingReport, new_report, optimise, seeded_start, write_card


@dataclass(frozen=True)
class EmbedderTraining:
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 3e-5
    warmup_share: float = 0.1
    temperature: float = 0.05
    hard_negatives: int = 1
    max_seq_length: int = 256
    validation_share: float = 0.1
    evaluations_per_epoch: int = 2
    patience: int = 2
    seed: int = 42


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches in which no query and no positive appears twice (a repeat would be a false negative)."""
    pool = examples[:]
    rng.shuffle(pool)
    batches: list[list[Example]] = []
    while pool:
        batch: list[Example] = []
        seen: set[str] = set()
        rest: list[Example] = []
        for ex in pool:
            keys = {ex.query_id, ex.positive_id, *ex.negative_ids}
            if len(batch) < size and not keys & seen:
                batch.append(ex)
                seen |= keys
            else:
                rest.append(ex)
        batches.append(batch)
        pool = rest
    return batches


def dense_run(
    encode: Callable[[list[str]], np.ndarray], queries: dict[str, str], corpus: dict[str, str]
) -> dict[str, list[str]]:
    """Each query's top 100 of ``corpus`` by the model's cosine similarity."""
    doc_ids = list(corpus)
    docs = encode([corpus[d] for d in doc_ids])
    query_ids = list(queries)
    scores = encode([queries[q] for q in query_ids]) @ docs.T
    return {q: [doc_ids[i] for i in np.argsort(-row)[:100]] for q, row in zip(query_ids, scores, strict=True)}


def dense_ndcg(
    encode: Callable[[list[str]], np.ndarray], queries: dict[str, str], corpus: dict[str, str], qrels: Any
) -> float:
    return evaluate_run({q: qrels[q] for q in queries}, dense_run(encode, queries, corpus))["ndcg@10"]


def _examples(data: TrainingData, negatives: dict[str, list[str]], hard_negatives: int) -> list[Example]:
    """One example per (query, positive), with its mined negatives (all of them, or the example is left out)."""
    examples = [
        Example(q, data.dataset.queries[q], p, tuple(negatives.get(q, [])[:hard_negatives]))
        for q in data.train_queries
        for p in data.positives(q)
    ]
    if hard_negatives:
        examples = [e for e in examples if len(e.negative_ids) == hard_negatives]
    if len(examples) < 2:
        raise RaglineError("fewer than two training examples: nothing to contrast")
    return examples


def train_embedder(
    data: TrainingData,
    base_model: str,
    out: str | Path,
    negatives: dict[str, list[str]],
    validation: dict[str, str],
    settings: EmbedderTraining,
    progress: bool = False,
    validate: Callable[[Callable[[list[str]], np.ndarray]], float] | None = None,
    deadline: float | None = None,
) -> TrainingReport:
    """Fine-tune ``base_model`` (a sentence-transformers folder) and save the best checkpoint to ``out``.

    ``validate`` scores the model (given its encode function) instead of the dense nDCG@10 of the validation
    queries over ``validation``; ``deadline`` stops the training in time (see ``optimise``)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    started, folder, rng = seeded_start(out, settings.seed)
    examples = _examples(data, negatives, settings.hard_negatives)
    model = SentenceTransformer(base_model, device="cpu", local_files_only=True)
    # Trained on short inputs (for speed), but encoded, validated and saved at the base model's length: the
    # length a model is saved with is the one every later ingest truncates to.
    serving = int(model.max_seq_length or settings.max_seq_length)
    training_length = min(settings.max_seq_length, serving)
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / settings.temperature)
    per_epoch = len(_batches(examples, settings.batch_size, random.Random(settings.seed)))
    val_queries = {q: data.dataset.queries[q] for q in data.validation_queries}

    def encode(texts: list[str]) -> np.ndarray:
        model.eval()
        model.max_seq_length = serving
        with torch.no_grad():
            return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True))

    recipe = {**asdict(settings), "loss": "MultipleNegativesRankingLoss (InfoNCE, in-batch + hard negatives)"}
    report = new_report("embedder", base_model, data.dataset, folder, recipe, len(examples), len(val_queries))

    def check(step: int) -> None:
        score = validate(encode) if validate else dense_ndcg(encode, val_queries, validation, data.dataset.qrels)
        if report.improved({"step": step, "epoch": round(step / per_epoch, 3), "ndcg@10": score}):
            model.save(str(folder), create_model_card=False)  # at the serving length ``encode`` left it at

    def batch_loss(batch: list[Example]) -> Any:
        model.train()
        model.max_seq_length = training_length
        columns = [[e.query for e in batch], [data.text(e.positive_id) for e in batch]]
        columns += [[data.text(e.negative_ids[n]) for e in batch] for n in range(settings.hard_negatives)]
        return loss([model.preprocess(texts) for texts in columns], torch.zeros(len(batch)))

    check(0)
    batches, schedule = partial(_batches, examples, settings.batch_size, rng), Schedule.of(settings)
    optimise(model.parameters(), batches, batch_loss, check, schedule, report, progress, "training embedder", deadline)
    report.seconds = time.perf_counter() - started
    if report.best["step"] == 0:
        report.notes.append("no step beat the base model on validation: the saved model is the base model")
    write_card(folder, report, "ragline fine-tuned embedder")
    return report
