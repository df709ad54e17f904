"""BM25 stays on one scale as an index grows and shrinks: an index built by many syncs ranks exactly as one
clean build of the same files (issue 14, item 4).

Each point's BM25 weights are written once and never updated. With the collection's average chunk length as
the length pivot, ten long files and then a thousand short ones would leave the first ten weighed against a
far longer average than the rest; the fixed pivot (``bm25.avg_len``) keeps every point comparable.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from pipeline.app import Ragline
from pipeline.config import parse_config
from pipeline.stores.edge import EdgeStore

pytestmark = pytest.mark.integration

VOCABULARY = [f"term{i}" for i in range(400)]


def _write_files(folder: Path, names: range, words: tuple[int, int], rng: random.Random) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in names:
        # A Zipf-like draw, so that term frequencies and document frequencies vary as in real text.
        text = " ".join(rng.choices(VOCABULARY, weights=[1 / (r + 1) for r in range(400)], k=rng.randint(*words)))
        (folder / f"file{i:04d}.txt").write_text(text + "\n", encoding="utf-8")


def _app(index: Path, model: Path) -> Ragline:
    small = {"chunk_tokens": 120, "overlap_tokens": 0}  # the tiny model reads 128 tokens
    return Ragline(
        parse_config(
            {
                "index": {"path": str(index)},
                "embedding": {"model": str(model)},
                "chunking": small,
                "rerank": {"enabled": False},
            }
        )
    )


def _top10(app: Ragline, queries: list[str]) -> list[list[tuple[str, float]]]:
    return [
        [(r.chunk.id, round(r.bm25 or 0.0, 4)) for r in app.search(q, top_k=10, mode="bm25", rerank=False).results]
        for q in queries
    ]


def test_bm25_after_growth_and_deletes_ranks_as_one_clean_build(tmp_path: Path, tiny_embedder_folder: Path) -> None:
    rng = random.Random(14)
    folder = tmp_path / "docs"
    _write_files(folder, range(10), (300, 400), rng)  # ten long files first (several chunks each)
    queries = [" ".join(rng.sample(VOCABULARY[:120], 3)) for _ in range(50)]

    with _app(tmp_path / "grown", tiny_embedder_folder) as grown:
        grown.ingest(folder)
        first_average = _average_length(grown)
        _write_files(folder, range(10, 1010), (5, 40), rng)  # then a thousand short ones
        grown.ingest(folder)
        for i in rng.sample(range(1010), 505):  # then half of all of them go
            (folder / f"file{i:04d}.txt").unlink()
        grown.ingest(folder)
        final_average = _average_length(grown)
        incremental = _top10(grown, queries)

    clean_folder = tmp_path / "clean-docs"
    shutil.copytree(folder, clean_folder)
    shutil.rmtree(folder)
    clean_folder.rename(folder)  # the same root, so the same document and chunk ids
    with _app(tmp_path / "clean", tiny_embedder_folder) as clean:
        clean.ingest(folder)
        rebuilt = _top10(clean, queries)

    assert first_average > 1.5 * final_average  # the collection's average moved a long way
    assert all(len(ranked) == 10 for ranked in rebuilt)
    assert [_settled(r) for r in incremental] == [_settled(r) for r in rebuilt]


def _settled(ranked: list[tuple[str, float]]) -> tuple[list[float], list[str]]:
    """Every score, and the ids above the last score: points tied exactly at the cut are cut in the engine's
    storage order, which a rebuild changes (ties above the cut are ordered by id)."""
    return [score for _, score in ranked], [cid for cid, score in ranked if score > ranked[-1][1]]


def _average_length(app: Ragline) -> float:
    documents = app.store().documents().values()
    return sum(d.n_tokens for d in documents) / sum(d.points for d in documents)


def test_the_pivot_is_saved_with_the_index_and_a_new_one_is_refused(tmp_path: Path, tiny_embedder_folder: Path) -> None:
    folder = tmp_path / "docs"
    _write_files(folder, range(3), (20, 30), random.Random(1))
    with _app(tmp_path / "index", tiny_embedder_folder) as app:
        app.ingest(folder)
    with EdgeStore.open(tmp_path / "index") as store:
        assert store.meta.avg_len == 100.0
    other = parse_config(
        {
            "index": {"path": str(tmp_path / "index")},
            "embedding": {"model": str(tiny_embedder_folder)},
            "chunking": {"chunk_tokens": 120, "overlap_tokens": 0},
            "bm25": {"avg_len": 60},
        }
    )
    with Ragline(other) as app, pytest.raises(Exception, match="avg_len=100.0.*avg_len=60"):
        app.ingest(folder)
