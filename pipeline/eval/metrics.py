"""IR metrics through pytrec_eval (trec_eval's own C code, as BEIR and MTEB use it).

Runs are ranked lists; trec_eval sorts by score and breaks ties by document id,
so each list is given strictly decreasing scores and its order is kept exactly.
A query with no results still counts, as zero, in every mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


def _scored(run: Run, depth: int) -> dict[str, dict[str, float]]:
    return {q: {d: float(depth - rank) for rank, d in enumerate(docs[:depth])} for q, docs in run.items() if docs}


def evaluate_run(qrels: Qrels, run: Run, k: int = 10, recall_depth: int = 100) -> dict[str, float]:
    """Mean nDCG@k, Recall@recall_depth and MRR@k over every query in ``qrels``."""
    scores = per_query(qrels, run, k, recall_depth)
    names = (f"ndcg@{k}", f"recall@{recall_depth}", f"mrr@{k}")
    return {name: sum(s[name] for s in scores.values()) / len(scores) for name in names}


def per_query(qrels: Qrels, run: Run, k: int = 10, recall_depth: int = 100) -> dict[str, dict[str, float]]:
    """nDCG@k, Recall@recall_depth and MRR@k of each query in ``qrels`` (0 for one with no results)."""
    import pytrec_eval

    judged = {q: dict(docs) for q, docs in qrels.items()}
    if not judged:
        raise ValueError("qrels are empty")
    ranking = pytrec_eval.RelevanceEvaluator(judged, {f"ndcg_cut.{k}", f"recall.{recall_depth}"})
    # MRR@k is trec_eval's recip_rank on the run cut to k.
    reciprocal = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    full = ranking.evaluate(_scored(run, max(k, recall_depth)))
    top = reciprocal.evaluate(_scored(run, k))
    return {
        q: {
            f"ndcg@{k}": full[q][f"ndcg_cut_{k}"] if q in full else 0.0,
            f"recall@{recall_depth}": full[q][f"recall_{recall_depth}"] if q in full else 0.0,
            f"mrr@{k}": top[q]["recip_rank"] if q in top else 0.0,
        }
        for q in judged
    }


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The probability that a right answer's score beats a wrong one's (ties count half): how well a
    confidence tells them apart. None when every answer is right, or every one wrong."""
    positive = [s for s, y in zip(scores, labels, strict=True) if y]
    negative = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positive or not negative:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def paired_bootstrap_p(
    base: Mapping[str, Sequence[float]], new: Mapping[str, Sequence[float]], rounds: int = 2000, seed: int = 0
) -> float:
    """The share of paired bootstrap resamples (Efron's bootstrap, resampling each figure's questions with
    their two scores) in which ``new``'s score is not above ``base``'s; the score is the mean over the
    figures (``name -> per-question values``, the same questions in both) of their means. Small: a real gain;
    near 0.5: what a different draw of the same questions could give either way."""
    import numpy as np

    rng = np.random.default_rng(seed)
    gain = np.zeros(rounds)
    for name, before in base.items():
        change = np.asarray(new[name], dtype=np.float64) - np.asarray(before, dtype=np.float64)
        gain += change[rng.integers(0, len(change), size=(rounds, len(change)))].mean(axis=1)
    return float(np.mean(gain <= 0))
