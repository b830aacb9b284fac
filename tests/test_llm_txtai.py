"""txtai's LLM pipeline and workflows run localrag's LLM through rag.llm.LocalRAGGeneration."""

import textwrap

from txtai.app import Application
from txtai.pipeline import LLM

from tests.conftest_llm import OLLAMA_MODEL

METHOD = "rag.llm.LocalRAGGeneration"


def test_pipeline_with_the_embedded_model(embedded_llm):
    llm = LLM(path="embedded", method=METHOD, llm={"temperature": 0.0})
    assert llm.generator.llm.loaded is embedded_llm.loaded  # the model loaded once, shared
    text = llm("List three colors.", maxlength=24)
    assert isinstance(text, str) and text.strip()
    pieces = list(llm("List three colors.", maxlength=24, stream=True))
    assert len(pieces) > 3 and "".join(pieces).strip() == text

    texts = llm(["Say hi.", "Say bye."], maxlength=8)
    assert len(texts) == 2 and all(texts)


def test_pipeline_through_ollama(ollama_server):
    llm = LLM(path="ollama", method=METHOD, llm={"ollama": {"base_url": ollama_server.url, "model": OLLAMA_MODEL}})
    assert llm([{"role": "user", "content": "Say hi."}], maxlength=8).strip()
    path, body = ollama_server.requests[-1]
    assert path == "/api/chat" and body["options"]["num_predict"] == 8


def test_pipeline_from_a_config_file(tmp_path, ollama_server, monkeypatch):
    config = tmp_path / "config.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            llm:
              provider: ollama
              temperature: 0
              ollama:
                base_url: {ollama_server.url}
                model: {OLLAMA_MODEL}
                keep_alive: 2m
            """
        ),
        encoding="utf-8",
    )
    llm = LLM(path=str(config), method=METHOD)
    assert llm("Say hi.", maxlength=8).strip()
    assert ollama_server.requests[-1][1]["keep_alive"] == "2m"

    monkeypatch.setenv("RAG_CONFIG", str(config))  # no path: localrag's own config
    ollama_server.requests.clear()
    assert LLM(method=METHOD)("Say hi.", maxlength=8).strip()
    assert ollama_server.requests[-1][0] == "/api/chat"


def test_workflow_task_calls_the_llm(embedded_llm):
    app = Application(
        {
            "llm": {"path": "embedded", "method": METHOD, "llm": {"temperature": 0.0}},
            "workflow": {"complete": {"tasks": [{"action": "llm", "args": {"maxlength": 12}}]}},
        }
    )
    results = list(app.workflow("complete", ["Name a color.", "Name a fruit."]))
    assert len(results) == 2 and all(isinstance(text, str) and text.strip() for text in results)
