"""The API docs in a real browser: headless Chromium renders /docs and /redoc from this server alone.

Every host but loopback resolves to nothing, so a page that still needed a CDN would render blank here
even on a machine with internet (as /docs did before fastapi-offline).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from pipeline.app import Ragline
from pipeline.faces.http import create_app, running_server
from pipeline.models.embedder import SentenceTransformerEmbedder
from tests.conftest import DEMO_DOCS, ingested_app

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Iterator[str]:
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (.ci/run installs it with apt)")
    rag: Ragline
    for rag in ingested_app(tmp_path_factory.mktemp("browser-index"), embedder, DEMO_DOCS):
        with running_server(create_app(rag)) as base:
            yield base


def rendered(url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page's DOM after its scripts ran (virtual time lets Swagger UI fetch the schema and render)."""
    assert CHROMIUM is not None
    profile = tmp_path_factory.mktemp("chromium-profile")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_swagger_ui_renders_every_endpoint_offline(url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    dom = rendered(f"{url}/docs", tmp_path_factory)
    for path in ("/search", "/context", "/ask", "/ingest", "/jobs", "/stats", "/health"):
        assert f'data-path="{path}"' in dom, path
    assert "SearchResponse" in dom  # the typed response models, listed under Schemas


def test_redoc_renders_offline(url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    dom = rendered(f"{url}/redoc", tmp_path_factory)
    assert "Ranked chunks with per-stage scores" in dom  # the /search operation, rendered from the schema
    assert "chunk_id" in dom and "low_confidence" in dom  # its typed response fields
