"""`build_prompt` with the real MiniLM tokenizer: numbering, citations, merging, budget."""

from __future__ import annotations

import re

import pytest

from pipeline.config import PromptConfig
from pipeline.stages.prompt import build_prompt
from pipeline.types import Chunk, ScoredChunk

pytestmark = pytest.mark.unit

SEP = "\n<<<Q>>>\n"
TEMPLATE = "CONTEXT START\n{context}" + SEP + "QUESTION: {question}"

HANDBOOK = (
    "Employees may work remotely up to three days per week after their probation period ends. "
    "Requests for additional remote days must be approved in writing by the team lead. "
    "Equipment for the home office, including a monitor and a chair, is reimbursed once every four years. "
    "Travel expenses are settled through the finance portal within thirty days of the trip."
)


def make_chunk(
    cid: str,
    text: str,
    *,
    document_id: str = "doc-1",
    source: str = "handbook.pdf",
    ordinal: int = 0,
    start: int = 0,
    page: int | None = None,
    page_end: int | None = None,
    heading: tuple[str, ...] = (),
) -> Chunk:
    return Chunk(
        id=cid,
        document_id=document_id,
        source=source,
        text=text,
        ordinal=ordinal,
        start=start,
        end=start + len(text),
        page_start=page,
        page_end=page_end if page_end is not None else page,
        heading=heading,
    )


def span(cid: str, start: int, end: int, ordinal: int, **kw: object) -> Chunk:
    return make_chunk(cid, HANDBOOK[start:end], ordinal=ordinal, start=start, **kw)  # type: ignore[arg-type]


def scored(chunk: Chunk, score: float) -> ScoredChunk:
    return ScoredChunk(chunk, fused=score)


def config(**kw: object) -> PromptConfig:
    return PromptConfig(template=TEMPLATE, **kw)


def context_of(text: str) -> str:
    return text.split(SEP)[0].removeprefix("CONTEXT START\n")


def block_headers(text: str) -> list[str]:
    return re.findall(r"^\[(\d+)\] (.*)$", context_of(text), flags=re.MULTILINE)


# --- numbering, citation, template ---------------------------------------------


def test_blocks_numbered_in_score_order(token_counter) -> None:
    results = [
        scored(make_chunk("low", "Parking permits are issued by facilities.", source="parking.md"), 0.2),
        scored(make_chunk("high", "Remote work is allowed three days a week.", source="remote.md"), 0.9),
        scored(make_chunk("mid", "Expenses are settled within thirty days.", source="travel.md"), 0.5),
    ]
    prompt = build_prompt("How many remote days?", results, config(), token_counter)
    assert [b.number for b in prompt.blocks] == [1, 2, 3]
    assert [b.chunk_ids for b in prompt.blocks] == [("high",), ("mid",), ("low",)]
    assert block_headers(prompt.text) == [("1", "remote.md"), ("2", "travel.md"), ("3", "parking.md")]
    context = context_of(prompt.text)
    assert context.index("Remote work") < context.index("Expenses") < context.index("Parking")
    assert prompt.dropped_chunks == 0


def test_citation_has_source_page_and_heading_path(token_counter) -> None:
    chunk = make_chunk("c", "Requests need written approval.", page=3, heading=("Handbook", "Remote work", "Approval"))
    prompt = build_prompt("q", [scored(chunk, 1.0)], config(), token_counter)
    assert prompt.blocks[0].citation == "handbook.pdf, p. 3, Handbook > Remote work > Approval"
    assert "[1] handbook.pdf, p. 3, Handbook > Remote work > Approval\nRequests need written approval." in prompt.text


def test_citation_page_span_and_missing_parts(token_counter) -> None:
    spanning = make_chunk("s", "Text across a page break.", source="a.pdf", page=4, page_end=5)
    plain = make_chunk("p", "Plain text file content.", source="notes.txt", document_id="doc-2")
    prompt = build_prompt("q", [scored(spanning, 0.8), scored(plain, 0.7)], config(), token_counter)
    assert [b.citation for b in prompt.blocks] == ["a.pdf, p. 4-5", "notes.txt"]


def test_template_fields_filled(token_counter) -> None:
    chunk = make_chunk("c", "The office opens at eight.")
    prompt = build_prompt("When does the office open?", [scored(chunk, 1.0)], config(), token_counter)
    assert (
        prompt.text
        == "CONTEXT START\n[1] handbook.pdf\nThe office opens at eight." + SEP + "QUESTION: When does the office open?"
    )
    assert "{context}" not in prompt.text and "{question}" not in prompt.text


def test_default_template_filled(token_counter) -> None:
    chunk = make_chunk("c", "The office opens at eight.")
    prompt = build_prompt("When?", [scored(chunk, 1.0)], PromptConfig(), token_counter)
    assert prompt.text.startswith("Answer the question using only the numbered context blocks below.")
    assert prompt.text.endswith("[1] handbook.pdf\nThe office opens at eight.\n\nQuestion: When?\nAnswer:")


