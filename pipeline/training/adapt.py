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
from pipeline.eval.metrics import paired_bootstrap_p, per_query
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
VALIDATION_NEGATIVES = 1
"""Mined negatives per held-out pair, whatever training uses: ranking an answer among its lookalikes is what
tells a better model from the base one."""
VALIDATION_EXTRA = 300
"""Random other windows among the validation candidates, to make ranking them hard enough."""
CHECKS = 4
"""Validation checks in a run of one epoch (one an epoch in longer runs), besides the base model's and the last."""
REAL_CANDIDATES = 20
"""Chunks per real question among its validation candidates (the hybrid top ones), besides its files'. Every
check encodes them all with the model in training (on 120k Debian chunks, 50 a question plus all of the right
files' made one check take 10 minutes of a 12-minute budget)."""
REAL_RIGHT = 5
"""Chunks of a real question's right files among its candidates, at most (the best-ranked ones)."""


@dataclass(frozen=True)
class AdaptSettings:
    budget_minutes: float = 30.0
    epochs: int = 1
    """Passes over the training pairs: one, since the budget rather than the pairs is what runs out."""
    batch_size: int = 32
    max_seq_length: int = 128
    learning_rate: float = 1e-5
    """Low: the base model already learnt title-to-abstract matching, and 3e-5 unlearnt more than it gained on
    SciFact (bench/results/scifact_adapt_stop30.json)."""
    temperature: float = 0.05
    hard_negatives: int = 0
    """Mined negatives per training pair. None by default: on SciFact, one per pair made the adapted model worse
    on the test questions while it gained on the pseudo-pairs, the mined "negatives" being often as right."""
    max_p: float = 0.05
    """The adapted model is kept only if a gain as large as its validation gain would come by chance this
    rarely (paired bootstrap over the validation questions; 1: any gain). On SciFact, 200 held-out title pairs
    gained +0.008 while the test questions lost 0.002 (dense) and 0.006 (hybrid): noise, not adaptation."""
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
    gain_p: float = 1.0
    """The paired bootstrap's p of the best checkpoint's validation gain (see ``AdaptSettings.max_p``)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


REFUSED = "the adapted model did not beat the base model on validation{}: the index keeps its model"
# Said when a model is kept on pseudo-questions alone: on both development sets such gains did not carry over.
PSEUDO_ONLY = (
    "validated on pseudo-questions alone, whose gains did not carry over to real questions on SciFact or the"
    " Debian folder (docs/training.md): check with `ragline eval`, or adapt with --queries"
)


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
    record = app.adaptation() or {}
    base = app.embedder.name if settings.resume or not record else str(record.get("base_model", DEFAULT_EMBEDDER))
    real = load_queries(queries) if queries else ()
    chunks, texts, pairs = index_pairs(app, settings)
    train, held = _split(pairs, settings, len(chunks))
    folder = empty_output_folder(out or default_out(app.index_path))
    by_id = {c.id: c for c in chunks}
    retriever = HybridRetriever(app.store(), app.embedder, app.retrieval_config, cache_size=0)
    negatives = mined_negatives(train, by_id, texts, retriever, settings.hard_negatives, progress)
    for i, found in mined_negatives(held, by_id, texts, retriever, VALIDATION_NEGATIVES, progress).items():
        negatives[len(train) + i] = found
    data = _training_data(train, held, negatives, app.index_path.name)
    kinds: dict[str, str] = {f"q{len(train) + i}": pair.kind for i, pair in enumerate(held)}
    validate, checks, samples = _validation(data, kinds, chunks, texts, real, retriever, settings.seed)
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
    refused, report.gain_p = _refusal(checks, samples, trained.best.get("step", 0), settings.max_p)
    if refused:
        report.notes.append(refused)
        shutil.rmtree(folder, ignore_errors=True)  # a copy of the base model, or a worse one: nothing to keep
        return report
    if not real:
        report.notes.append(PSEUDO_ONLY)
    _reembed_and_swap(app, folder, report, progress)
    write_json_atomic(folder / "ragline_adapt.json", report.as_dict())
    return report


def index_pairs(app: Ragline, settings: AdaptSettings) -> tuple[list[Chunk], dict[str, str], list[Pair]]:
    """The index's chunks in the order of their paths (so that the same folder adapts the same way wherever it
    lies), each one's text as the model reads it, and the pairs of ``settings.kinds`` mined from them."""
    chunks = sorted((c for page in app.store().all_chunks() for c in page), key=lambda c: (c.source, c.ordinal, c.id))
    texts = {c.id: indexed_text(c, app.embedder.tokens, app.embedder.max_tokens) for c in chunks}
    mined = mine_pairs(((c, texts[c.id]) for c in chunks), settings.per_document, settings.seed)
    return chunks, texts, [pair for pair in mined if pair.kind in settings.kinds]


