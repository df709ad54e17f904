"""``ragline adapt``: fit the embedder to one index's own documents, with no labels, then re-embed the index.

Every document holds pairs that belong together (``pipeline.training.pairs``): a heading and its section, a
sentence and the rest of its window. The embedder is trained on them with InfoNCE, in-batch negatives and
one hard negative per pair mined by the index's own hybrid retriever (the loop ``train-embedder`` uses), for
as long as the time budget allows. Validation is on pairs of documents kept out of training and, given real
questions (``--queries``, the ``eval --folder`` format), on those too; the best checkpoint is kept only if it
beats the base model there, and only then is the index re-embedded from its stored chunks into a new folder
that is swapped in whole. Searches keep answering from the old vectors until the swap.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.app import Ragline
from pipeline.config import DEFAULT_EMBEDDER
from pipeline.errors import ConfigError, RaglineError
from pipeline.eval.beir import BeirDataset, BeirDocument
from pipeline.eval.folder import file_stem, first_right, load_queries
from pipeline.eval.metrics import evaluate_run
from pipeline.models.embedder import SentenceTransformerEmbedder
from pipeline.models.weights import resolve_model
from pipeline.retrieval import HybridRetriever
from pipeline.stages.chunking import indexed_text
from pipeline.stores.folder import ADAPTED_FILE, write_json_atomic
from pipeline.training.data import TrainingData, empty_output_folder
from pipeline.training.embedder import EmbedderTraining, dense_run, train_embedder
from pipeline.training.loop import TrainingReport
from pipeline.training.pairs import Pair, PairKind, mine_pairs, words
from pipeline.types import Chunk

PAIRS_PER_MINUTE = 200
"""Training pairs one minute of budget takes on two CPU cores (MiniLM, batch 32, 128 tokens: about 9 s a
step); more pairs than the budget can train are not used."""
MINING_DEPTH = 30
MAX_NEGATIVE_OVERLAP = 0.5
"""A candidate sharing this share of words with the answer is a copy of it, not a negative."""
VALIDATION_NEGATIVES = 3
"""Mined negatives per held-out pair, whatever training uses: ranking an answer among its lookalikes is what
tells a better model from the base one."""
VALIDATION_EXTRA = 300
"""Random other windows among the validation candidates, to make ranking them hard enough."""
CHECKS = 4
"""Validation checks in a run of one epoch (one an epoch in longer runs), besides the base model's and the last."""
REAL_CANDIDATES = 50
"""Chunks per real question among its validation candidates (the hybrid top ones), besides its files'."""


@dataclass(frozen=True)
class AdaptSettings:
    budget_minutes: float = 30.0
    epochs: int = 1
    """Passes over the training pairs: one, since the budget rather than the pairs is what runs out."""
    batch_size: int = 32
    max_seq_length: int = 128
    learning_rate: float = 1e-5
    """Low: the base model already learnt title-to-abstract matching, and 3e-5 unlearnt more than it gained on
    SciFact (bench/RESULTS.md)."""
    temperature: float = 0.05
    hard_negatives: int = 0
    """Mined negatives per training pair. None by default: on SciFact, one per pair made the adapted model worse
    on the test questions while it gained on the pseudo-pairs, the mined "negatives" being often as right."""
    kinds: tuple[PairKind, ...] = ("heading",)
    """The pair kinds trained on. Headings and titles only by default: inverse-cloze sentences taught the model
    to match a sentence to its neighbours, not a question to its answer, and cost SciFact test nDCG."""
    patience: int = 2
    """Checks in a row with no validation gain before training stops."""
    per_document: int = 8
    validation_pairs: int = 200
    seed: int = 42
    resume: bool = False
    """Start from the index's adapted model instead of the base model it was adapted from (``--continue``)."""


