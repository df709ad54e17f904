"""The search confidence (issue 14, item 7): its signals from hand-made candidate lists, and what the real
demo index says of a question it answers and of one it cannot."""

from __future__ import annotations

from collections.abc import Iterator

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
def test_a_clear_first_result_raises_the_confidence() -> None:
    """The fitted model's signs: a higher top dense score, and a first document standing clear of the next,
    mean a surer answer, in every mode that reads them."""
    for mode, names in FEATURES.items():
        middle = dict.fromkeys(names, 0.3)
        clear = {**middle, "fused_gap": 0.8, **({"dense_top": 0.8} if "dense_top" in names else {})}
        assert confidence(clear, mode) > confidence(middle, mode)


@pytest.mark.integration
def test_the_demo_question_is_surer_than_an_unrelated_one(demo_app: Ragline) -> None:
    answered = demo_app.search(DEMO_QUESTION, top_k=5, rerank=False)
    unrelated = demo_app.search("zebra quantum lasagne orbit tax", top_k=5, rerank=False)
    assert answered.confidence is not None and unrelated.confidence is not None
    assert answered.confidence > unrelated.confidence
    assert not answered.low_confidence


@pytest.fixture
def doubting(demo_app: Ragline) -> Iterator[Ragline]:
    """The demo app with a threshold nothing reaches, so every answer is low-confidence."""
    original = demo_app.config
    retrieval = original.retrieval.model_copy(update={"low_confidence": 1.0})
    demo_app.config = original.model_copy(update={"retrieval": retrieval})
    try:
        yield demo_app
    finally:
        demo_app.config = original


@pytest.mark.integration
def test_context_and_prompt_pass_a_low_confidence_on(doubting: Ragline) -> None:
    from pipeline.faces import render

    prompt, response = doubting.context(DEMO_QUESTION, rerank=False)
    assert response.low_confidence and prompt.low_confidence
    assert LOW_CONFIDENCE_NOTE in prompt.text
    data = render.context_dict("q", prompt, response)
    assert data["low_confidence"] is True and 0.0 <= data["confidence"] <= 1.0


@pytest.mark.integration
def test_a_confident_answer_has_no_warning(demo_app: Ragline) -> None:
    from pipeline.faces import render

    prompt, sure = demo_app.context(DEMO_QUESTION, rerank=False)
    assert not sure.low_confidence and LOW_CONFIDENCE_NOTE not in prompt.text
    assert render.search_dict(sure)["confidence"] == round(sure.confidence or 0.0, 4)