def _refusal(
    checks: list[dict[str, float]], samples: list[dict[str, list[float]]], step: float, max_p: float
) -> tuple[str, float]:
    """The note saying why the best checkpoint (at ``step``) is not kept (empty: it is), and the paired
    bootstrap's p of its gain over the base model (the first check): it must gain, lose on no figure, and have
    p ≤ ``max_p``."""
    at = next((i for i, c in enumerate(checks) if c["step"] == step), 0)
    if at == 0:
        return REFUSED.format(" (no checkpoint scored above it)"), 1.0
    best, base = checks[at], checks[0]
    p = paired_bootstrap_p(samples[0], samples[at])
    lost = [name for name in samples[0] if best[name] < base[name]]
    if lost:
        return REFUSED.format(f" (worse on {', '.join(lost)})"), p
    if p > max_p:
        why = f" beyond chance (score {base['score']:.3f} -> {best['score']:.3f}, paired bootstrap p = {p:.2f})"
        return REFUSED.format(why), p
    return "", p


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


def _split(pairs: list[Pair], settings: AdaptSettings, chunks: int) -> tuple[list[Pair], list[Pair]]:
    """Validation pairs come from documents that give no training pair; training pairs are capped at what the
    budget can train. Too few of either is a one-line error (``chunks``: how many they came from)."""
    documents = list(dict.fromkeys(p.document_id for p in pairs))  # in the pairs' order: by path
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
    if len(train) < 2 * settings.batch_size or len(held) < 10:
        raise RaglineError(
            f"the index gives too few {'/'.join(settings.kinds)} pairs to adapt on: {len(pairs)} from "
            f"{chunks} chunks, {len(train)} to train and {len(held)} to validate on "
            f"({2 * settings.batch_size} and 10 needed); the model stays as it is"
        )
    return train[: max(2 * settings.batch_size, int(settings.budget_minutes * PAIRS_PER_MINUTE))], held


def mined_negatives(
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
) -> tuple[Callable[[Callable[[list[str]], np.ndarray]], float], list[dict[str, float]], list[dict[str, list[float]]]]:
    """The score a checkpoint is kept by, the list each check is recorded in, and each check's per-question
    values of each figure (for the paired bootstrap of :func:`_refusal`): the held-out pairs' dense
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
    samples: list[dict[str, list[float]]] = []

    def score(encode: Callable[[list[str]], np.ndarray]) -> float:
        run = dense_run(encode, queries, corpus)
        scores = {q: s["ndcg@10"] for q, s in per_query({q: data.dataset.qrels[q] for q in run}, run).items()}
        figures = {
            f"{kind}_ndcg@10": [scores[q] for q in sorted(scores) if kinds[q] == kind]
            for kind in sorted(set(kinds.values()))
        }
        if real:
            figures["real_mrr@10"] = _real_reciprocal_ranks(encode, real, real_chunks, texts)
        point = {"step": float(len(checks)), "pseudo_ndcg@10": float(np.mean(list(scores.values())))}
        point |= {name: float(np.mean(values)) for name, values in figures.items()}
        point["score"] = float(np.mean([point[name] for name in figures]))
        checks.append(point)
        samples.append(figures)
        return point["score"]

    return score, checks, samples


def _real_candidates(real: tuple[Any, ...], retriever: HybridRetriever) -> dict[str, Chunk]:
    """The windows real questions are validated among: their hybrid top ones, and those of their right files
    further down."""
    picked: dict[str, Chunk] = {}
    for q in real:
        found = retriever.retrieve(q.text, top_k=10 * REAL_CANDIDATES).results
        picked |= {r.chunk.id: r.chunk for r in found[:REAL_CANDIDATES]}
        right = [r.chunk for r in found if file_stem(r.chunk.source) in q.stems][:REAL_RIGHT]
        picked |= {c.id: c for c in right}
    return picked


def _real_reciprocal_ranks(
    encode: Callable[[list[str]], np.ndarray], real: tuple[Any, ...], chunks: dict[str, Chunk], texts: dict[str, str]
) -> list[float]:
    """Each real question's 1 / rank of its first right file (0 past the tenth) among the candidates."""
    ids = list(chunks)
    scores = encode([q.text for q in real]) @ encode([texts.get(i, chunks[i].text) for i in ids]).T
    ranks = []
    for q, row in zip(real, scores, strict=True):
        found = first_right(list(dict.fromkeys(chunks[ids[i]].source for i in np.argsort(-row)[:100])), q.stems)
        ranks.append(1.0 / found if found else 0.0)
    return ranks


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
