"""``ragline adapt`` plumbing with a tiny model built from a config (never quality): pairs are mined as
specified, the loss falls, the budget stops it, the guard keeps the base model, searches answer during it,
and a killed run leaves the index as it was."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.app import Ragline
from pipeline.config import load_config
from pipeline.lifecycle import swap_folder
from pipeline.retrieval import HybridRetriever
from pipeline.stages.chunking import indexed_text
from pipeline.training.adapt import AdaptSettings, adapt, mined_negatives
from pipeline.training.pairs import MAX_OVERLAP, PairKind, mine_pairs, overlap
from pipeline.types import Chunk
from tests.pipeline.training.test_training import _falls as falls
from tests.pipeline.training.test_training import ragline

REPO = Path(__file__).resolve().parents[3]
TINY = "[chunking]\nchunk_tokens = 100\noverlap_tokens = 16\n[rerank]\nenabled = false\n"


BOTH: tuple[PairKind, ...] = ("heading", "sentence")
FAST = ("--epochs", "3", "--batch-size", "8", "--lr", "5e-5", "--max-length", "128", "--json")


def _chunk(document: str, ordinal: int, text: str, heading: tuple[str, ...] = (), title: str = "") -> Chunk:
    return Chunk(
        f"{document}-{ordinal}", document, f"{document}.md", text, ordinal, 0, len(text), None, None, heading,
        {"title": title} if title else {},
    )  # fmt: skip


def test_pairs_drop_copies_shared_questions_and_cap_each_document() -> None:
    prose = "The pump draws water from the tank through a filter that must be rinsed every month by hand."
    chunks = [
        _chunk("a", 0, "Rinse it under the tap. " + prose, ("Cleaning the filter",), "Pump manual"),
        _chunk("b", 0, "Other words entirely fill this window about a garden hose and its many fittings.", ("Notes",)),
        _chunk("c", 0, "A window that repeats its heading: notes on notes. " + prose, ("Notes",)),
        *(_chunk("d", i, f"Sentence number {i} says something long enough to be asked about here. " + prose)
          for i in range(12)),
    ]  # fmt: skip
    pairs = mine_pairs(((c, c.text) for c in chunks), per_document=3)
    assert all(overlap(p.query, p.positive) <= MAX_OVERLAP for p in pairs)
    assert all(p.query.lower() != "notes" for p in pairs)  # asked of two documents: dropped
    assert sum(p.document_id == "d" for p in pairs) == 3
    heading = next(p for p in pairs if p.query == "Cleaning the filter")
    assert heading.kind == "heading" and heading.positive == chunks[0].text
    sentences = [p for p in pairs if p.kind == "sentence"]
    assert sentences and all(p.query not in p.positive for p in sentences)
    assert len({p.positive for p in pairs}) == len(pairs)
    # A corpus entry's title, longer than a heading, names its abstract.
    title = "Reduced expression of the receptor in adipose tissue of obese mice lowers fasting insulin levels"
    abstract = _chunk("e", 0, "We measured glucose tolerance in two cohorts of animals fed for twelve weeks. " * 3)
    entry = Chunk(**{**abstract.__dict__, "metadata": {"title": title}})
    (paired,) = [p for p in mine_pairs([(entry, f"{title}\n{entry.text}")]) if p.kind == "heading"]
    assert paired.query == title and paired.positive == entry.text


@pytest.fixture(scope="module")
def sections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's own docs, one file per section: some fifty documents with headings and prose."""
    folder = tmp_path_factory.mktemp("sections")
    for doc in sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]:
        for n, part in enumerate(re.split(r"\n(?=##+ )", doc.read_text(encoding="utf-8"))):
            if len(part.split()) > 60:
                (folder / f"{doc.stem}-{n:02d}.md").write_text(part, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def one_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM cut down to its first layer: small enough to train in seconds, and a start that validation can
    be beaten from (a randomly initialised model only overfits a few dozen pairs)."""
    from sentence_transformers import SentenceTransformer

    from pipeline.models.weights import packaged_minilm_path

    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    bert = model[0].auto_model
    bert.encoder.layer = bert.encoder.layer[:1]
    bert.config.num_hidden_layers = 1
    folder = tmp_path_factory.mktemp("one-layer") / "st"
    model.save(str(folder))
    return folder


@pytest.fixture
def tiny(tmp_path: Path, one_layer: Path) -> dict[str, str]:
    config = tmp_path / "tiny.toml"
    config.write_text(f'[embedding]\nmodel = "{one_layer}"\n{TINY}')
    return {"RAGLINE_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def _app(index: Path, env: dict[str, str], model: str | None = None) -> Ragline:
    config = load_config(env["RAGLINE_CONFIG"])
    if model:
        config = config.model_copy(update={"embedding": config.embedding.model_copy(update={"model": model})})
    return Ragline(config.model_copy(update={"index": config.index.model_copy(update={"path": str(index)})}))


def _search(index: Path, env: dict[str, str], query: str = "hybrid search") -> list[str]:
    result = ragline("--index", str(index), "search", query, "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return [r["chunk_id"] for r in json.loads(result.stdout)["results"]]


def test_adapt_trains_swaps_and_search_follows(
    sections: Path, tiny: dict[str, str], one_layer: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(sections), env=tiny).exit_code == 0
    base = json.loads(ragline("--index", str(index), "stats", "--json", env=tiny).stdout)["model"]
    out = tmp_path / "adapted"
    # A one-layer model's gain on a few dozen pairs is not significant: any gain is kept here (plumbing).
    both = ("--pairs", "heading", "--pairs", "sentence", "--hard-negatives", "1", "--max-p", "1")
    result = ragline("--index", str(index), "adapt", "--out", str(out), "--budget-minutes", "5", *both, *FAST, env=tiny)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["adapted"] and report["model"] == str(out) and report["base_model"] == base, report["notes"]
    assert any("validated on pseudo-questions alone" in note for note in report["notes"])  # no --queries
    assert report["pairs"]["heading"] > 0 and report["pairs"]["sentence"] > 0 and falls(report["losses"])
    assert max(c["pseudo_ndcg@10"] for c in report["validation"]) > report["validation"][0]["pseudo_ndcg@10"]
    # Each kind of pair is scored apart, and the kept checkpoint is worse on none of them.
    kept = next(c for c in report["validation"] if c["score"] == max(c["score"] for c in report["validation"]))
    assert all(kept[k] >= report["validation"][0][k] for k in ("heading_ndcg@10", "sentence_ndcg@10"))
    assert report["points"] == json.loads(ragline("--index", str(index), "stats", "--json", env=tiny).stdout)["chunks"]
    assert json.loads((out / "ragline_adapt.json").read_text())["train_pairs"] == report["train_pairs"]
    assert (out / "README.md").exists() and not index.with_name("index.reindex").exists()
    # Trained on 128 tokens, but saved with the base model's input length, which every later ingest truncates to.
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(out)).max_seq_length == SentenceTransformer(str(one_layer)).max_seq_length == 256
    # A new process with the same config searches with the adapted model; the index says so.
    assert json.loads(ragline("--index", str(index), "stats", "--json", env=tiny).stdout)["model"] == str(out)
    assert _search(index, tiny)
    # An evaluation of the adapted index searches it with the adapted model too.
    questions = tmp_path / "questions.tsv"
    questions.write_text("q1\thow does hybrid search fuse its scores\tretrieval-01\n", encoding="utf-8")
    scored = ragline(
        "eval",
        "--folder",
        str(sections),
        "--queries",
        str(questions),
        "--eval-index",
        str(index),
        "--modes",
        "dense",
        "--json",
        env=tiny,
    )
    assert scored.exit_code == 0, scored.stderr
    assert json.loads(scored.stdout)["index"]["model"] == str(out)
    # A second adapt starts from the base model again, not from the adapted one.
    again = ragline("--index", str(index), "adapt", "--budget-minutes", "0.05", *both, *FAST, env=tiny)
    assert again.exit_code == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["base_model"] == base and second["steps"] >= 1
    assert any("time budget was spent" in note for note in second["notes"])


def test_the_guard_keeps_the_base_model(sections: Path, tiny: dict[str, str], tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(sections), env=tiny).exit_code == 0
    before = _search(index, tiny)
    base = json.loads(ragline("--index", str(index), "stats", "--json", env=tiny).stdout)["model"]
    # Too few heading pairs for the default batch: one line saying so, and the index as it was.
    short = ragline("--index", str(index), "adapt", "--budget-minutes", "1", env=tiny)
    assert short.exit_code == 1 and "too few heading pairs to adapt on" in short.stderr
    assert len(short.stderr.strip().splitlines()) == 1 and _search(index, tiny) == before
    assert not (tmp_path / "index.models").exists()  # and no empty model folder made for nothing
    args = ("--pairs", "heading", "--pairs", "sentence", "--batch-size", "8", "--lr", "1e-12", "--max-length", "64")
    args = (*args, "--json")
    result = ragline(
        "--index", str(index), "adapt", "--out", str(tmp_path / "m"), "--budget-minutes", "1", *args, env=tiny
    )
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and not report["adapted"] and report["model"] == base
    assert any("did not beat the base model" in note for note in report["notes"])
    assert not (index / "adapted.json").exists() and _search(index, tiny) == before
    assert not (tmp_path / "m").exists()  # no copy of the base model is left behind


def test_negatives_never_come_from_the_pairs_own_document(sections: Path, tiny: dict[str, str], tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(sections), env=tiny).exit_code == 0
    with _app(index, tiny) as app:
        chunks = [c for page in app.store().all_chunks() for c in page]
        texts = {c.id: indexed_text(c, app.embedder.tokens, app.embedder.max_tokens) for c in chunks}
        pairs = mine_pairs((c, texts[c.id]) for c in chunks)[:40]
        retriever = HybridRetriever(app.store(), app.embedder, app.retrieval_config, cache_size=0)
        found = mined_negatives(pairs, {c.id: c for c in chunks}, texts, retriever, 2, False)
    assert sum(len(v) for v in found.values()) > 40
    for i, pair in enumerate(pairs):
        own = {c.text for c in chunks if c.document_id == pair.document_id}
        own |= {texts[c.id] for c in chunks if c.document_id == pair.document_id}
        assert not own & set(found[i]) and pair.positive not in found[i]


def test_searches_answer_during_adapt(sections: Path, tiny: dict[str, str], tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(sections), env=tiny).exit_code == 0
    with _app(index, tiny) as app:
        settings = AdaptSettings(
            budget_minutes=5,
            epochs=3,
            batch_size=8,
            learning_rate=5e-5,
            max_seq_length=128,
            kinds=BOTH,
            hard_negatives=1,
            max_p=1.0,
        )
        outcome: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: outcome.update(report=adapt(app, settings, tmp_path / "m")))
        worker.start()
        answered = 0
        while worker.is_alive():
            assert app.search("hybrid search", rerank=False).results
            answered += 1
            time.sleep(0.05)
        worker.join()
        assert answered > 5 and outcome["report"].adapted, (outcome["report"].notes, outcome["report"].validation)
        assert app.embedder.name == str(tmp_path / "m") and app.search("hybrid search", rerank=False).results


def test_a_killed_adapt_leaves_the_index_as_it_was(sections: Path, tiny: dict[str, str], tmp_path: Path) -> None:
    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(sections), env=tiny).exit_code == 0
    before = _search(index, tiny)
    out = tmp_path / "m"
    command = [
        sys.executable,
        "-m",
        "pipeline.faces.cli",
        "--index",
        str(index),
        "adapt",
        "--out",
        str(out),
        *FAST,
        "--pairs",
        "heading",
        "--pairs",
        "sentence",
    ]
    child = subprocess.Popen(command, env={**os.environ, **tiny}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while child.poll() is None and not (out / "config.json").exists():  # the first checkpoint: training is on
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert _search(index, tiny) == before and not (index / "adapted.json").exists()


def test_the_swap_exchanges_whole_folders(tmp_path: Path) -> None:
    old, new = tmp_path / "index", tmp_path / "index.reindex"
    old.mkdir()
    new.mkdir()
    (old / "meta.json").write_text("old")
    (new / "meta.json").write_text("new")
    swap_folder(old, new)
    assert (old / "meta.json").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_a_swap_waits_for_the_searches_running(sections: Path, tiny: dict[str, str], tmp_path: Path) -> None:
    """A shard closed under a running query fails it; the swap waits for running searches, and later ones wait
    for the swap."""
    from pipeline import lifecycle

    index = tmp_path / "index"
    assert ragline("--index", str(index), "ingest", str(sections), env=tiny).exit_code == 0
    with _app(index, tiny) as app:
        errors: list[BaseException] = []
        answered: list[int] = []
        stop = threading.Event()

        def keep_searching() -> None:
            while not stop.is_set():
                try:
                    answered.append(len(app.search("hybrid search", rerank=False).results))
                except BaseException as exc:  # noqa: BLE001 - any failure of a search fails the test
                    errors.append(exc)
                    return

        searchers = [threading.Thread(target=keep_searching) for _ in range(3)]
        for thread in searchers:
            thread.start()
        for _ in range(2):
            fresh, _ = lifecycle.reembedded_copy(app.store(), app.index_path, app.embedder)
            app.swap_in(fresh, app.embedder)
        stop.set()
        for thread in searchers:
            thread.join()
    assert not errors and len(answered) > 10 and min(answered) > 0
