"""Shared fixtures: a throwaway workspace (config, documents, index), real API servers, the LLMs,
PostgreSQL."""

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.conftest_llm import embedded_llm, ollama_server, ollama_session  # noqa: E402,F401  (fixtures)
from tests.conftest_pg import postgres_database, postgres_server, postgres_url  # noqa: E402,F401  (fixtures)
from tests.helpers import ApiServer, make_workspace  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def write_config(folder: Path, extra: str = "") -> Path:
    """A config.yml in folder: source docs/ and index in indexes/, both inside folder."""
    config = folder / "config.yml"
    config.write_text(
        textwrap.dedent(
            """\
            index:
              name: test
              path: indexes
            ingest:
              sources:
                - name: docs
                  path: docs
              chunking:
                max_tokens: 120
                overlap: 16
            llm:
              provider: embedded
            """
        )
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return config


@pytest.fixture
def workspace(tmp_path):
    """tmp folder with docs/ (three small Markdown files) and a config.yml."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text(
        "# Installation\n\nRun make demo to install localrag on a fresh machine.\n\n"
        "## Requirements\n\nPython 3.11 or newer is required.\n",
        encoding="utf-8",
    )
    (docs / "backup.md").write_text(
        "# Backups\n\nCopy the indexes folder to back up every index. Restores are a copy back.\n", encoding="utf-8"
    )
    (docs / "notes.txt").write_text("The giraffe is the tallest living terrestrial animal.\n", encoding="utf-8")
    write_config(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """Starts real API servers for a test module, stopped when it ends:
    serve(prepare=None, **make_workspace options) -> a started tests.helpers.ApiServer;
    prepare(folder) may add documents before the workspace is ingested."""
    servers = []

    def start(prepare=None, **options):
        folder = tmp_path_factory.mktemp("api")
        if prepare:
            prepare(folder)
        servers.append(ApiServer(make_workspace(folder, **options)).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
