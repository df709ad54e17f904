"""The two training commands end to end: data → index → mined negatives → training → card."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import DEFAULT_EMBEDDER, AppConfig
from pipeline.eval.evaluate import eval_index
from pipeline.models.weights import resolve_model
from pipeline.training.data import TrainingData, empty_output_folder, training_data
from pipeline.training.embedder import EmbedderTraining, train_embedder
from pipeline.training.loop import TrainingReport
from pipeline.training.mining import Candidates, hybrid_candidates, mine_negatives, validation_corpus
from pipeline.training.reranker import RerankerTraining, train_reranker

MINING_DEPTH = 30
VALIDATION_NEGATIVES = 10
VALIDATION_EXTRA_DOCS = 200


def prepare(
    config: AppConfig,
    beir: str | Path | None,
    pairs: str | Path | None,
    split: str,
    share: float,
    seed: int,
    depth: int,
    progress: bool,
) -> tuple[TrainingData, Candidates, dict[str, list[str]]]:
    """Training data, every query's hybrid candidates, and the negatives mined from them
    (negatives given in a pairs file come first)."""
    data = training_data(beir, pairs, split, share, seed)
    with eval_index(data.dataset, config, "documents", progress=progress) as (app, _):
        candidates = hybrid_candidates(app, data.dataset.queries, depth, progress)
    mined = mine_negatives(data, candidates)
    for query_id, given in data.given_negatives.items():
        mined[query_id] = list(dict.fromkeys([*given, *mined.get(query_id, [])]))
    return data, candidates, mined


def embedder_command(
    config: AppConfig,
    out: str | Path,
    beir: str | Path | None = None,
    pairs: str | Path | None = None,
    split: str = "train",
    settings: EmbedderTraining | None = None,
    progress: bool = False,
) -> TrainingReport:
    settings = settings or EmbedderTraining()
    empty_output_folder(out)
    data, _, mined = prepare(
        config, beir, pairs, split, settings.validation_share, settings.seed, MINING_DEPTH, progress
    )
    hard = {q: mined.get(q, [])[:VALIDATION_NEGATIVES] for q in data.validation_queries}
    validation = validation_corpus(data, hard, VALIDATION_EXTRA_DOCS, settings.seed)
    base = resolve_model(config.embedding.model, "embedder")
    return train_embedder(data, base, out, mined, validation, settings, progress)


def reranker_command(
    config: AppConfig,
    out: str | Path,
    beir: str | Path | None = None,
    pairs: str | Path | None = None,
    split: str = "train",
    settings: RerankerTraining | None = None,
    base_model: str = DEFAULT_EMBEDDER,
    progress: bool = False,
) -> TrainingReport:
    """Candidates come from the configured embedder's hybrid retriever, as at search time."""
    settings = settings or RerankerTraining()
    empty_output_folder(out)
    depth = max(MINING_DEPTH, settings.candidates)
    data, candidates, mined = prepare(
        config, beir, pairs, split, settings.validation_share, settings.seed, depth, progress
    )
    validation = {q: candidates[q][: settings.candidates] for q in data.validation_queries}
    base = resolve_model(base_model, "reranker")
    return train_reranker(data, base, out, mined, validation, settings, progress)
