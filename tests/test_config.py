"""config.yml validation, interpolation and environment overrides."""

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import ConfigError, load_config
from tests.conftest import ROOT


def test_shipped_config_is_valid():
    config = load_config(ROOT / "config.yml", environ={})
    assert config.index.embeddings["faiss"]["components"] == "IDMap,Flat"
    assert config.index_dir == ROOT / "indexes" / "default"
    assert config.ingest.sources[0].path.as_posix() == "data"


def test_unknown_key_is_named(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("index:\n  nmae: x\n")
    with pytest.raises(ConfigError) as error:
        load_config(file, environ={})
    assert str(file) in str(error.value) and "index.nmae" in str(error.value)


def test_wrong_type_names_key_and_expectation(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("search:\n  limit: many\n")
    with pytest.raises(ConfigError, match=r"search\.limit: Input should be a valid integer.*'many'"):
        load_config(file, environ={})


def test_bad_size_and_mode(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("ingest:\n  max_file_size: huge\nsearch:\n  mode: fuzzy\n")
    with pytest.raises(ConfigError) as error:
        load_config(file, environ={})
    assert "ingest.max_file_size" in str(error.value) and "search.mode" in str(error.value)


def test_interpolation_and_overrides(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("api:\n  port: ${PORT_X:-9000}\n  host: ${HOST_X:-0.0.0.0}\n")
    assert load_config(file, environ={}).api.port == 9000
    config = load_config(file, environ={"PORT_X": "9100", "RAG_SEARCH__LIMIT": "7", "RAG_INGEST__MAX_FILE_SIZE": "1MB"})
    assert config.api.port == 9100 and config.search.limit == 7 and config.ingest.max_file_size == 1024 * 1024


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml", environ={})
    file = tmp_path / "config.yml"
    file.write_text("index: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(file, environ={})


def test_cli_fails_before_any_work_with_exit_2(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("ingest:\n  chunking:\n    max_tokens: 100\n    overlap: 90\n")
    result = CliRunner().invoke(app, ["--config", str(file), "ingest"])
    assert result.exit_code == 2
    assert "ingest.chunking.overlap" in result.output
    assert not (tmp_path / "indexes").exists()
