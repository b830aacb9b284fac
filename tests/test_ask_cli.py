"""`rag ask` end to end on the sample documents with the real embedded model."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from rag.cli import app
from tests.conftest import ROOT, write_config


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A copy of data/ ingested once with the shipped chunking settings."""
    folder = tmp_path_factory.mktemp("sample")
    shutil.copytree(ROOT / "data", folder / "docs", ignore=shutil.ignore_patterns("_build"))
    write_config(folder)
    text = (folder / "config.yml").read_text().replace("    max_tokens: 120\n    overlap: 16\n", "    max_tokens: 200\n    overlap: 32\n")
    (folder / "config.yml").write_text(text + "  max_tokens: 64\nanswer:\n  min_score: 0.35\n")
    result = CliRunner().invoke(app, ["--config", str(folder / "config.yml"), "ingest"])
    assert result.exit_code == 0, result.output
    return folder


def ask(sample, *args):
    return CliRunner().invoke(app, ["--config", str(sample / "config.yml"), "ask", *args])


def test_answers_a_fact_and_cites_its_source(sample):
    result = ask(sample, "What port does the HTTP API listen on by default?", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert "8080" in answer["answer"]
    assert "guide/http-api.md" in [c["source"] for c in answer["citations"]]
    assert answer["found"] and answer["complete"] and answer["backend"] == "embedded"
    assert answer["prompt_tokens"] + 64 <= 2048


def test_pdf_answer_cites_the_page(sample):
    answer = json.loads(ask(sample, "What is the maximum upload size of the HTTP API by default?", "--json").stdout)
    assert "25 MB" in answer["answer"]
    assert {"source": "reference/faq.pdf", "page": 2} in [{"source": c["source"], "page": c["page"]} for c in answer["citations"]]


def test_unrelated_question_is_refused_without_the_llm(sample):
    answer = json.loads(ask(sample, "Who painted the Mona Lisa?", "--json").stdout)
    assert answer["answer"] == "I could not find this in the documents."
    assert not answer["found"] and answer["citations"] == [] and answer["timings"]["llm_ms"] == 0.0


def test_stream_prints_the_answer_and_sources(sample):
    result = ask(sample, "Which header besides Authorization can carry an API key?", "--stream")
    assert result.exit_code == 0, result.output
    assert "X-API-Key" in result.stdout and "sources" in result.stdout and "reference/security.docx" in result.stdout


def test_ollama_down_names_the_url_and_exits_4(sample, unused_port):
    config = sample / "config.yml"
    text = config.read_text().replace("provider: embedded", f"provider: ollama\n  ollama:\n    base_url: http://127.0.0.1:{unused_port}")
    down = sample / "down.yml"
    down.write_text(text.replace("path: indexes", f"path: {sample / 'indexes'}").replace("path: docs", f"path: {sample / 'docs'}"))
    result = CliRunner().invoke(app, ["--config", str(down), "ask", "What port does the HTTP API listen on?"])
    assert result.exit_code == 4
    assert f"127.0.0.1:{unused_port}" in result.output and "ollama serve" in result.output


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ask_through_ollama_pulls_a_missing_model_with_progress(sample, ollama_server):
    """Real HTTP through the official client: the model is pulled (progress shown), then answers."""
    config = sample / "ollama.yml"
    text = (sample / "config.yml").read_text().replace(
        "provider: embedded", f"provider: ollama\n  ollama:\n    base_url: {ollama_server.url}\n    model: llama3.2:1b\n    auto_pull: true"
    )
    config.write_text(text)
    result = CliRunner().invoke(app, ["--config", str(config), "ask", "What port does the HTTP API listen on by default?", "--json"])
    assert result.exit_code == 0, result.output
    assert "ollama: pulling manifest" in result.output and "ollama: success" in result.output
    answer = json.loads(result.stdout[result.stdout.index("{") :])
    assert answer["backend"] == "ollama" and answer["model"] == "llama3.2:1b" and "8080" in answer["answer"]
