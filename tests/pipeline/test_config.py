"""Settings: defaults, error messages that name the setting, TOML loading, env override."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import (
    DEFAULT_TEMPLATE,
    AppConfig,
    ChunkingConfig,
    Fusion,
    config_to_dict,
    load_config,
    parse_config,
)
from pipeline.errors import ConfigError, RaglineError

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_index_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGLINE_INDEX", raising=False)


def write_toml(tmp_path: Path, text: str, name: str = "ragline.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults -----------------------------------------------------------------


def test_defaults_validate_and_match_documented_values() -> None:
    config = parse_config({})
    assert config == AppConfig()
    assert config.index.path == ".ragline"
    assert config.chunking.chunk_tokens == 200
    assert config.chunking.overlap_tokens == 32
    assert config.chunking.overlap_tokens < config.chunking.chunk_tokens
    assert config.bm25.k1 == 1.2 and config.bm25.b == 0.75
    # the values chosen by bench/sweep_defaults.py on SciFact train (docs/evaluation.md)
    assert config.retrieval.fusion is Fusion.WEIGHTED
    assert config.retrieval.dense_weight == 0.7 and config.retrieval.candidates == 400
    assert config.retrieval.rrf_k == 60
    assert config.rerank.on_failure == "continue"
    assert "{context}" in config.prompt.template and "{question}" in config.prompt.template
    assert config.llm.configured is False


def test_load_config_without_path_gives_defaults() -> None:
    assert load_config() == AppConfig()


def test_dumped_defaults_parse_back_to_the_same_config() -> None:
    dumped = config_to_dict(AppConfig())
    assert dumped["retrieval"]["fusion"] == "weighted"
    assert parse_config(dumped) == AppConfig()


def test_values_from_a_toml_file_are_applied(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[retrieval]\nfusion = "dbsf"\ntop_k = 7\n\n[chunking]\nchunk_tokens = 128\noverlap_tokens = 0\n',
    )
    config = load_config(path)
    assert config.retrieval.fusion is Fusion.DBSF
    assert config.retrieval.top_k == 7
    assert config.chunking == ChunkingConfig(chunk_tokens=128, overlap_tokens=0)
    # untouched sections keep their defaults
    assert config.rerank == AppConfig().rerank


# --- error messages -----------------------------------------------------------


def test_unknown_key_names_dotted_path() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"rerank": {"on_failur": "stop"}}, origin="my.toml")
    message = str(info.value)
    assert "rerank.on_failur" in message
    assert "unknown setting" in message
    assert message.startswith("my.toml: ")


def test_unknown_top_level_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r"retreival: unknown setting"):
        parse_config({"retreival": {"top_k": 3}})


def test_unknown_key_in_toml_file_names_file_and_path(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[rerank]\non_failur = "stop"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "rerank.on_failur" in message
    assert "unknown setting" in message


def test_bad_fusion_lists_valid_choices() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"retrieval": {"fusion": "max"}})
    message = str(info.value)
    assert "retrieval.fusion" in message
    assert "'rrf', 'dbsf' or 'weighted'" in message
    assert "'max'" in message


def test_bad_on_failure_lists_valid_choices() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"rerank": {"on_failure": "ignore"}})
    message = str(info.value)
    assert "rerank.on_failure" in message
    assert "'continue'" in message and "'stop'" in message


@pytest.mark.parametrize("overlap", [200, 201, 500])
def test_overlap_not_below_chunk_size_is_rejected(overlap: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"chunking": {"chunk_tokens": 200, "overlap_tokens": overlap}})
    message = str(info.value)
    assert "chunking" in message
    assert f"overlap_tokens ({overlap}) must be smaller than chunk_tokens (200)" in message


def test_overlap_just_below_chunk_size_is_accepted() -> None:
    config = parse_config({"chunking": {"chunk_tokens": 200, "overlap_tokens": 199}})
    assert config.chunking.overlap_tokens == 199


def test_default_overlap_with_small_chunk_size_is_rejected() -> None:
    # overlap defaults to 32, so chunk_tokens=32 alone is already invalid
    with pytest.raises(ConfigError, match=r"overlap_tokens \(32\) must be smaller than chunk_tokens \(32\)"):
        parse_config({"chunking": {"chunk_tokens": 32}})


def test_template_without_context_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"prompt": {"template": "Question: {question}\nAnswer:"}})
    message = str(info.value)
    assert "prompt" in message
    assert "template must contain {context}" in message


def test_template_without_question_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"template must contain \{question\}"):
        parse_config({"prompt": {"template": "Context:\n{context}"}})


def test_out_of_range_value_names_setting_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"retrieval": {"dense_weight": 1.5}})
    message = str(info.value)
    assert "retrieval.dense_weight" in message
    assert "1.5" in message


def test_several_problems_are_counted() -> None:
    with pytest.raises(ConfigError, match=r"and 1 more problem"):
        parse_config({"retrieval": {"top_k": 0, "rrf_k": 0}})


def test_config_error_is_a_ragline_error() -> None:
    assert issubclass(ConfigError, RaglineError)


def test_template_with_unknown_placeholder_is_rejected() -> None:
    template = DEFAULT_TEMPLATE + "\nAnswer in {language}."
    with pytest.raises(ConfigError, match=r"language"):
        parse_config({"prompt": {"template": template}})


# --- load_config --------------------------------------------------------------


def test_missing_file_raises_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "ragline.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


def test_invalid_toml_raises_config_error_naming_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[retrieval\ntop_k = = 3\n", name="broken.toml")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_non_utf8_file_raises_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[llm]\nmodel = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)


# --- RAGLINE_INDEX ------------------------------------------------------------


def test_ragline_index_env_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "env-index"
    monkeypatch.setenv("RAGLINE_INDEX", str(target))
    assert load_config().index.path == str(target)


def test_ragline_index_env_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[index]\npath = "/from/file"\n\n[retrieval]\ntop_k = 4\n')
    assert load_config(path).index.path == "/from/file"
    monkeypatch.setenv("RAGLINE_INDEX", "/from/env")
    config = load_config(path)
    assert config.index.path == "/from/env"
    assert config.retrieval.top_k == 4  # the rest of the file still applies


def test_empty_ragline_index_env_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLINE_INDEX", "")
    assert load_config().index.path == ".ragline"
