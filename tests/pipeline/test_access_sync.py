"""Access labels at sync time: new files get their readers, a changed rule or permission is a payload update
at the next sync (nothing re-embedded), a moved file takes the readers of its new place; and the CLI's
``--as``, ``access explain`` and ``access key``."""

from __future__ import annotations

import grp
import json
import os
import pwd
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.access import Reader
from pipeline.app import Ragline
from pipeline.config import parse_config
from pipeline.faces.cli import main
from pipeline.faces.identity import Identify
from pipeline.faces.render import render_sync_report
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import make_app

pytestmark = pytest.mark.integration

USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
RULES = [{"path": "hr/**", "allow": ["group:hr"]}, {"path": "*.md", "allow": ["everyone"]}]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "salaries.md").write_text("Salary bands for 2026: engineers earn between 60 and 90 thousand.")
    (docs / "welcome.md").write_text("Welcome aboard. Lunch is served at noon in the canteen.")
    (docs / "notes.txt").write_text("Loose notes about the canteen menu and the salary survey.")
    docs.chmod(0o755)
    return docs


def app_with(index: Path, embedder: SentenceTransformerEmbedder, **access: Any) -> Ragline:
    return make_app(index, embedder, access={"enabled": True, "rules": RULES, **access})


def sources(app: Ragline, reader: Reader, query: str = "salary canteen lunch") -> set[str]:
    return {r.chunk.source for r in app.search(query, top_k=10, reader=reader).results}


def points(app: Ragline) -> dict[str, tuple[list[float], dict[str, Any]]]:
    return {p.id: (p.dense, p.payload) for batch in app.store().export_points() for p in batch}


