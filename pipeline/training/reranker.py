"""``ragline train-reranker``: a one-logit CrossEncoder trained listwise on mined groups.

Each step scores, for every query in the batch, its positive and ``negatives`` hybrid
candidates that are not judged relevant, and minimises the cross-entropy of the
positive within its group (a softmax over the group's logits). Validation reranks
the hybrid candidates of held-out training queries, and also chooses how much of the
first-stage (fused) score to keep: the final score is
``w * minmax(cross-encoder) + (1 - w) * minmax(fused)``, with ``w`` chosen on validation,
so that a reranker that does not help is switched off (``w = 0``) rather than shipped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RaglineError
from pipeline.eval.metrics import evaluate_run
from pipeline.models.reranker import SETTINGS_FILE, interpolate
from pipeline.training.data import TrainingData
from pipeline.training.loop import Schedule, TrainingReport, new_report, optimise, seeded_start, write_card

WEIGHTS = tuple(round(w * 0.1, 1) for w in range(11))


@dataclass(frozen=True)
class RerankerTraining:
    epochs: int = 2
    batch_size: int = 8
    negatives: int = 4
    learning_rate: float = 5e-5
    warmup_share: float = 0.1
    max_length: int = 192
    candidates: int = 30
    validation_share: float = 0.1
    evaluations_per_epoch: int = 1
    patience: int = 2
    seed: int = 42


def best_weight(
    candidates: dict[str, list[tuple[str, float]]], ce_scores: dict[str, np.ndarray], qrels: Any
) -> tuple[float, dict[float, float]]:
    """nDCG@10 on validation for each interpolation weight; the best weight (ties: the smaller)."""
    by_weight = {}
    for weight in WEIGHTS:
        run = {}
        for q, cands in candidates.items():
            final = interpolate(ce_scores[q], np.array([s for _, s in cands]), weight)
            run[q] = [cands[i][0] for i in np.argsort(-final, kind="stable")]
        by_weight[weight] = evaluate_run({q: qrels[q] for q in candidates}, run)["ndcg@10"]
    best = max(WEIGHTS, key=lambda w: (by_weight[w], -w))
    return best, by_weight


def train_reranker(
    data: TrainingData,
    base_model: str,
    out: str | Path,
    negatives: dict[str, list[str]],
    validation: dict[str, list[tuple[str, float]]],
    settings: RerankerTraining,
    progress: bool = False,
) -> TrainingReport:
    """``validation``: per held-out query, the hybrid (doc id, fused score) candidates, best first."""
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.util import batch_to_device

    started, folder, rng = seeded_start(out, settings.seed)
    groups = _groups(data, negatives, settings.negatives)
    model = CrossEncoder(base_model, num_labels=1, max_length=settings.max_length, device="cpu")
    per_epoch = -(-len(groups) // settings.batch_size)
    qrels = data.dataset.qrels

    def score(query: str, docs: list[str]) -> np.ndarray:
        return np.asarray(
            model.predict([(query, d) for d in docs], batch_size=32, show_progress_bar=False, convert_to_numpy=True)
        ).reshape(-1)

    loss = "listwise softmax cross-entropy over 1 positive + mined negatives"
    report = new_report(
        "reranker", base_model, data.dataset, folder, {**asdict(settings), "loss": loss}, len(groups), len(validation)
    )
    hybrid_ndcg = _first_stage_ndcg(validation, qrels)

    def check(step: int) -> None:
        model.model.eval()
        ce = {q: score(data.dataset.queries[q], [data.text(d) for d, _ in c]) for q, c in validation.items()}
        weight, curve = best_weight(validation, ce, qrels)
        point = {"step": step, "epoch": round(step / per_epoch, 3), "ndcg@10": curve[weight], "weight": weight}
        if report.improved({**point, "reranker_only": curve[1.0], "hybrid": hybrid_ndcg}):
            model.save(str(folder))
            (folder / SETTINGS_FILE).write_text(json.dumps({"interpolation": weight}), encoding="utf-8")

    def epoch() -> list[list[tuple[str, str, list[str]]]]:
        rng.shuffle(groups)
        return [groups[i : i + settings.batch_size] for i in range(0, len(groups), settings.batch_size)]

    def batch_loss(batch: list[tuple[str, str, list[str]]]) -> Any:
        model.model.train()
        pairs = [(q, data.text(d)) for q, p, negs in batch for d in (p, *negs)]
        logits = model(batch_to_device(model.preprocess(pairs), model.device))["scores"]
        target = torch.zeros(len(batch), dtype=torch.long)
        return torch.nn.functional.cross_entropy(logits.view(len(batch), 1 + settings.negatives), target)

    schedule = Schedule.of(settings)
    optimise(model.model.parameters(), epoch, batch_loss, check, schedule, report, progress, "training reranker")
    report.seconds = time.perf_counter() - started
    _conclude(report, hybrid_ndcg)
    write_card(folder, report, "ragline trained reranker")
    return report


def _first_stage_ndcg(validation: dict[str, list[tuple[str, float]]], qrels: Any) -> float:
    run = {q: [d for d, _ in candidates] for q, candidates in validation.items()}
    return float(evaluate_run({q: qrels[q] for q in validation}, run)["ndcg@10"])


def _groups(data: TrainingData, negatives: dict[str, list[str]], size: int) -> list[tuple[str, str, list[str]]]:
    """One listwise group per (query, positive): the query text, the positive and ``size`` mined negatives."""
    groups = [
        (data.dataset.queries[q], p, negatives[q][:size])
        for q in data.train_queries
        for p in data.positives(q)
        if len(negatives.get(q, [])) >= size
    ]
    if not groups:
        raise RaglineError(f"no training query has {size} mined negatives")
    return groups


def _conclude(report: TrainingReport, hybrid_ndcg: float) -> None:
    if not report.best:
        raise RaglineError("training ended before the first validation check")
    report.notes.append(
        f"validation nDCG@10: hybrid {hybrid_ndcg:.4f}, reranked {report.best['ndcg@10']:.4f} "
        f"(interpolation weight {report.best['weight']})"
    )
    if report.best["ndcg@10"] <= hybrid_ndcg or report.best["weight"] == 0.0:
        report.notes.append("the reranker does not beat hybrid on validation: weight 0 keeps the hybrid order")
