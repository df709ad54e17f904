"""`fuse`: RRF, DBSF and weighted fusion of dense and BM25 hit lists."""

from __future__ import annotations

import statistics

import pytest

from pipeline.config import Fusion
from pipeline.errors import RaglineError
from pipeline.retrieval import fuse
from pipeline.stores.base import Hit

pytestmark = pytest.mark.unit


def hits(*pairs: tuple[str, float]) -> list[Hit]:
    return [Hit(cid, score) for cid, score in pairs]


def ids(results: list) -> list[str]:
    return [r.id for r in results]


def by_id(results: list) -> dict:
    return {r.id: r for r in results}


DENSE = hits(("a", 0.91), ("b", 0.85), ("c", 0.60), ("d", 0.42))
SPARSE = hits(("c", 12.0), ("e", 9.5), ("a", 4.0), ("f", 1.5))


# --- RRF ----------------------------------------------------------------------


def test_rrf_values_are_reciprocal_rank_sums() -> None:
    results = by_id(fuse(DENSE, SPARSE, Fusion.RRF, rrf_k=60, dense_weight=0.5))
    expected = {
        "a": 1 / 61 + 1 / 63,
        "b": 1 / 62,
        "c": 1 / 63 + 1 / 61,
        "d": 1 / 64,
        "e": 1 / 62,
        "f": 1 / 64,
    }
    assert results.keys() == expected.keys()
    for cid, value in expected.items():
        assert results[cid].fused == pytest.approx(value, rel=1e-12)


def test_rrf_respects_k() -> None:
    results = by_id(fuse(hits(("a", 1.0), ("b", 0.5)), [], Fusion.RRF, rrf_k=1))
    assert results["a"].fused == pytest.approx(1 / 2)
    assert results["b"].fused == pytest.approx(1 / 3)


def test_rrf_dense_weight_scales_each_side() -> None:
    # weights are 2 * dense_weight and 2 * (1 - dense_weight): 1.5 and 0.5 here
    results = by_id(fuse(DENSE, SPARSE, Fusion.RRF, rrf_k=60, dense_weight=0.75))
    assert results["a"].fused == pytest.approx(1.5 / 61 + 0.5 / 63)
    assert results["e"].fused == pytest.approx(0.5 / 62)
    assert results["b"].fused == pytest.approx(1.5 / 62)


def test_rrf_chunk_in_both_lists_beats_chunks_in_one() -> None:
    dense = hits(("x", 0.9), ("y", 0.8), ("both", 0.7))
    sparse = hits(("z", 20.0), ("w", 15.0), ("both", 3.0))
    results = fuse(dense, sparse, Fusion.RRF)
    assert results[0].id == "both"
    assert results[0].fused == pytest.approx(2 / 63)
    # the rest are first/second in one list; ties break by chunk id
    assert ids(results[1:]) == ["x", "z", "w", "y"]


def test_rrf_order_of_full_example() -> None:
    # a and c tie (1/61 + 1/63); b and e tie (1/62); d and f tie (1/64). Ties break on the
    # min-max normalised raw scores: c = (0.60-0.42)/0.49 + 1 = 1.37 beats a = 1 + 2.5/10.5 = 1.24;
    # b = 0.88 beats e = 0.76; d = 0 + 0 and f = 0 + 0 tie again and break by id.
    assert ids(fuse(DENSE, SPARSE, Fusion.RRF)) == ["c", "a", "b", "e", "d", "f"]


@pytest.mark.parametrize("method", list(Fusion))
def test_empty_sparse_list_keeps_dense_order(method: Fusion) -> None:
    dense = hits(("q", 0.95), ("m", 0.7), ("z", 0.69), ("b", 0.2), ("k", 0.1))
    results = fuse(dense, [], method)
    # ids are chosen so that sorting by id would give a different order
    assert ids(results) == ["q", "m", "z", "b", "k"]
    assert all(r.bm25 is None for r in results)
    assert [r.dense for r in results] == [0.95, 0.7, 0.69, 0.2, 0.1]


def test_empty_dense_list_keeps_sparse_order() -> None:
    sparse = hits(("q", 14.0), ("a", 7.0), ("m", 3.0))
    results = fuse([], sparse, Fusion.RRF)
    assert ids(results) == ["q", "a", "m"]
    assert all(r.dense is None for r in results)


