"""The README's Python snippet runs exactly as written, as a plain script and with ``python -m``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.models.embedder import SentenceTransformerEmbedder

REPO = Path(__file__).resolve().parents[1]


def readme_snippet() -> str:
    """The first Python block after the README's "Python API:" line."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^Python API:\n+```python\n(.*?)^```", readme, re.S | re.M)
    assert found, "README.md has no ```python block after 'Python API:'"
    return found.group(1)


@pytest.mark.parametrize("how", ["script", "module"])
def test_the_readme_snippet_runs_as_written(how: str, tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """It calls ``ingest`` at the top level, with no ``if __name__ == "__main__":`` guard: the parser workers
    re-run the script and must go back to parsing instead of building a second Ragline on the locked index."""
    snippet = readme_snippet()
    assert "__main__" not in snippet and "rag.ingest(" in snippet
    assert embedder.dimension  # the session's int8 export exists, so the script does not build it again
    (tmp_path / "snippet.py").write_text(snippet, encoding="utf-8")
    shutil.copytree(REPO / "demo_docs", tmp_path / "company-docs")
    command = [sys.executable, "snippet.py"] if how == "script" else [sys.executable, "-m", "snippet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAGLINE_CONFIG": "", "RAGLINE_INDEX": ""}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "in use" not in done.stderr
    assert "added=('LICENSE.txt', 'aurora-2-manual.pdf'" in done.stdout
    assert re.search(r"^\[1\]", done.stdout, re.M)  # the prompt's first cited block
    assert (tmp_path / "my-index").is_dir()


def test_the_filter_docs_list_every_payload_field() -> None:
    from pipeline.stores.schema import PAYLOAD_FIELDS

    text = (REPO / "docs" / "filters.md").read_text(encoding="utf-8")
    assert all(f"| `{name}` | {what} |" in text for name, what in PAYLOAD_FIELDS.items())


def test_ragline_is_the_import_name_and_a_shadowing_module_is_named(tmp_path: Path) -> None:
    """``import ragline`` loads no model or engine; a user's own pipeline.py is named, not a bare ModuleNotFoundError."""
    code = "import sys, ragline; from ragline import Ragline, parse_filter; print(Ragline.__module__, 'torch' in sys.modules)"
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.split() == ["pipeline.app", "False"], ok.stderr
    (tmp_path / "pipeline.py").write_text("STEPS = []\n", encoding="utf-8")
    (tmp_path / "app.py").write_text("from ragline import Ragline\n", encoding="utf-8")
    shadowed = subprocess.run([sys.executable, "app.py"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert shadowed.returncode == 1
    assert (
        f"your module {tmp_path / 'pipeline.py'} hides ragline's own package 'pipeline': rename it" in shadowed.stderr
    )


def test_ragline_exports_what_all_names() -> None:
    import ragline

    assert all(getattr(ragline, name) is not None for name in ragline.__all__)
