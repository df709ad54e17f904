"""The search confidence (issue 14, item 7): its signals from hand-made candidate lists, and what the real
demo index says of a question it answers and of one it cannot."""

from __future__ import annotations

import pytest

from pipeline.app import Ragline
from pipeline.retrieval.confidence import FEATURES, MODEL, confidence, features
from pipeline.retrieval.fusion import Fused
from pipeline.stages.prompt import LOW_CONFIDENCE_NOTE
from pipeline.stores.base import Hit

DEMO_QUESTION = "How often should I descale the Aurora 2 espresso machine?"


def _ranked(*rows: tuple[str, str, float]) -> list[Fused]:
    return [Fused(cid, None, None, score, doc) for cid, doc, score in rows]


@pytest.mark.unit
def test_signals_of_lists_that_agree() -> None:
    dense = [Hit("a1", 0.8, "A"), Hit("a2", 0.7, "A"), Hit("b1", 0.4, "B")]
    sparse = [Hit("a2", 12.0, "A"), Hit("b1", 6.0, "B")]
    s = features(dense, sparse, _ranked(("a1", "A", 1.0), ("b1", "B", 0.5)), query_terms=4)
    assert s["dense_top"] == 0.8
    assert s["dense_gap"] == pytest.approx((0.8 - 0.4) / 0.8)  # to the next *document*, not the next chunk
    assert s["bm25_gap"] == pytest.approx(0.5)
    assert s["bm25_per_term"] == pytest.approx(3.0)
    assert s["fused_gap"] == pytest.approx(0.5)
    assert (s["agree_dense"], s["agree_bm25"], s["overlap"]) == (1.0, 1.0, 1.0)


@pytest.mark.unit
def test_signals_of_lists_that_disagree_or_are_missing() -> None:
    dense = [Hit("a1", 0.5, "A"), Hit("b1", 0.49, "B")]
    sparse = [Hit("c1", 5.0, "C"), Hit("d1", 4.9, "D")]
    s = features(dense, sparse, _ranked(("a1", "A", 0.6), ("c1", "C", 0.59)), query_terms=2)
    assert (s["agree_dense"], s["agree_bm25"], s["overlap"]) == (1.0, 0.0, 0.0)
    assert s["dense_gap"] == pytest.approx(0.02)
    only_dense = features(dense, [], _ranked(("a1", "A", 0.5)), query_terms=0)
    assert only_dense["bm25_gap"] == 0.0 and only_dense["bm25_per_term"] == 0.0
    assert only_dense["fused_gap"] == 1.0  # one document alone stands clear


@pytest.mark.unit
def test_confidence_is_a_probability_for_every_mode_and_reads_only_its_features() -> None:
    for mode, names in FEATURES.items():
        assert set(MODEL[mode][1]) == set(names)
        low = confidence(dict.fromkeys(names, 0.0), mode)
        high = confidence(dict.fromkeys(names, 1.0), mode)
        assert 0.0 < low < 1.0 and 0.0 < high < 1.0
    assert confidence(dict.fromkeys(FEATURES["hybrid"], 1e9), "hybrid") <= 1.0  # no overflow


@pytest.mark.unit
def test_agreement_raises_the_hybrid_confidence() -> None:
    """The fitted model's signs: lists that agree on the first result, and a clear margin, mean a surer answer."""
    agreeing = {"dense_top": 0.6, "dense_gap": 0.2, "bm25_gap": 0.3, "fused_gap": 0.3, "overlap": 0.6}
    both = confidence({**agreeing, "agree_dense": 1.0, "agree_bm25": 1.0}, "hybrid")
    neither = confidence({**agreeing, "agree_dense": 0.0, "agree_bm25": 0.0}, "hybrid")
    assert both > neither


@pytest.mark.integration
def test_the_demo_question_is_confident_and_nonsense_is_not(demo_app: Ragline) -> None:
    answered = demo_app.search(DEMO_QUESTION, top_k=5, rerank=False)
    nonsense = demo_app.search("zebra quantum lasagne orbit tax", top_k=5, rerank=False)
    assert answered.confidence is not None and nonsense.confidence is not None
    assert answered.confidence > nonsense.confidence
    assert not answered.low_confidence
    assert nonsense.low_confidence


@pytest.mark.integration
def test_context_and_prompt_pass_a_low_confidence_on(demo_app: Ragline) -> None:
    from pipeline.faces import render

    prompt, response = demo_app.context("zebra quantum lasagne orbit tax", rerank=False)
    assert response.low_confidence and prompt.low_confidence
    assert LOW_CONFIDENCE_NOTE in prompt.text
    data = render.context_dict("q", prompt, response)
    assert data["low_confidence"] is True and 0.0 <= data["confidence"] <= 1.0
    sure_prompt, sure = demo_app.context(DEMO_QUESTION, rerank=False)
    assert not sure.low_confidence and LOW_CONFIDENCE_NOTE not in sure_prompt.text
    assert render.search_dict(sure)["confidence"] == round(sure.confidence or 0.0, 4)


@pytest.mark.integration
def test_the_threshold_is_a_setting(demo_app: Ragline) -> None:
    original = demo_app.config
    retrieval = original.retrieval.model_copy(update={"low_confidence": 1.0})
    demo_app.config = original.model_copy(update={"retrieval": retrieval})
    try:
        assert demo_app.search(DEMO_QUESTION, top_k=3, rerank=False).low_confidence  # nothing is sure enough
    finally:
        demo_app.config = original
