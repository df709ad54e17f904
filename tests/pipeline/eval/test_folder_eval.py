"""``ragline eval --folder``: file-level scoring of questions over a real folder through the normal sync."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import RaglineError
from pipeline.eval.folder import at_place, file_stem, first_right, folder_metrics, load_queries
from pipeline.types import Chunk
from tests.conftest import DEMO_DOCS, SHARED

QUESTIONS = """# demo questions: qid, question, right file stems
q-vacation\tHow many paid vacation days does a full-time employee get?\temployee-handbook
q-grind\tHow fine should I grind coffee for espresso?\tfaq
q-firmware\tWhat changed in the Aurora 2 firmware releases?\trelease-notes
q-licence\tUnder which licence are the demo documents released?\tLICENSE|license
"""


@pytest.mark.unit
def test_file_stems_drop_the_document_suffixes() -> None:
    assert file_stem("python3.11/library/os.rst.txt") == "os"
    assert file_stem("html/sql-createpublication.html") == "sql-createpublication"
    assert file_stem("r-doc-pdf/R-intro.pdf") == "R-intro"
    assert file_stem("notes/v2.0.md") == "v2.0"
    assert file_stem("README") == "README"
    assert file_stem("Guide.HTML") == "Guide"


@pytest.mark.unit
def test_the_debian_dev_questions_load(tmp_path: Path) -> None:
    tsv = SHARED / "datasets" / "debian-dev" / "queries.tsv"
    if not tsv.is_file():
        pytest.skip("needs shared/datasets/debian-dev")
    queries = load_queries(tsv)
    assert len(queries) == 48 and len({q.id for q in queries}) == 48
    assert queries[0].id == "d-pg01" and "logical-replication" in queries[0].stems and len(queries[0].stems) == 4


@pytest.mark.unit
def test_bad_question_files_are_one_line_errors(tmp_path: Path) -> None:
    cases = {
        "two-columns.tsv": "q1\tonly a question\n",
        "no-stems.tsv": "q1\ta question\t | \n",
        "twice.tsv": "q1\ta\tx\nq1\tb\ty\n",
        "empty.tsv": "# nothing but a comment\n\n",
    }
    messages = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(RaglineError) as caught:
            load_queries(tmp_path / name)
        messages[name] = str(caught.value)
    assert all("\n" not in m and str(tmp_path) in m for m in messages.values())
    assert ":1: expected qid<TAB>question<TAB>stem|stem" in messages["two-columns.tsv"]
    assert ":1: expected" in messages["no-stems.tsv"]
    assert ":2: question id 'q1' appears twice" in messages["twice.tsv"]
    assert "holds no questions" in messages["empty.tsv"]


@pytest.mark.unit
def test_ranks_count_any_copy_of_a_right_file_and_stop_at_ten() -> None:
    ranked = ["a/intro.html", "b/setup.html", "copy/setup.html", *[f"x{i}.txt" for i in range(20)]]
    assert first_right(ranked, frozenset({"setup"})) == 2
    assert first_right(ranked, frozenset({"intro", "setup"})) == 1
    assert first_right(ranked, frozenset({"x6"})) == 10
    assert first_right(ranked, frozenset({"x7"})) is None  # rank 11
    metrics = folder_metrics([1, 2, None, 5, 10])
    assert metrics == pytest.approx({"success@1": 0.2, "success@5": 0.6, "mrr@10": (1 + 0.5 + 0.2 + 0.1) / 5})
    assert folder_metrics([]) == {"success@1": 0.0, "success@5": 0.0, "mrr@10": 0.0}


def _eval(home: Path, folder: Path, questions: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    import os

    command = [sys.executable, "-m", "pipeline.faces.cli", "eval", "--folder", str(folder), "--queries", str(questions)]
    env = {**os.environ, "XDG_CACHE_HOME": str(home)}
    return subprocess.run([*command, *extra], capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.mark.integration
def test_eval_folder_end_to_end_and_reuses_its_index(tmp_path: Path) -> None:
    questions = tmp_path / "questions.tsv"
    questions.write_text(QUESTIONS, encoding="utf-8")
    first = _eval(tmp_path / "home", DEMO_DOCS, questions, "--modes", "bm25,hybrid", "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads(first.stdout)
    assert report["queries"] == 4 and report["documents"] == 5 and report["units"] == "chunks"
    assert report["index"]["reused"] is False and report["index"]["chunks_written"] > 0
    assert set(report["modes"]) == {"bm25", "hybrid"}
    for mode in report["modes"].values():
        ranks = list(mode["ranks"].values())
        assert set(mode["ranks"]) == {"q-vacation", "q-grind", "q-firmware", "q-licence"}
        assert mode["success@1"] == pytest.approx(sum(r == 1 for r in ranks) / 4)
        assert mode["mrr@10"] == pytest.approx(sum(1 / r for r in ranks if r) / 4)
        assert {"latency_ms_p50", "latency_ms_p95", "stages_ms"} <= set(mode)
        assert all(r is not None and r <= 5 for r in ranks)  # each of five files answers one obvious question
    assert "per_query" not in report["modes"]["bm25"]
    again = _eval(tmp_path / "home", DEMO_DOCS, questions, "--modes", "bm25")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "index re-used" in again.stdout and "S@1" in again.stdout and "bm25" in again.stdout
    assert "not right at rank 1" not in again.stdout

    rows = json.loads(_eval(tmp_path / "home", DEMO_DOCS, questions, "--json", "--per-query").stdout)["modes"]
    for name, mode in rows.items():
        assert [q["id"] for q in mode["per_query"]] == list(mode["ranks"]), name
        for q in mode["per_query"]:
            assert q["rank"] == mode["ranks"][q["id"]] and q["query"] and q["right"]
            assert (file_stem(q["top"][0]) in q["right"]) == (q["rank"] == 1)
    text = _eval(tmp_path / "home", DEMO_DOCS, questions, "--modes", "dense", "--per-query").stdout
    missed = sum(1 for q in rows["dense"]["per_query"] if q["rank"] != 1)
    assert f"dense: {missed} of 4 queries not right at rank 1" in text


@pytest.mark.integration
def test_eval_folder_usage_errors(tmp_path: Path) -> None:
    questions = tmp_path / "questions.tsv"
    questions.write_text(QUESTIONS, encoding="utf-8")
    import os

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "pipeline.faces.cli", "eval"]
    neither = subprocess.run(cli, capture_output=True, text=True, env=env, check=False)
    no_queries = subprocess.run(
        [*cli, "--folder", str(DEMO_DOCS)], capture_output=True, text=True, env=env, check=False
    )
    assert neither.returncode == 2 and "give one of --beir DIR or --folder DIR" in neither.stderr
    assert no_queries.returncode == 2 and "--folder needs --queries FILE.tsv" in no_queries.stderr
    (tmp_path / "bad.tsv").write_text("q1\tno stems\n", encoding="utf-8")
    bad = _eval(tmp_path, DEMO_DOCS, tmp_path / "bad.tsv")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "bad.tsv:1: expected" in bad.stderr
    assert not (tmp_path / "ragline" / "eval").exists()  # a bad questions file fails before any indexing


REPO = Path(__file__).resolve().parents[3]
QUESTION_SETS = REPO / "bench" / "questions"


@pytest.mark.unit
def test_places_are_pages_or_headings_and_a_bad_page_is_an_error(tmp_path: Path) -> None:
    questions = tmp_path / "q.tsv"
    questions.write_text("a\tdescale?\taurora-2-manual\tp.2\nb\tvacation?\thandbook\tVacation\nc\tfaq?\tfaq\t-\n")
    a, b, c = load_queries(questions)
    assert (a.where, b.where, c.where) == ("p.2", "Vacation", None)
    page = Chunk("x", "d", "aurora-2-manual.pdf", "t", 0, 0, 1, page_start=1, page_end=2)
    assert at_place(page, "p.2") and at_place(page, "p.1") and not at_place(page, "p.3")
    section = Chunk("x", "d", "handbook.md", "t", 0, 0, 1, heading=("Employee handbook", "Time off", "Vacation"))
    assert at_place(section, "vacation") and at_place(section, "Time off") and not at_place(section, "Travel")
    questions.write_text("a\tdescale?\taurora-2-manual\tp.two\n")
    with pytest.raises(RaglineError, match=r"q.tsv:1: a page place is p.N"):
        load_queries(questions)


@pytest.mark.unit
def test_the_shipped_question_sets_cover_both_folders_with_places() -> None:
    demo = load_queries(QUESTION_SETS / "demo_docs.tsv")
    sample = load_queries(QUESTION_SETS / "sample_docs.tsv")
    assert len(demo) + len(sample) >= 30
    first = demo[0]
    assert first.text == "How often should I descale the Aurora 2 espresso machine?"
    assert (first.stems, first.where) == (frozenset({"aurora-2-manual"}), "p.2")
    named = {p.stem for p in DEMO_DOCS.iterdir()}
    assert all(q.stems <= named for q in demo)
    assert sum(q.where is not None for q in (*demo, *sample)) >= 30


@pytest.mark.integration
def test_eval_folder_scores_the_demo_set_at_file_and_place(tmp_path: Path) -> None:
    result = _eval(tmp_path / "home", DEMO_DOCS, QUESTION_SETS / "demo_docs.tsv", "--modes", "hybrid", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    hybrid = json.loads(result.stdout)["modes"]["hybrid"]
    ranks, places = hybrid["ranks"], hybrid["section_ranks"]
    assert ranks["demo01"] == 1 and places["demo01"] == 1  # the demo question: the descaling page first
    assert hybrid["section_success@1"] == pytest.approx(sum(r == 1 for r in places.values()) / len(places), abs=1e-4)
    assert all(places[q] is None or ranks[q] <= places[q] for q in places)  # a right place is in a right file
