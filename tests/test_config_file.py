"""The shipped config file documents the defaults: it must parse to exactly them."""

from __future__ import annotations

import pytest

from pipeline.config import AppConfig, load_config
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_shipped_config_equals_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGLINE_INDEX", raising=False)
    assert load_config(REPO / "config" / "ragline.toml") == AppConfig()


def test_every_setting_is_commented() -> None:
    """Each section of the model appears in the file, so no setting goes undocumented."""
    text = (REPO / "config" / "ragline.toml").read_text(encoding="utf-8")
    for section, model in AppConfig.model_fields.items():
        assert f"[{section}]" in text
        sub = model.annotation
        for key in sub.model_fields:  # type: ignore[union-attr]
            assert f"\n{key} = " in text, f"{section}.{key} missing from config/ragline.toml"