@dataclass
class AdaptReport:
    base_model: str
    model: str
    """The embedder the index uses now: the adapted one, or the base model when that was not beaten."""
    adapted: bool
    pairs: dict[str, int]
    train_pairs: int
    validation_pairs: int
    real_questions: int
    steps: int
    seconds: float
    """Mining and training: what the budget covers."""
    reembed_seconds: float = 0.0
    points: int = 0
    validation: list[dict[str, float]] = field(default_factory=list)
    """Per check: the step, the pseudo-pairs' nDCG@10, the real questions' MRR@10, and their mean (the score)."""
    notes: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_out(index: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return index.with_name(index.name + ".models") / f"adapt-{stamp}"


def adapt(
    app: Ragline,
    settings: AdaptSettings,
    out: str | Path | None = None,
    queries: str | Path | None = None,
    progress: bool = False,
) -> AdaptReport:
    """Mine pairs from the app's index, train within the budget, and re-embed the index with the adapted model
    if it beat the base model on validation; the model is saved to ``out`` (default: beside the index)."""
    if app.config.qdrant.enabled:
        raise ConfigError("adapt re-embeds the embedded index; for a Qdrant server, adapt a local copy")
    started = time.perf_counter()
    deadline = started + settings.budget_minutes * 60
    folder = empty_output_folder(out or default_out(app.index_path))
    record = app.adaptation() or {}
    base = app.embedder.name if settings.resume or not record else str(record.get("base_model", DEFAULT_EMBEDDER))
    real = load_queries(queries) if queries else ()
    store = app.store()
    chunks = [c for page in store.all_chunks() for c in page]
    texts = {c.id: indexed_text(c, app.embedder.tokens, app.embedder.max_tokens) for c in chunks}
    mined = mine_pairs(((c, texts[c.id]) for c in chunks), settings.per_document, settings.seed)
    pairs = [pair for pair in mined if pair.kind in settings.kinds]
    train, held = _split(pairs, settings)
    if len(train) < 2 * settings.batch_size or len(held) < 10:
        raise RaglineError(
            f"the index gives too few {'/'.join(settings.kinds)} pairs to adapt on: {len(pairs)} from "
            f"{len(chunks)} chunks, {len(train)} to train and {len(held)} to validate on "
            f"({2 * settings.batch_size} and 10 needed); the model stays as it is"
        )
    by_id = {c.id: c for c in chunks}
    retriever = HybridRetriever(store, app.embedder, app.retrieval_config, cache_size=0)
    negatives = _negatives(train, by_id, texts, retriever, settings.hard_negatives, progress)
    for i, found in _negatives(held, by_id, texts, retriever, VALIDATION_NEGATIVES, progress).items():
        negatives[len(train) + i] = found
    data = _training_data(train, held, negatives, app.index_path.name)
    kinds: dict[str, str] = {f"q{len(train) + i}": pair.kind for i, pair in enumerate(held)}
    validate, checks = _validation(data, kinds, chunks, texts, real, retriever, settings.seed)
    trained = _train(data, base, folder, settings, validate, deadline, progress)
    for point, curve in zip(checks, trained.curve, strict=False):
        point["step"] = curve["step"]
    report = AdaptReport(
        base_model=base,
        model=base,
        adapted=False,
        pairs={kind: sum(p.kind == kind for p in pairs) for kind in settings.kinds},
        train_pairs=len(train),
        validation_pairs=len(held),
        real_questions=len(real),
        steps=trained.steps,
        seconds=time.perf_counter() - started,
        validation=checks,
        notes=list(trained.notes),
        losses=list(trained.losses),
    )
    best = next((c for c in checks if c["step"] == trained.best.get("step")), checks[0])
    lost = [k for k in best if k.endswith("@10") and best[k] < checks[0][k]]
    if best["step"] == 0 or lost:
        worse = f" (worse on {', '.join(lost)})" if lost and best["step"] else ""
        report.notes.append(
            f"the adapted model did not beat the base model on validation{worse}: the index keeps its model"
        )
        shutil.rmtree(folder, ignore_errors=True)  # a copy of the base model, or a worse one: nothing to keep
        return report
    _reembed_and_swap(app, folder, report, progress)
    write_json_atomic(folder / "ragline_adapt.json", report.as_dict())
    return report


def _train(
    data: TrainingData,
    base: str,
    folder: Path,
    settings: AdaptSettings,
    validate: Callable[[Callable[[list[str]], np.ndarray]], float],
    deadline: float,
    progress: bool,
) -> TrainingReport:
    """``train-embedder``'s loop on the pairs, each with its given negatives, until the deadline."""
    training = EmbedderTraining(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        temperature=settings.temperature,
        hard_negatives=settings.hard_negatives,
        max_seq_length=settings.max_seq_length,
        evaluations_per_epoch=max(1, CHECKS // settings.epochs),
        patience=settings.patience,
        seed=settings.seed,
    )
    mined = {q: list(ids) for q, ids in data.given_negatives.items()}
    model = resolve_model(base, "embedder")
    return train_embedder(data, model, folder, mined, {}, training, progress, validate, deadline)


def _split(pairs: list[Pair], settings: AdaptSettings) -> tuple[list[Pair], list[Pair]]:
    """Validation pairs come from documents that give no training pair; training pairs are capped at what the
    budget can train."""
    documents = sorted({p.document_id for p in pairs})
    random.Random(settings.seed).shuffle(documents)
    held_documents: set[str] = set()
    held: list[Pair] = []
    for document in documents:
        if len(held) >= settings.validation_pairs or len(held_documents) >= len(documents) // 5:
            break
        held_documents.add(document)
        held += [p for p in pairs if p.document_id == document]
    train = [p for p in pairs if p.document_id not in held_documents]
    random.Random(settings.seed).shuffle(train)
    return train[: max(2 * settings.batch_size, int(settings.budget_minutes * PAIRS_PER_MINUTE))], held


def _negatives(
    pairs: list[Pair],
    chunks: dict[str, Chunk],
    texts: dict[str, str],
    retriever: HybridRetriever,
    count: int,
    progress: bool,
) -> dict[int, list[str]]:
    """Per pair (by its place in ``pairs``): hybrid candidates of its question that are not of its own document,
    nor of a copy of it (the same content, or a file of the same name), nor a copy of its answer; as text."""
    found: dict[int, list[str]] = {i: [] for i in range(len(pairs))}
    items: Any = list(enumerate(pairs)) if count else []
    if progress and items:
        from tqdm import tqdm

        items = tqdm(items, desc="mining negatives", unit="pair", leave=False)
    for i, pair in items:
        own = chunks[pair.chunk_id]
        answer = words(pair.positive)
        picked = []
        for result in retriever.retrieve(pair.query, top_k=MINING_DEPTH, mode="hybrid").results:
            other = result.chunk
            if _same_document(own, other):
                continue
            text = other.text if pair.kind == "heading" else texts.get(other.id, other.text)
            shared = words(text)
            if len(answer & shared) / max(1, len(answer | shared)) >= MAX_NEGATIVE_OVERLAP:
                continue
            picked.append(text)
            if len(picked) == count:
                break
        found[i] = picked
    return found


def _same_document(own: Chunk, other: Chunk) -> bool:
    if other.document_id == own.document_id or file_stem(other.source) == file_stem(own.source):
        return True
    digest = own.metadata.get("content_hash")
    return digest is not None and other.metadata.get("content_hash") == digest


def _training_data(train: list[Pair], held: list[Pair], negatives: dict[int, list[str]], name: str) -> TrainingData:
    """The pairs as a BEIR-shaped set (``q<i>`` asks for ``p<i>``), with each pair's negatives given."""
    corpus: dict[str, BeirDocument] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    given: dict[str, tuple[str, ...]] = {}
    for i, pair in enumerate([*train, *held]):
        queries[f"q{i}"] = pair.query
        corpus[f"p{i}"] = BeirDocument(f"p{i}", "", pair.positive)
        qrels[f"q{i}"] = {f"p{i}": 1}
        ids = [f"n{i}-{n}" for n in range(len(negatives[i]))]
        corpus.update({d: BeirDocument(d, "", text) for d, text in zip(ids, negatives[i], strict=True)})
        given[f"q{i}"] = tuple(ids)
    dataset = BeirDataset(name, "pseudo-pairs", Path(name), tuple(corpus.values()), queries, qrels)
    train_ids = tuple(f"q{i}" for i in range(len(train)))
    held_ids = tuple(f"q{i}" for i in range(len(train), len(train) + len(held)))
    return TrainingData(dataset, train_ids, held_ids, given)


def _validation(
    data: TrainingData,
    kinds: dict[str, str],
    chunks: list[Chunk],
    texts: dict[str, str],
    real: tuple[Any, ...],
    retriever: HybridRetriever,
    seed: int,
) -> tuple[Callable[[Callable[[list[str]], np.ndarray]], float], list[dict[str, float]]]:
    """The score a checkpoint is kept by, and the list each check is recorded in: the held-out pairs' dense
    nDCG@10 among their answers, negatives and random other windows, for each kind of pair (``kinds``: by
    query id) and for all; with real questions, their file-level MRR@10 among their files' windows and their
    hybrid candidates. The score is the mean of the kinds' and the real questions' figures, so that the many
    sentence pairs do not outvote the headings, which are closer to what people ask."""
    rng = random.Random(seed)
    held_ids = data.validation_queries
    corpus = {d.id: d.text for d in data.dataset.corpus if d.id.split("-")[0][1:] in {q[1:] for q in held_ids}}
    corpus |= {f"x{c.id}": texts[c.id] for c in rng.sample(chunks, min(VALIDATION_EXTRA, len(chunks)))}
    queries = {q: data.dataset.queries[q] for q in held_ids}
    real_chunks = _real_candidates(real, retriever)
    checks: list[dict[str, float]] = []

    def score(encode: Callable[[list[str]], np.ndarray]) -> float:
        run = dense_run(encode, queries, corpus)
        point = {"step": float(len(checks)), "pseudo_ndcg@10": _ndcg(run, data.dataset.qrels)}
        for kind in sorted(set(kinds.values())):
            point[f"{kind}_ndcg@10"] = _ndcg({q: r for q, r in run.items() if kinds[q] == kind}, data.dataset.qrels)
        if real:
            point["real_mrr@10"] = _real_mrr(encode, real, real_chunks, texts)
        point["score"] = float(np.mean([v for k, v in point.items() if k not in {"step", "pseudo_ndcg@10"}]))
        checks.append(point)
        return point["score"]

    return score, checks


def _ndcg(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> float:
    return evaluate_run({q: qrels[q] for q in run}, run)["ndcg@10"]


def _real_candidates(real: tuple[Any, ...], retriever: HybridRetriever) -> dict[str, Chunk]:
    """The windows real questions are validated among: their hybrid top ones, and those of their right files
    further down."""
    picked: dict[str, Chunk] = {}
    for q in real:
        found = retriever.retrieve(q.text, top_k=4 * REAL_CANDIDATES).results
        picked |= {r.chunk.id: r.chunk for r in found[:REAL_CANDIDATES]}
        picked |= {r.chunk.id: r.chunk for r in found if file_stem(r.chunk.source) in q.stems}
    return picked


def _real_mrr(
    encode: Callable[[list[str]], np.ndarray], real: tuple[Any, ...], chunks: dict[str, Chunk], texts: dict[str, str]
) -> float:
    ids = list(chunks)
    scores = encode([q.text for q in real]) @ encode([texts.get(i, chunks[i].text) for i in ids]).T
    total = 0.0
    for q, row in zip(real, scores, strict=True):
        ranked = list(dict.fromkeys(chunks[ids[i]].source for i in np.argsort(-row)[:100]))
        found = first_right(ranked, q.stems)
        total += 1.0 / found if found else 0.0
    return total / len(real)


def _reembed_and_swap(app: Ragline, folder: Path, report: AdaptReport, progress: bool) -> None:
    """Re-embed the stored chunks with the adapted model into a new index folder, recording the adaptation in
    it, and swap it in; until then searches answer from the old vectors."""
    from pipeline import lifecycle

    started = time.perf_counter()
    model = SentenceTransformerEmbedder(app.config.embedding.model_copy(update={"model": str(folder)}))
    report.model, report.adapted = str(folder), True
    fresh, report.points = lifecycle.reembedded_copy(
        app.store(), app.index_path, model, progress, {ADAPTED_FILE: report.as_dict()}
    )
    app.swap_in(fresh, model)
    report.reembed_seconds = time.perf_counter() - started
    write_json_atomic(app.index_path / ADAPTED_FILE, report.as_dict())
