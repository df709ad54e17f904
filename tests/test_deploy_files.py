"""docker-compose.yml, the Dockerfile and the service config agree with each other and with ragline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import load_config
from tests.conftest import REPO

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def test_qdrant_service_is_pinned_persistent_and_health_checked(compose: dict[str, Any]) -> None:
    qdrant = compose["services"]["qdrant"]
    image, _, tag = qdrant["image"].partition(":")
    assert image == "qdrant/qdrant" and tag.startswith("v") and tag != "latest"
    volume = qdrant["volumes"][0].split(":")
    assert volume[1] == "/qdrant/storage" and volume[0] in compose["volumes"]
    assert "6333" in qdrant["healthcheck"]["test"][-1]


def test_ragline_service_runs_the_api_in_server_mode(compose: dict[str, Any]) -> None:
    service = compose["services"]["ragline"]
    assert service["build"] == "." and (REPO / "Dockerfile").is_file()
    assert service["depends_on"]["qdrant"]["condition"] == "service_healthy"
    assert "/health" in " ".join(service["healthcheck"]["test"])

    # The config the container reads is this repo's config/docker.toml (COPY config config).
    in_container = Path(service["environment"]["RAGLINE_CONFIG"])
    assert in_container.parts[:3] == ("/", "app", "config")
    config = load_config(REPO / "config" / in_container.name)
    assert config.qdrant.enabled and config.qdrant.url == "http://qdrant:6333"
    mounted = {v.split(":")[1] for v in service["volumes"]}
    assert set(config.server.sources.values()) <= mounted  # every ingest source is a mounted folder
    assert config.server.host == "0.0.0.0"
    assert service["ports"] == [f"{config.server.port}:{config.server.port}"]


def test_dockerfile_installs_cpu_torch_before_ragline_and_serves() -> None:
    lines = [line for line in (REPO / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")]
    torch = next(i for i, line in enumerate(lines) if "torch==2.13.0" in line)
    ragline = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install ."))
    assert torch < ragline and "whl/cpu" in lines[torch]
    assert lines[-1] == 'CMD ["ragline", "serve", "--host", "0.0.0.0", "--port", "8000"]'


def test_docker_compose_config_parses_where_compose_exists() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` on this machine; the YAML checks above still ran")
    result = subprocess.run([docker, "compose", "config", "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_demo_server_config_names_the_shipped_demo_folder() -> None:
    config = load_config(REPO / "config" / "demo-server.toml")
    assert config.server.sources == {"demo": str(REPO / "demo_docs")} and (REPO / "demo_docs").is_dir()
