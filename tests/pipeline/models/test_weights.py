"""Finding model weights offline: the Hugging Face cache is read by path, and a missing hub model is one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ModelUnavailableError
from pipeline.models.weights import packaged_minilm_path, resolve_model

REPO = Path(__file__).resolve().parents[3]


def _fake_hub_download(cache: Path, model_id: str) -> Path:
    """A model laid out as huggingface_hub stores a download: refs/main names a snapshot folder."""
    repo = cache / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(packaged_minilm_path(), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40, encoding="utf-8")
    return snapshot


def test_a_downloaded_model_is_found_in_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _fake_hub_download(tmp_path / "hub", "acme/minilm-copy")
    assert Path(resolve_model("acme/minilm-copy", "reranker")).resolve() == snapshot.resolve()
    with pytest.raises(ModelUnavailableError, match="not in the local Hugging Face cache"):
        resolve_model("acme/not-downloaded", "reranker")


def test_a_model_that_is_not_downloaded_costs_no_hub_import(tmp_path: Path) -> None:
    """Every CLI search with the default reranker asks this; importing huggingface_hub to answer it took 0.2 s."""
    code = (
        "import sys\n"
        "from pipeline.errors import ModelUnavailableError\n"
        "from pipeline.models.weights import resolve_model\n"
        "try:\n"
        "    resolve_model('cross-encoder/not-downloaded', 'reranker')\n"
        "except ModelUnavailableError as exc:\n"
        "    print('refused:', exc)\n"
        "print('huggingface_hub' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    refused, imported = done.stdout.strip().splitlines()
    assert refused.startswith("refused: reranker model 'cross-encoder/not-downloaded' cannot be loaded")
    assert imported == "False"