def test_both_lists_empty_give_no_results() -> None:
    assert fuse([], [], Fusion.RRF) == []


# --- DBSF ---------------------------------------------------------------------


def dbsf_expected(scores: list[float]) -> list[float]:
    """Mean +- 3 population standard deviations mapped to [0, 1]."""
    mean, std = statistics.fmean(scores), statistics.pstdev(scores)
    low, high = mean - 3 * std, mean + 3 * std
    return [min(1.0, max(0.0, (s - low) / (high - low))) for s in scores]


def test_dbsf_values_match_hand_computation() -> None:
    results = by_id(fuse(DENSE, SPARSE, Fusion.DBSF, dense_weight=0.5))
    dense_norm = dict(zip("abcd", dbsf_expected([0.91, 0.85, 0.60, 0.42])))
    sparse_norm = dict(zip("ceaf", dbsf_expected([12.0, 9.5, 4.0, 1.5])))
    for cid in "abcdef":
        expected = dense_norm.get(cid, 0.0) + sparse_norm.get(cid, 0.0)
        assert results[cid].fused == pytest.approx(expected, rel=1e-9)


def test_dbsf_values_in_documented_range() -> None:
    results = fuse(DENSE, SPARSE, Fusion.DBSF, dense_weight=0.5)
    # each side is mapped into [0, 1] and both weights are 1.0, so fused is in [0, 2]
    assert all(r.fused is not None and 0.0 <= r.fused <= 2.0 for r in results)
    # a chunk in one list only cannot exceed 1
    single = by_id(results)
    for cid in "bdef":
        assert 0.0 < single[cid].fused <= 1.0


def test_dbsf_single_hit_scores_midpoint() -> None:
    results = fuse(hits(("only", 0.3)), [], Fusion.DBSF)
    assert results[0].fused == pytest.approx(0.5)  # 0.5 from a list with no spread, times weight 1.0


def test_dbsf_dense_weight_one_uses_only_dense() -> None:
    results = fuse(DENSE, SPARSE, Fusion.DBSF, dense_weight=1.0)
    assert ids(results)[:4] == ["a", "b", "c", "d"]
    scored = by_id(results)
    assert scored["e"].fused == 0.0 and scored["f"].fused == 0.0
    expected = dict(zip("abcd", dbsf_expected([0.91, 0.85, 0.60, 0.42])))
    for cid, value in expected.items():
        assert scored[cid].fused == pytest.approx(2 * value)


def test_dbsf_dense_weight_zero_uses_only_sparse() -> None:
    results = fuse(DENSE, SPARSE, Fusion.DBSF, dense_weight=0.0)
    assert ids(results)[:4] == ["c", "e", "a", "f"]
    scored = by_id(results)
    assert scored["b"].fused == 0.0 and scored["d"].fused == 0.0


# --- weighted -----------------------------------------------------------------


def minmax(scores: list[float]) -> list[float]:
    low, high = min(scores), max(scores)
    return [(s - low) / (high - low) for s in scores]