def test_question_with_braces_is_inserted_verbatim(token_counter) -> None:
    chunk = make_chunk("c", "JSON objects use {curly} braces.")
    prompt = build_prompt("What is {x}?", [scored(chunk, 1.0)], config(), token_counter)
    assert prompt.text.endswith("QUESTION: What is {x}?")
    assert "JSON objects use {curly} braces." in prompt.text


def test_empty_results_give_no_context_found(token_counter) -> None:
    prompt = build_prompt("anything?", [], config(), token_counter)
    assert context_of(prompt.text) == "(no context found)"
    assert prompt.blocks == ()
    assert prompt.dropped_chunks == 0
    assert prompt.token_count == token_counter.count(prompt.text)


# --- merging adjacent chunks ----------------------------------------------------


def test_overlapping_adjacent_chunks_merge_without_duplicating(token_counter) -> None:
    # chunk 0 covers [0, 170), chunk 1 covers [140, 280): 30 characters overlap
    first, second = span("c0", 0, 170, 0, page=3), span("c1", 140, 280, 1, page=3)
    assert first.end > second.start
    prompt = build_prompt("q", [scored(second, 0.7), scored(first, 0.6)], config(), token_counter)
    assert len(prompt.blocks) == 1
    block = prompt.blocks[0]
    assert block.text == HANDBOOK[0:280]
    assert block.chunk_ids == ("c0", "c1")
    assert block.score == 0.7  # the group keeps its best score
    overlap = HANDBOOK[140:170]
    assert context_of(prompt.text).count(overlap) == 1
    assert block_headers(prompt.text) == [("1", "handbook.pdf, p. 3")]


def test_merged_block_page_label_spans_pages(token_counter) -> None:
    first, second = span("c0", 0, 170, 0, page=3), span("c1", 140, 280, 1, page=4)
    prompt = build_prompt("q", [scored(first, 0.9), scored(second, 0.8)], config(), token_counter)
    assert [b.page for b in prompt.blocks] == ["3-4"]


def test_touching_adjacent_chunks_merge_with_newline(token_counter) -> None:
    first, second = span("c0", 0, 89, 0), span("c1", 90, 173, 1)
    assert first.end < second.start
    prompt = build_prompt("q", [scored(first, 0.5), scored(second, 0.6)], config(), token_counter)
    assert [b.text for b in prompt.blocks] == [HANDBOOK[0:89] + "\n" + HANDBOOK[90:173]]


def test_merge_keeps_other_blocks_in_score_order(token_counter) -> None:
    first, second = span("c0", 0, 170, 0), span("c1", 140, 280, 1)
    other = make_chunk("o", "Parking permits are issued by facilities.", document_id="doc-2", source="parking.md")
    results = [scored(first, 0.9), scored(other, 0.8), scored(second, 0.3)]
    prompt = build_prompt("q", results, config(), token_counter)
    assert [b.chunk_ids for b in prompt.blocks] == [("c0", "c1"), ("o",)]
    assert [b.number for b in prompt.blocks] == [1, 2]


def test_non_consecutive_ordinals_do_not_merge(token_counter) -> None:
    first, third = span("c0", 0, 89, 0), span("c2", 174, 280, 2)
    prompt = build_prompt("q", [scored(first, 0.9), scored(third, 0.8)], config(), token_counter)
    assert [b.chunk_ids for b in prompt.blocks] == [("c0",), ("c2",)]


def test_chunks_of_different_documents_do_not_merge(token_counter) -> None:
    a = make_chunk("a", "First document text.", document_id="doc-a", ordinal=0)
    b = make_chunk("b", "Second document text.", document_id="doc-b", ordinal=1)
    prompt = build_prompt("q", [scored(a, 0.9), scored(b, 0.8)], config(), token_counter)
    assert len(prompt.blocks) == 2


def test_chunks_under_different_headings_do_not_merge(token_counter) -> None:
    a = make_chunk("a", "Install with pip.", source="guide.md", ordinal=0, heading=("Guide", "Install"))
    b = make_chunk("b", "Run the command.", source="guide.md", ordinal=1, start=18, heading=("Guide", "Usage"))
    prompt = build_prompt("q", [scored(a, 0.9), scored(b, 0.8)], config(), token_counter)
    assert [b.citation for b in prompt.blocks] == ["guide.md, Guide > Install", "guide.md, Guide > Usage"]


def test_merge_can_be_switched_off(token_counter) -> None:
    first, second = span("c0", 0, 170, 0), span("c1", 140, 280, 1)
    prompt = build_prompt("q", [scored(first, 0.9), scored(second, 0.8)], config(merge_adjacent=False), token_counter)
    assert [b.text for b in prompt.blocks] == [first.text, second.text]


# --- token budget ---------------------------------------------------------------

SHORT_A = "Remote work is allowed three days a week."
LONG_B = " ".join(
    f"Clause {i}: the reimbursement of equipment such as monitors, chairs and headsets follows rule {i}."
    for i in range(1, 15)
)
SHORT_C = "Expenses are settled within thirty days."


def budget_results() -> list[ScoredChunk]:
    return [
        scored(make_chunk("a", SHORT_A, document_id="d1", source="remote.md"), 0.9),
        scored(make_chunk("b", LONG_B, document_id="d2", source="equipment.md"), 0.8),
        scored(make_chunk("c", SHORT_C, document_id="d3", source="travel.md"), 0.7),
    ]


