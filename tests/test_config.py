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
    config = load_config(file, environ={"PORT_X": "9100", "RAG_SEARCH__LIMIT": "7", "RAG_INGEST__MAX_FILE_SIZE": "1MiB"})
    assert config.api.port == 9100 and config.search.limit == 7 and config.ingest.max_file_size == 1024 * 1024


def test_sizes_in_binary_and_decimal_units(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("ingest:\n  max_file_size: 20MiB\napi:\n  max_upload_size: 1.5 MB\n")
    config = load_config(file, environ={})
    assert config.ingest.max_file_size == 20 * 1024 * 1024  # MiB: 2^20 bytes
    assert config.api.max_upload_size == 1_500_000  # MB: 10^6 bytes
    assert load_config(ROOT / "config.yml", environ={}).api.max_upload_size == 25 * 1024 * 1024
    file.write_text("ingest:\n  max_file_size: 20 megs\n")
    with pytest.raises(ConfigError, match=r"ingest\.max_file_size: could not interpret byte unit: megs \(got '20 megs'\)"):
        load_config(file, environ={})


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


def test_an_unset_api_key_variable_stops_serve_but_not_ingest(tmp_path):
    """The key is needed to serve, not to ingest: `rag ingest` runs, `rag serve` exits 2 naming the key."""
    from typer.testing import CliRunner

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nAlpha text.\n", encoding="utf-8")
    config = tmp_path / "config.yml"
    config.write_text(
        "index: {name: t, path: indexes}\ningest: {sources: [{name: docs, path: docs}]}\n"
        "api:\n  api_keys:\n    reader: {key: '${LOCALRAG_UNSET_KEY_FOR_TESTS}', scopes: [read]}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    ingested = runner.invoke(app, ["--config", str(config), "ingest"], env={"LOCALRAG_UNSET_KEY_FOR_TESTS": ""})
    assert ingested.exit_code == 0, ingested.output
    served = runner.invoke(app, ["--config", str(config), "serve", "--port", "9"], env={"LOCALRAG_UNSET_KEY_FOR_TESTS": ""})
    assert served.exit_code == 2 and "api.api_keys.reader.key: is empty" in served.output


def test_postgres_build_memory_must_be_a_postgresql_memory_size(tmp_path):
    file = tmp_path / "config.yml"
    file.write_text("index:\n  postgres:\n    build_memory: 3GB\n")
    assert load_config(file, environ={}).index.postgres.build_memory == "3GB"
    for bad in ("lots", "3 GB", "0MB", "512MB'; DROP TABLE x; --"):
        file.write_text(f'index:\n  postgres:\n    build_memory: "{bad}"\n')
        with pytest.raises(ConfigError, match=r"index\.postgres\.build_memory"):
            load_config(file, environ={})