def test_weighted_values_match_hand_computation() -> None:
    results = by_id(fuse(DENSE, SPARSE, Fusion.WEIGHTED, dense_weight=0.3))
    dense_norm = dict(zip("abcd", minmax([0.91, 0.85, 0.60, 0.42])))
    sparse_norm = dict(zip("ceaf", minmax([12.0, 9.5, 4.0, 1.5])))
    for cid in "abcdef":
        expected = 0.3 * dense_norm.get(cid, 0.0) + 0.7 * sparse_norm.get(cid, 0.0)
        assert results[cid].fused == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("weight", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_weighted_values_in_unit_range(weight: float) -> None:
    results = fuse(DENSE, SPARSE, Fusion.WEIGHTED, dense_weight=weight)
    assert all(r.fused is not None and 0.0 <= r.fused <= 1.0 for r in results)
    # "a" is first in dense and third in sparse: both parts are known, so its score is exact
    a = by_id(results)["a"]
    assert a.fused == pytest.approx(weight * 1.0 + (1 - weight) * (4.0 - 1.5) / (12.0 - 1.5))


def test_weighted_dense_weight_one_uses_only_dense() -> None:
    results = fuse(DENSE, SPARSE, Fusion.WEIGHTED, dense_weight=1.0)
    scored = by_id(results)
    assert [scored[c].fused for c in "abc"] == pytest.approx(minmax([0.91, 0.85, 0.60, 0.42])[:3])
    assert ids(results)[:3] == ["a", "b", "c"]
    # the weakest dense hit and all sparse-only hits get nothing
    assert scored["d"].fused == 0.0 and scored["e"].fused == 0.0 and scored["f"].fused == 0.0


def test_weighted_dense_weight_zero_uses_only_sparse() -> None:
    results = fuse(DENSE, SPARSE, Fusion.WEIGHTED, dense_weight=0.0)
    assert ids(results)[:3] == ["c", "e", "a"]
    scored = by_id(results)
    assert scored["b"].fused == 0.0 and scored["d"].fused == 0.0


def test_weighted_single_hit_scores_by_sign() -> None:
    positive = fuse(hits(("p", 0.4)), [], Fusion.WEIGHTED, dense_weight=1.0)
    negative = fuse(hits(("n", -0.4)), [], Fusion.WEIGHTED, dense_weight=1.0)
    assert positive[0].fused == 1.0
    assert negative[0].fused == 0.0


# --- per-stage scores, limit, bad method --------------------------------------


@pytest.mark.parametrize("method", list(Fusion))
def test_per_stage_scores_carried_through(method: Fusion) -> None:
    results = by_id(fuse(DENSE, SPARSE, method))
    assert (results["a"].dense, results["a"].bm25) == (0.91, 4.0)
    assert (results["c"].dense, results["c"].bm25) == (0.60, 12.0)
    assert (results["b"].dense, results["b"].bm25) == (0.85, None)
    assert (results["d"].dense, results["d"].bm25) == (0.42, None)
    assert (results["e"].dense, results["e"].bm25) == (None, 9.5)
    assert (results["f"].dense, results["f"].bm25) == (None, 1.5)


@pytest.mark.parametrize("method", list(Fusion))
def test_results_sorted_by_fused_descending(method: Fusion) -> None:
    fused = [r.fused for r in fuse(DENSE, SPARSE, method, dense_weight=0.4)]
    assert fused == sorted(fused, reverse=True)


@pytest.mark.parametrize("limit", [0, 1, 3, 6, 100])
def test_limit_is_honoured(limit: int) -> None:
    full = fuse(DENSE, SPARSE, Fusion.RRF)
    limited = fuse(DENSE, SPARSE, Fusion.RRF, limit=limit)
    assert len(full) == 6
    assert len(limited) == min(limit, 6)
    assert ids(limited) == ids(full)[:limit]


def test_unknown_fusion_name_raises_value_error() -> None:
    with pytest.raises(ValueError, match="max"):
        Fusion("max")


def test_known_fusion_names_parse() -> None:
    assert [Fusion(name) for name in ("rrf", "dbsf", "weighted")] == [Fusion.RRF, Fusion.DBSF, Fusion.WEIGHTED]


def test_fuse_with_unknown_method_lists_choices() -> None:
    with pytest.raises(RaglineError) as info:
        fuse(DENSE, SPARSE, "max")  # type: ignore[arg-type]
    assert "'max'" in str(info.value)
    assert "['rrf', 'dbsf', 'weighted']" in str(info.value)


def test_a_dense_range_floor_keeps_near_equal_dense_scores_from_outvoting_bm25() -> None:
    # Near-identical sheets: dense tells them apart by 0.02, BM25 finds the exact code in "right".
    dense = hits(("wrong", 0.32), ("right", 0.30))
    sparse = hits(("right", 3.6), ("wrong", 0.2))
    assert ids(fuse(dense, sparse, Fusion.WEIGHTED, dense_weight=0.7))[0] == "wrong"  # 0.02 stretched to 1
    floored = by_id(fuse(dense, sparse, Fusion.WEIGHTED, dense_weight=0.7, min_dense_range=0.1))
    assert ids(fuse(dense, sparse, Fusion.WEIGHTED, dense_weight=0.7, min_dense_range=0.1))[0] == "right"
    assert floored["wrong"].fused == pytest.approx(0.7 * 0.02 / 0.1)
    # A list wider than the floor is scaled by its own range, as without it.
    assert ids(fuse(DENSE, SPARSE, Fusion.WEIGHTED, 60, 0.7, None, 0.1)) == ids(
        fuse(DENSE, SPARSE, Fusion.WEIGHTED, 60, 0.7)
    )
