"""Evidence spans and follow-up queries: pure functions, no model."""

from __future__ import annotations

import pytest

from pipeline.config import LLMConfig, PromptConfig
from pipeline.stages import followup
from pipeline.stages.highlights import highlight, keep_best, sentences
from pipeline.stages.prompt import build_prompt
from pipeline.types import Chunk, ScoredChunk, Turn

pytestmark = pytest.mark.unit

MANUAL = (
    "The Aurora 2 is a compact espresso machine. Hard water leaves scale in the boiler!\n"
    "In hard-water areas the machine should be descaled every 8 weeks. Soft water: every 12 weeks.\n"
    "Error E4: the water tank is empty"
)


def marked(text: str, query: str, limit: int = 2) -> list[str]:
    return [text[s.start : s.end] for s in highlight(query, [text], limit)[0]]


def test_sentences_split_at_stops_and_lines_and_trim() -> None:
    got = [MANUAL[s.start : s.end] for s in sentences(MANUAL)]
    assert got == [
        "The Aurora 2 is a compact espresso machine.",
        "Hard water leaves scale in the boiler!",
        "In hard-water areas the machine should be descaled every 8 weeks.",
        "Soft water: every 12 weeks.",
        "Error E4: the water tank is empty",
    ]
    assert sentences("   \n\n  ") == []


def test_the_sentence_holding_the_answer_is_marked() -> None:
    assert marked(MANUAL, "how often to descale", 1) == [
        "In hard-water areas the machine should be descaled every 8 weeks."
    ]
    assert marked(MANUAL, "What does E4 mean?", 1) == ["Error E4: the water tank is empty"]
    assert marked(MANUAL, "banana bread recipe") == []  # nothing shared: no guess


def test_spans_come_in_text_order_and_respect_the_limit() -> None:
    spans = highlight("water descaled weeks", [MANUAL], 3)[0]
    assert len(spans) <= 3 and [s.start for s in spans] == sorted(s.start for s in spans)
    assert highlight("water", [MANUAL], 0) == [()]


def test_a_term_in_every_result_weighs_less_than_a_rare_one() -> None:
    texts = ["Aurora espresso. The grinder is loud.", "Aurora espresso. Descale monthly.", "Aurora espresso."]
    first = highlight("aurora descale", texts, 1)
    assert [texts[1][s.start : s.end] for s in first[1]] == ["Descale monthly."]


def test_keep_best_cuts_a_long_block_to_its_best_sentences() -> None:
    cut = keep_best("how often to descale", MANUAL, 1)
    assert cut == "… In hard-water areas the machine should be descaled every 8 weeks. …"
    assert keep_best("banana", MANUAL, 1) == MANUAL
    assert keep_best("descale", "One sentence only.", 1) == "One sentence only."


def test_prompt_best_sentences_option(token_counter) -> None:  # type: ignore[no-untyped-def]
    chunk = Chunk("c1", "d1", "manual.pdf", MANUAL, 0, 0, len(MANUAL), page_start=2)
    whole = build_prompt("how often to descale", [ScoredChunk(chunk, fused=1.0)], PromptConfig(), token_counter)
    config = PromptConfig(best_sentences=1)
    short = build_prompt("how often to descale", [ScoredChunk(chunk, fused=1.0)], config, token_counter)
    assert MANUAL in whole.text and MANUAL not in short.text
    assert short.blocks[0].text == "… In hard-water areas the machine should be descaled every 8 weeks. …"
    assert short.token_count < whole.token_count


HISTORY = [Turn("user", "How often should I descale the Aurora 2?"), Turn("assistant", "Every 8 weeks [1].")]


def test_follow_up_without_llm_joins_the_last_user_question() -> None:
    none = LLMConfig()
    assert followup.standalone("and how long does it take?", (), none) == "and how long does it take?"
    assert (
        followup.standalone("and how long does it take?", HISTORY, none)
        == "How often should I descale the Aurora 2? and how long does it take?"
    )


def test_rewrite_prompt_keeps_the_last_turns_only_and_clean_strips_labels() -> None:
    long_chat = [Turn("user", f"question {i}") for i in range(20)]
    prompt = followup.rewrite_prompt("and then?", long_chat)
    assert "question 19" in prompt and "question 13" not in prompt and prompt.endswith(followup.REWRITE.split("\n")[-1])
    assert followup.clean('  "Query: descale the Aurora 2"\n', "q", 100) == "descale the Aurora 2"
    assert followup.clean("   ", "the question", 100) == "the question"
    assert len(followup.clean("x" * 500, "q", 100)) == 100