def test_chunk_over_budget_is_dropped_whole_and_reported(token_counter) -> None:
    assert token_counter.count(LONG_B) > 200
    prompt = build_prompt("q", budget_results(), config(), token_counter, budget=100)
    assert [b.chunk_ids for b in prompt.blocks] == [("a",), ("c",)]
    assert [b.number for b in prompt.blocks] == [1, 2]
    assert prompt.dropped_chunks == 1
    assert prompt.note == "1 more retrieved chunk(s) left out to fit the 100-token context budget"
    assert "left out" not in prompt.text and "budget" not in prompt.text  # the model is not told
    # dropped whole: not even the start of the long chunk is in the prompt
    assert "Clause" not in prompt.text
    assert "equipment.md" not in prompt.text


def test_dropped_count_counts_merged_chunks(token_counter) -> None:
    first, second = span("c0", 0, 170, 0), span("c1", 140, 280, 1)
    small = make_chunk("s", SHORT_A, document_id="d9", source="remote.md")
    results = [scored(first, 0.9), scored(second, 0.8), scored(small, 0.1)]
    prompt = build_prompt("q", results, config(), token_counter, budget=40)
    assert [b.chunk_ids for b in prompt.blocks] == [("s",)]
    assert prompt.dropped_chunks == 2
    assert prompt.note == "2 more retrieved chunk(s) left out to fit the 40-token context budget"


@pytest.mark.parametrize("budget", [40, 60, 100, 250, 400, 2000])
def test_context_stays_within_budget(token_counter, budget: int) -> None:
    results = budget_results() + [
        scored(span("h0", 0, 170, 0, document_id="d4"), 0.65),
        scored(span("h1", 140, 280, 1, document_id="d4"), 0.6),
    ]
    prompt = build_prompt("q", results, config(), token_counter, budget=budget)
    rendered = "\n\n".join(b.render() for b in prompt.blocks)
    assert context_of(prompt.text).startswith(rendered)
    assert token_counter.count(rendered) <= budget
    assert prompt.budget == budget
    assert prompt.dropped_chunks == 5 - sum(len(b.chunk_ids) for b in prompt.blocks)
    assert prompt.token_count == token_counter.count(prompt.text)


def test_budget_defaults_to_config(token_counter) -> None:
    small = build_prompt("q", budget_results(), config(max_context_tokens=100), token_counter)
    large = build_prompt("q", budget_results(), config(max_context_tokens=2000), token_counter)
    assert (small.budget, small.dropped_chunks) == (100, 1)
    assert (large.budget, large.dropped_chunks) == (2000, 0)
    assert [b.chunk_ids for b in large.blocks] == [("a",), ("b",), ("c",)]


def test_nothing_fits_gives_no_context_found_and_count(token_counter) -> None:
    results = [scored(make_chunk("b", LONG_B), 0.9)]
    prompt = build_prompt("q", results, config(max_context_tokens=32), token_counter)
    assert prompt.blocks == ()
    assert context_of(prompt.text) == "(no context: the retrieved passages were too long for the context budget)"
    assert prompt.note == "none of the 1 retrieved chunk(s) fit the 32-token context budget"


def test_blocks_with_one_citation_say_where_they_lie(token_counter) -> None:
    """Two FAQ parts with no headings or pages were both "[2] faq.txt" and "[3] faq.txt"."""
    parts = [
        Chunk(
            f"f{n}",
            "faq",
            "faq.txt",
            f"Q{n}: question {n}? A: answer {n}.",
            n,
            40 * n,
            40 * n + 30,
            metadata={"chunk_count": 9},
        )
        for n in (1, 5)
    ]
    alone = make_chunk("g", "Another file.", document_id="doc-g", source="guide.md")
    prompt = build_prompt(
        "q", [scored(parts[0], 0.9), scored(parts[1], 0.8), scored(alone, 0.7)], config(), token_counter
    )
    assert [b.citation for b in prompt.blocks] == ["faq.txt, chunk 2 of 9", "faq.txt, chunk 6 of 9", "guide.md"]
    assert "[2] faq.txt, chunk 6 of 9" in prompt.text


def test_a_merged_block_marks_where_each_part_s_page_begins(token_counter) -> None:
    on_3, on_4 = span("c0", 0, 170, 0, page=3), span("c1", 140, 280, 1, page=4)
    block = build_prompt("q", [scored(on_3, 0.9), scored(on_4, 0.8)], config(), token_counter).blocks[0]
    assert block.citation == "handbook.pdf, p. 3-4" and block.pages == ("3", "4")
    before, after = block.text.split("\n(p. 4) ")
    assert before == on_3.text and HANDBOOK[170:280].lstrip() == after  # the p. 4 part, once
    same_page = build_prompt(
        "q",
        [scored(span("d0", 0, 170, 0, page=3), 0.9), scored(span("d1", 140, 280, 1, page=3), 0.8)],
        config(),
        token_counter,
    ).blocks[0]
    assert "(p." not in same_page.text and same_page.text == HANDBOOK[:280]