def test_new_files_get_their_readers_and_rule_changes_rewrite_only_them(
    folder: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    index = tmp_path / "index"
    app = app_with(index, embedder)
    app.ingest(folder)
    hr, anyone = Reader.person("ann", ["hr"]), Reader.person("bob")
    assert sources(app, hr) == {"hr/salaries.md", "welcome.md"}  # notes.txt: no rule, admins alone
    assert sources(app, anyone) == {"welcome.md"}
    assert len(sources(app, Reader(admin=True))) == 3
    before = points(app)
    app.close()

    app = app_with(index, embedder, rules=[{"path": "**", "allow": ["group:staff"]}, *RULES])
    report = app.ingest(folder)
    assert report.chunks_written == 0 and report.access_updated == ("hr/salaries.md", "notes.txt", "welcome.md")
    assert not report.changed and "not embedded" in render_sync_report(report)
    after = points(app)
    assert after.keys() == before.keys() and all(after[i][0] == before[i][0] for i in after)
    assert {p["access"][0] for _, p in after.values()} == {"group:staff"}
    assert sources(app, hr) == set() and len(sources(app, Reader.person("cy", ["staff"]))) == 3
    assert app.ingest(folder).access_updated == ()  # nothing left to change
    app.close()


def test_with_access_off_nothing_is_labelled_and_everyone_reads_everything(
    folder: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    app = make_app(tmp_path / "index", embedder)
    app.ingest(folder)
    assert all("access" not in p for _, p in points(app).values())
    assert len(sources(app, Reader.person("bob"))) == 3
    app.close()
    app = app_with(tmp_path / "index", embedder)  # turned on later: the next sync labels what is there
    assert app.ingest(folder).access_updated == ("hr/salaries.md", "notes.txt", "welcome.md")
    assert sources(app, Reader.person("bob")) == {"welcome.md"}
    app.close()


def test_a_permission_change_takes_effect_at_the_next_sync(
    folder: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    app = app_with(tmp_path / "index", embedder, from_posix=True, rules=[])
    owner, others = Reader.person(USER), Reader.person("someone-else")
    app.ingest(folder)
    assert sources(app, others) == {"hr/salaries.md", "welcome.md", "notes.txt"}  # all 0644
    (folder / "hr").chmod(0o750)  # the folder closes to others
    (folder / "notes.txt").chmod(0o600)
    report = app.ingest(folder)
    assert report.access_updated == ("hr/salaries.md", "notes.txt") and report.chunks_written == 0
    assert sources(app, others) == {"welcome.md"}
    assert sources(app, owner) == {"hr/salaries.md", "welcome.md", "notes.txt"}
    assert sources(app, Reader.person(None, [GROUP])) == {"hr/salaries.md", "welcome.md"}
    app.close()


def test_a_moved_folder_takes_the_readers_of_its_new_place(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    old = tmp_path / "teamA"
    old.mkdir()
    (old / "plan.md").write_text("The migration plan for the billing database.")
    rules = [{"path": f"{tmp_path.as_posix()}/archive/**", "allow": ["group:archivists"]}, *RULES]
    app = app_with(tmp_path / "index", embedder, rules=rules)
    app.ingest(old)
    assert sources(app, Reader.person("bob"), "billing migration") == {"plan.md"}
    (tmp_path / "archive").mkdir()
    old.rename(tmp_path / "archive" / "teamA")
    report = app.ingest(tmp_path / "archive" / "teamA")
    assert report.reused == ("plan.md",) and report.chunks_written == 0
    assert sources(app, Reader.person("bob"), "billing migration") == set()
    assert sources(app, Reader.person(None, ["archivists"]), "billing migration") == {"plan.md"}
    app.close()


# -- the CLI ----------------------------------------------------------------------------------------
def run(*args: str, config: Path) -> Any:
    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def test_cli_as_explain_and_key(folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "ragline.toml"
    rules = "\n".join(f'  {{ path = "{r["path"]}", allow = {json.dumps(r["allow"])} }},' for r in RULES)
    config.write_text(
        f'[index]\npath = "{tmp_path / "index"}"\n[rerank]\nenabled = false\n'
        f'[access]\nenabled = true\nadmins = ["group:it"]\nrules = [\n{rules}\n]\n'
    )
    assert run("ingest", str(folder), config=config).exit_code == 0
    seen = run("search", "salary", "--as", "user:bob", "--json", config=config)
    assert {r["source"] for r in json.loads(seen.stdout)["results"]} == {"welcome.md"}
    seen = run("search", "salary", "--as", "user:ann", "--group", "hr", "--json", config=config)
    assert "hr/salaries.md" in {r["source"] for r in json.loads(seen.stdout)["results"]}
    stats = json.loads(run("stats", "--as", "user:bob", "--json", config=config).stdout)
    assert (stats["documents"], stats["location"]) == (1, "")
    assert run("search", "x", "--as", "bob", config=config).exit_code == 2

    explained = run("access", "explain", str(folder / "hr" / "salaries.md"), config=config)
    assert explained.exit_code == 0
    assert explained.stdout.splitlines()[0] == "docs/hr/salaries.md: group:hr"
    assert 'rule 1 (path "hr/**") allows group:hr' in explained.stdout and "mode 0644" in explained.stdout
    lonely = json.loads(run("access", "explain", str(folder / "notes.txt"), "--json", config=config).stdout)
    assert lonely["readers"] == [] and lonely["rule"] is None and lonely["indexed"] == []
    assert any("deny by default" in r for r in lonely["reasons"])
    assert run("access", "explain", str(folder / "missing.md"), config=config).exit_code == 1

    made = CliRunner().invoke(main, ["access", "key", "alice", "--principal", "user:alice", "--principal", "group:hr"])
    assert made.exit_code == 0
    key = made.stderr.split(": ")[-1].strip()
    entry = tomllib.loads(made.stdout)["access"]["keys"][0]
    assert key not in made.stdout and entry["name"] == "alice"
    access = parse_config({"access": {"keys": [entry], "admins": ["group:it"]}}).access
    reader = Identify(access, parse_config({}).server)(key)
    assert reader.visible == ("everyone", "group:hr", "user:alice") and reader.name == "alice"
    bad = CliRunner().invoke(main, ["access", "key", "x", "--principal", "admin"])
    assert bad.exit_code == 1 and "not a principal" in bad.stderr


def test_serve_refuses_access_control_that_identifies_no_one(tmp_path: Path) -> None:
    config = tmp_path / "ragline.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "index"}"\n[access]\nenabled = true\n')
    result = run("serve", "--port", "1", config=config)
    assert result.exit_code == 1 and "no caller can be identified" in result.stderr
