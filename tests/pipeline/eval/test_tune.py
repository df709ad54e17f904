"""``ragline tune`` (issue 14, item 5): pseudo-questions drawn from an index's own chunks, and the settings
it saves, which search then uses unless the config or ``--untuned`` says otherwise."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.app import Ragline
from pipeline.config import TUNABLE, AppConfig, parse_config
from pipeline.eval.tune import MIN_CHUNKS, settings_grid, tune
from pipeline.faces.cli import main

PROSE = "The pump pushes hot water through the coffee puck at nine bar of pressure for thirty seconds."


@pytest.mark.unit
def test_the_grid_starts_with_the_current_settings_and_holds_only_tunable_keys() -> None:
    from pipeline.config import RetrievalConfig

    base = RetrievalConfig()
    grid = settings_grid(base)
    assert grid[0] == {**{k: getattr(base, k) for k in TUNABLE}, "fusion": base.fusion.value}
    assert all(set(s) == set(TUNABLE) for s in grid)
    assert len({json.dumps(s, sort_keys=True) for s in grid}) == len(grid)


SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe"]
WORDS = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES[:3]})[:300]


def _folder(root: Path, files: int, rng: random.Random) -> Path:
    """Files of several windows each, with headed sections in words the tiny model's tokenizer splits."""
    folder = root / "docs"
    folder.mkdir()
    for f in range(files):
        sections = []
        for _ in range(3):
            body = ". ".join("The " + " ".join(rng.choices(WORDS, k=12)) + " works well" for _ in range(6))
            title = " ".join(rng.choices(WORDS, k=3)).capitalize()
            sections.append(f"# {title}\n\n{body}.")
        (folder / f"file{f:03d}.md").write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tuned_app(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_folder: Path) -> Iterator[Ragline]:
    root = tmp_path_factory.mktemp("tune")
    folder = _folder(root, 120, random.Random(5))
    app = Ragline(_config(root / "index", tiny_embedder_folder))
    app.ingest(folder)
    yield app
    app.close()


def _config(index: Path, model: Path, **retrieval: object) -> AppConfig:
    return parse_config(
        {
            "index": {"path": str(index)},
            "embedding": {"model": str(model)},
            "chunking": {"chunk_tokens": 60, "overlap_tokens": 8},
            "rerank": {"enabled": False},
            **({"retrieval": retrieval} if retrieval else {}),
        }
    )


@pytest.mark.integration
def test_tune_saves_what_it_chose_and_search_uses_it(tuned_app: Ragline) -> None:
    assert tuned_app.store().count() >= MIN_CHUNKS
    report = tune(tuned_app, count=60)
    saved = tuned_app.store().tuning()
    assert saved == report.as_dict()
    assert report.questions["heading"] > 0 and report.questions["sentence"] > 0
    assert report.settings_tried == len(settings_grid(tuned_app.config.retrieval))
    assert report.best["mean"] >= report.default["mean"]  # the current settings are in the grid
    # Whatever it kept is what search now ranks with; force a choice to see it applied.
    tuned_app.store().save_tuning({**saved, "settings": {"dense_weight": 0.35, "fusion": "rrf"}})
    tuned_app.forget_retriever()
    effective = tuned_app.retrieval_config
    assert (effective.dense_weight, effective.fusion.value) == (0.35, "rrf")
    assert tuned_app.retriever.config == effective


@pytest.mark.integration
def test_the_config_and_untuned_override_a_saved_tuning(tuned_app: Ragline, tiny_embedder_folder: Path) -> None:
    tuned_app.store().save_tuning({"settings": {"dense_weight": 0.35, "candidates": 100}})
    index = Path(tuned_app.config.index.path)
    set_weight = Ragline(_config(index, tiny_embedder_folder, dense_weight=0.6), tuned_app.embedder)
    untuned = Ragline(_config(index, tiny_embedder_folder, tuned=False), tuned_app.embedder)
    tuned_app.close()  # one process owns an embedded index at a time
    try:
        config = set_weight.retrieval_config
        assert (config.dense_weight, config.candidates) == (0.6, 100)  # the config's own value wins
        set_weight.close()
        assert untuned.retrieval_config == untuned.config.retrieval
    finally:
        untuned.close()


@pytest.mark.integration
def test_the_cli_reports_resets_and_refuses_a_tiny_index(tuned_app: Ragline, tmp_path: Path) -> None:
    tuned_app.close()
    index = tuned_app.config.index.path
    runner = CliRunner()
    model = tuned_app.config.embedding.model
    config = tmp_path / "c.toml"
    config.write_text(f'[embedding]\nmodel = "{model}"\n[chunking]\nchunk_tokens = 60\noverlap_tokens = 8\n')
    done = runner.invoke(main, ["--config", str(config), "--index", index, "tune", "--questions", "40", "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["questions"]["heading"] + data["questions"]["sentence"] <= 40 and "gain" in data
    reset = runner.invoke(main, ["--config", str(config), "--index", index, "tune", "--reset"])
    assert reset.exit_code == 0 and "forgotten" in reset.output
    small = tmp_path / "small"
    (small / "docs").mkdir(parents=True)
    (small / "docs" / "a.txt").write_text(PROSE * 3)
    ingest = ["--config", str(config), "--index", str(small / "i"), "ingest", str(small / "docs")]
    assert runner.invoke(main, ingest).exit_code == 0
    refused = runner.invoke(main, ["--config", str(config), "--index", str(small / "i"), "tune"])
    assert refused.exit_code == 1 and "too small to tune" in refused.output


@pytest.mark.integration
def test_eval_tune_measures_untuned_and_tuned_side_by_side(tuned_app: Ragline, tmp_path: Path) -> None:
    from pipeline.eval.folder import evaluate_folder

    folder = Path(tuned_app.config.index.path).parent / "docs"
    lines = []
    for i in range(0, 120, 12):  # each file's first heading, asked
        heading = (folder / f"file{i:03d}.md").read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        lines.append(f"q{i}\t{heading}\tfile{i:03d}")
    queries = tmp_path / "q.tsv"
    queries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = evaluate_folder(folder, queries, tuned_app.config, ("bm25", "hybrid"), tmp_path / "index", tune=True)
    assert set(report.modes) == {"bm25", "hybrid", "bm25@tuned", "hybrid@tuned"}
    assert report.tuning is not None and report.tuning["settings_tried"] > 1
    assert set(report.ranks["hybrid@tuned"]) == {f"q{i}" for i in range(0, 120, 12)}
