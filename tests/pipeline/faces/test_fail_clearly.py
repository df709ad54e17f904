"""Fail clearly: the real ``ragline`` command, in a subprocess, against things that go wrong.

A Qdrant server that is down, a model that cannot be loaded, a disk that fills while
writing, a typo in the config file: each is one line on stderr that says what failed
and where, exit code 1, and the index on disk as it was before.

"As it was before" is checked byte for byte: opening and closing an index leaves
the content of its files as it was (only ``lock`` holds the pid), so a checksum of
the folder is compared, and ``stats`` as well. The one exception is a write that the
engine accepted into its write-ahead log before a later write failed (the file size
limit case): those points are durable and come back on the next open, so there the
test checks that every old document is untouched and complete instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.faces.cli import EXIT_ERROR
from pipeline.stores.edge import EdgeStore
from tests.conftest import DEMO_DOCS, REPO, SAMPLE_DOCS

pytestmark = pytest.mark.integration

QUERY = "how often should I descale the machine"


def ragline(*args: str | Path, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; with ``limit_bytes``, under a file size limit (``ulimit -f``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    env["HF_HUB_OFFLINE"] = "1"

    def file_size_limit() -> None:
        assert limit_bytes is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "pipeline.faces.cli", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
        preexec_fn=file_size_limit if limit_bytes is not None else None,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *names: str | Path) -> str:
    """Exit 1 and exactly one stderr line, naming each of ``names``."""
    assert proc.returncode == EXIT_ERROR, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for name in names:
        assert str(name) in lines[0]
    return lines[0]


def digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "lock"):
        sha.update(str(file.relative_to(folder)).encode() + b"\0")
        sha.update(file.read_bytes())
    return sha.hexdigest()


def dense_results(index: Path, root: Path) -> list[tuple[str, float]]:
    """Dense search over the documents of ``root`` only: independent of what else the index holds."""
    where = f"root={root.resolve().as_uri()}"
    proc = ragline("--index", index, "search", QUERY, "--json", "--mode", "dense", "--no-rerank", "--where", where)
    assert proc.returncode == 0, proc.stderr
    return [(r["chunk_id"], round(r["scores"]["dense"], 5)) for r in json.loads(proc.stdout)["results"]]


def documents(index: Path) -> dict[str, Any]:
    with EdgeStore.open(index) as store:
        return {d.document_id: d for d in store.documents().values()}


@dataclass(frozen=True)
class Built:
    index: Path
    docs: Path
    stats: str
    results: list[tuple[str, float]]
    digest: str

    def assert_unchanged(self) -> None:
        assert digest(self.index) == self.digest
        assert ragline("--index", self.index, "stats", "--json").stdout == self.stats


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("fail-clearly")
    docs, index = base / "docs", base / "index"
    shutil.copytree(DEMO_DOCS, docs)
    assert ragline("--index", index, "ingest", docs).returncode == 0
    stats = ragline("--index", index, "stats", "--json")
    assert json.loads(stats.stdout)["documents"] == 5
    return Built(index, docs, stats.stdout, dense_results(index, docs), digest(index))


@pytest.fixture(scope="module")
def more_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """New files for an ingest that has to write: four files, a dozen or so chunks."""
    folder = tmp_path_factory.mktemp("more-docs")
    words = "boiler pump valve scale water grinder burr espresso crema pressure filter basket steam wand".split()
    for n in range(4):
        paragraphs = [" ".join(words[(n + i * 7 + j) % len(words)] for j in range(90)) for i in range(6)]
        (folder / f"note-{n}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    return folder


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("command", "url", "says"),
    [
        ("ingest", "closed", "cannot look up collection"),
        ("search", "closed", "cannot look up collection"),
        ("ingest", "http://127.0.0.1:port", "is not a Qdrant URL"),
    ],
)
def test_qdrant_server_down_or_url_malformed(built: Built, command: str, url: str, says: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}" if url == "closed" else url
    target = built.docs if command == "ingest" else QUERY
    proc = ragline("--index", built.index, "--qdrant-url", url, command, str(target))
    assert says in one_line_error(proc, url)
    built.assert_unchanged()


@pytest.mark.parametrize(
    ("setting", "folder", "command", "says"),
    [
        ("embedding", "missing", "search", "embedder model folder"),
        ("embedding", "junk", "ingest", "config.json"),
        ("rerank", "missing", "search", "reranker model folder"),
    ],
)
def test_model_cannot_be_loaded(
    built: Built, tmp_path: Path, setting: str, folder: str, command: str, says: str
) -> None:
    model = tmp_path / "no-such-model"
    if folder == "junk":
        model = tmp_path / "junk-model"
        model.mkdir()
        (model / "config.json").write_text("{not json", encoding="utf-8")
    config = tmp_path / "ragline.toml"
    # rerank.on_failure = "stop": by default search goes on without reranking, with a notice.
    extra = 'on_failure = "stop"\n' if setting == "rerank" else ""
    config.write_text(f'[{setting}]\nmodel = "{model}"\n{extra}', encoding="utf-8")
    target = built.docs if command == "ingest" else QUERY
    proc = ragline("--config", config, "--index", built.index, command, str(target))
    assert says in one_line_error(proc, model)
    built.assert_unchanged()


def test_file_size_limit_while_writing(built: Built, more_docs: Path, tmp_path: Path) -> None:
    """Under ``ulimit -f`` the engine's next file write fails (EFBIG; the CLI ignores SIGXFSZ, which
    would kill it without a word). Qdrant Edge writes points through a memory-mapped write-ahead log,
    which the limit does not stop, so the failure comes at the flush that persists the segment."""
    index = tmp_path / "index"
    shutil.copytree(built.index, index)
    old = documents(index)

    proc = ragline("--index", index, "ingest", more_docs, limit_bytes=1024)
    assert "file size limit" in one_line_error(proc, "cannot write the index at", index)

    after = documents(index)
    assert {d: after[d] for d in old} == old  # every old document still there, unchanged and complete
    assert all(state.complete for state in after.values())  # nothing half-written
    rerun = ragline("--index", index, "ingest", more_docs, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(ragline("--index", index, "stats", "--json").stdout)["documents"] == 5 + 4


def test_disk_nearly_full_refuses_before_writing(built: Built, more_docs: Path, tmp_path: Path) -> None:
    """On a full disk a write into the engine's memory maps is a SIGBUS that kills the process with no
    message, so writes stop while the disk has less than index.min_free_mb free (checked before the
    model loads, and again before each batch); a threshold no disk meets stands in for a full disk."""
    config = tmp_path / "ragline.toml"
    config.write_text("[index]\nmin_free_mb = 1e12\n", encoding="utf-8")
    proc = ragline("--config", config, "--index", built.index, "ingest", more_docs)
    line = one_line_error(proc, "cannot write the index at", built.index.resolve())
    assert "MB free" in line and "index.min_free_mb" in line
    built.assert_unchanged()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[retrieval]\ncandidats = 100\n", "retrieval.candidats: unknown setting"),
        ("[retrival]\ntop_k = 5\n", "retrival: unknown setting"),
        ('[retrieval]\ntop_k = "ten"\n', "retrieval.top_k: Input should be a valid integer"),
        ("[retrieval]\ntop_k = 10\nfusion = rrf\n", "not valid TOML: Invalid value (at line 3"),
    ],
)
def test_config_typo(built: Built, tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "ragline.toml"
    config.write_text(text, encoding="utf-8")
    proc = ragline("--config", config, "--index", built.index, "ingest", built.docs)
    assert says in one_line_error(proc, config)
    built.assert_unchanged()


def test_index_answers_as_before(built: Built) -> None:
    """After all of the above, the same search gives the same chunks with the same scores."""
    built.assert_unchanged()
    assert dense_results(built.index, built.docs) == built.results


@pytest.mark.parametrize("command", ["search", "ask"])
def test_a_reranker_that_cannot_load_is_one_notice_on_stderr(built: Built, tmp_path: Path, command: str) -> None:
    """stdout stays the results (a script may read them); the notice says once why they are not reranked."""
    config = tmp_path / "ragline.toml"
    config.write_text('[rerank]\nmodel = "cross-encoder/not-here"\n', encoding="utf-8")
    proc = ragline("--config", config, "--index", built.index, command, QUERY)
    assert proc.returncode == 0, proc.stderr
    assert "notice" not in proc.stdout and "not reranked" in proc.stdout
    notices = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(notices) == 1 and notices[0].startswith("notice: reranker model 'cross-encoder/not-here'")


def test_what_a_command_is_given_fails_in_one_line_with_exit_1(built: Built, tmp_path: Path) -> None:
    """A missing folder, an index that is a file, a config that is a folder or not text: one line, exit 1
    (they were click's three-line usage error with exit 2, and a missing config one line with exit 1)."""
    missing = tmp_path / "no-such-folder"
    assert "no such file or folder" in one_line_error(ragline("--index", built.index, "ingest", missing), missing)
    a_file = tmp_path / "index-file"
    a_file.write_text("not an index", encoding="utf-8")
    assert "is a file, not an index folder" in one_line_error(ragline("--index", a_file, "stats"), a_file)
    assert "is a file, not an index folder" in one_line_error(ragline("--index", a_file, "ingest", built.docs))
    folder_config = tmp_path / "conf.d"
    folder_config.mkdir()
    says = one_line_error(ragline("--config", folder_config, "--index", built.index, "stats"), folder_config)
    assert "is a folder, not a TOML file" in says
    binary = tmp_path / "ragline.toml"
    binary.write_bytes(b"\xff\xfe\x00index")
    assert "not UTF-8" in one_line_error(ragline("--config", binary, "--index", built.index, "stats"), binary)
    absent = tmp_path / "absent.toml"
    assert "not found" in one_line_error(ragline("--config", absent, "--index", built.index, "stats"), absent)
    built.assert_unchanged()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["search"], "Missing argument 'QUERY'"),
        (["search", QUERY, "--top-k", "0"], "Invalid value for '--top-k'"),
        (["--no-such-option", "stats"], "No such option '--no-such-option'"),
        (["serch", QUERY], "No such command 'serch'"),
    ],
)
def test_a_wrong_command_line_is_one_line_with_exit_2(built: Built, args: list[str], says: str) -> None:
    proc = ragline("--index", built.index, *args)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and says in lines[0] and "(see ragline" in lines[0]


