"""``ragline train-embedder``: InfoNCE with in-batch negatives (and mined hard negatives).

sentence-transformers' MultipleNegativesRankingLoss is InfoNCE: each query's positive
must outscore every other document in the batch (the other queries' positives and
all hard negatives), with cosine similarity scaled by 1 / temperature. The loop is
plain PyTorch, so it needs neither ``datasets`` nor ``accelerate``, stops on the
validation nDCG@10, and keeps the best checkpoint.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RaglineError
from pipeline.metrics import evaluate_run
from pipeline.training.data import Example, TrainingData, empty_output_folder


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


@dataclass
class TrainingReport:
    kind: str
    base_model: str
    data: str
    out: str
    settings: dict[str, Any]
    train_examples: int
    validation_queries: int
    steps: int = 0
    seconds: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def dense_ndcg(
    encode: Callable[[list[str]], np.ndarray], queries: dict[str, str], corpus: dict[str, str], qrels: Any
) -> float:
    doc_ids = list(corpus)
    docs = encode([corpus[d] for d in doc_ids])
    query_ids = list(queries)
    scores = encode([queries[q] for q in query_ids]) @ docs.T
    run = {q: [doc_ids[i] for i in np.argsort(-row)[:100]] for q, row in zip(query_ids, scores)}
    return evaluate_run({q: qrels[q] for q in query_ids}, run)["ndcg@10"]


def write_card(out: Path, report: TrainingReport, title: str) -> None:
    (out / "ragline_training.json").write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    curve = "\n".join(f"| {p['step']:.0f} | {p.get('epoch', 0):.2f} | {p['ndcg@10']:.4f} |" for p in report.curve)
    settings = "\n".join(f"- {k}: {v}" for k, v in report.settings.items())
    notes = "\n".join(f"- {n}" for n in report.notes) or "- none"
    (out / "README.md").write_text(
        f"# {title}\n\nTrained by ragline from `{report.base_model}` on `{report.data}` "
        f"({report.train_examples} training examples, {report.validation_queries} held-out validation queries).\n\n"
        f"## Settings\n{settings}\n\n## Run\n- steps: {report.steps}\n- seconds: {report.seconds:.0f}\n"
        f"- best validation nDCG@10: {report.best.get('ndcg@10', float('nan')):.4f} at step {report.best.get('step', 0):.0f}\n\n"
        f"## Validation curve\n| step | epoch | nDCG@10 |\n|---:|---:|---:|\n{curve}\n\n## Notes\n{notes}\n",
        encoding="utf-8",
    )


def train_embedder(
    data: TrainingData,
    base_model: str,
    out: str | Path,
    negatives: dict[str, list[str]],
    validation: dict[str, str],
    settings: EmbedderTraining,
    progress: bool = False,
) -> TrainingReport:
    """Fine-tune ``base_model`` (a sentence-transformers folder) and save the best checkpoint to ``out``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    started = time.perf_counter()
    folder = empty_output_folder(out)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    examples = [
        Example(q, data.dataset.queries[q], p, tuple(negatives.get(q, [])[: settings.hard_negatives]))
        for q in data.train_queries
        for p in data.positives(q)
    ]
    if settings.hard_negatives:
        examples = [e for e in examples if len(e.negative_ids) == settings.hard_negatives]
    if len(examples) < 2:
        raise RaglineError("fewer than two training examples: nothing to contrast")

    model = SentenceTransformer(base_model, device="cpu", local_files_only=True)
    model.max_seq_length = min(settings.max_seq_length, model.max_seq_length or settings.max_seq_length)
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / settings.temperature)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    steps_per_epoch = len(_batches(examples, settings.batch_size, random.Random(0)))
    total = steps_per_epoch * settings.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * settings.warmup_share), total)
    eval_every = max(1, steps_per_epoch // max(1, settings.evaluations_per_epoch))

    val_queries = {q: data.dataset.queries[q] for q in data.validation_queries}
    qrels = data.dataset.qrels

    def encode(texts: list[str]) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return np.asarray(model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True))

    report = TrainingReport(
        kind="embedder",
        base_model=base_model,
        data=f"{data.dataset.name} ({data.dataset.split})",
        out=str(folder),
        settings={**asdict(settings), "loss": "MultipleNegativesRankingLoss (InfoNCE, in-batch + hard negatives)"},
        train_examples=len(examples),
        validation_queries=len(val_queries),
    )

    def check(step: int) -> bool:
        """Evaluate; save when best. True while training should go on."""
        score = dense_ndcg(encode, val_queries, validation, qrels)
        report.curve.append({"step": step, "epoch": step / steps_per_epoch, "ndcg@10": score})
        if not report.best or score > report.best["ndcg@10"]:
            report.best = {"step": step, "ndcg@10": score}
            model.save(str(folder), create_model_card=False)
        stale = [p for p in report.curve if p["step"] > report.best["step"]]
        return len(stale) < settings.patience

    check(0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="training embedder", unit="step", leave=False)
    step, go_on = 0, True
    for _ in range(settings.epochs):
        for batch in _batches(examples, settings.batch_size, rng):
            model.train()
            columns = [[e.query for e in batch], [data.text(e.positive_id) for e in batch]]
            for n in range(settings.hard_negatives):
                columns.append([data.text(e.negative_ids[n]) for e in batch])
            features = [model.preprocess(texts) for texts in columns]
            value = loss(features, torch.zeros(len(batch)))
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value.item():.3f}")
            report.losses.append(round(value.item(), 5))
            if step % eval_every == 0 or step == total:
                go_on = check(step)
                if not go_on:
                    report.notes.append(f"early stop at step {step}: no validation gain for {settings.patience} checks")
                    break
        if not go_on:
            break
    if bar is not None:
        bar.close()
    report.steps = step
    report.seconds = time.perf_counter() - started
    if report.best["step"] == 0:
        report.notes.append("no step beat the base model on validation: the saved model is the base model")
    write_card(folder, report, "ragline fine-tuned embedder")
    return report