def test_parser_workers_log_at_the_level_the_cli_sets(tmp_path: Path) -> None:
    """pypdf warns once per odd font in each worker process; the CLI's level reaches the workers."""
    if not (SAMPLE_DOCS / "senate-expenditures.pdf").is_file():
        pytest.skip(f"sample documents not found at {SAMPLE_DOCS}")
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SAMPLE_DOCS / "senate-expenditures.pdf", docs)
    quiet = ragline("--index", tmp_path / "quiet", "ingest", docs)
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = ragline("--log-level", "warning", "--index", tmp_path / "loud", "ingest", docs)
    warned = [line for line in loud.stderr.splitlines() if line.startswith("WARNING pypdf")]
    assert loud.returncode == 0 and len(warned) >= 2, loud.stderr
    assert "fontTools is required" in warned[0]


def test_sources_remove_and_paths_from_the_shell(tmp_path: Path) -> None:
    for team in ("teamA", "teamB"):
        (tmp_path / team).mkdir()
        (tmp_path / team / "notes.md").write_text(f"# Notes\n\nThe {team} launch code is in here.\n", "utf-8")
        assert ragline("--index", tmp_path / "index", "ingest", tmp_path / team).returncode == 0
    listed = json.loads(ragline("--index", tmp_path / "index", "sources", "--json").stdout)["sources"]
    assert [(s["label"], s["documents"]) for s in listed] == [("teamA", 1), ("teamB", 1)]
    text = ragline("--index", tmp_path / "index", "sources").stdout
    assert f"teamB: {(tmp_path / 'teamB').resolve()}, 1 documents" in text
    found = ragline("--index", tmp_path / "index", "search", "launch code", "--path", tmp_path / "teamB", "--json")
    assert [r["path"] for r in json.loads(found.stdout)["results"]] == ["teamB/notes.md"]
    removed = ragline("--index", tmp_path / "index", "remove", "teamA", "--json")
    assert json.loads(removed.stdout) == {"removed": ["teamA/notes.md"]}
    stats = json.loads(ragline("--index", tmp_path / "index", "stats", "--json").stdout)
    assert stats["documents"] == 1 and [r["label"] for r in stats["roots"]] == ["teamB"]
    assert "names no folder the index holds" in one_line_error(
        ragline("--index", tmp_path / "index", "remove", "teamA")
    )
