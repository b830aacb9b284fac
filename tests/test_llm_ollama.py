"""The Ollama backend over real HTTP through the official `ollama` client, against an Ollama-compatible
server (tests/ollama_server.py) that generates with the real embedded model."""

import io

import httpx
import ollama
import pytest
from rich.console import Console

from rag.llm import LLMError, LLMTimeout, LLMUnavailable, ModelNotFound, create_llm
from rag.cli.progress import PullBar
from rag.progress import Progress
from tests.conftest_llm import OLLAMA_MODEL, llm_config
from tests.ollama_server import free_port


class Pulls(Progress):
    """Records pull progress as (status, completed, total)."""

    def __init__(self, seen: list):
        self.seen = seen

    def pull(self, status, completed=None, total=None):
        self.seen.append((status, completed, total))


def ollama_llm(server, progress=None, **settings):
    config = llm_config("ollama", ollama={"base_url": server.url, "model": OLLAMA_MODEL, **settings})
    return create_llm(config, progress=progress)


def test_server_responses_parse_as_the_clients_types(ollama_server):
    client = ollama.Client(host=ollama_server.url)
    listed = client.list()
    assert isinstance(listed, ollama.ListResponse)
    assert [model.model for model in listed.models] == [OLLAMA_MODEL]

    shown = client.show(OLLAMA_MODEL)
    assert isinstance(shown, ollama.ShowResponse)
    assert shown.modelinfo["llama.context_length"] == 2048

    running = client.ps()
    assert isinstance(running, ollama.ProcessResponse) and running.models[0].context_length == 2048

    answer = client.chat(model=OLLAMA_MODEL, messages=[{"role": "user", "content": "Say hello."}], options={"num_predict": 8})
    assert isinstance(answer, ollama.ChatResponse)
    assert answer.done and answer.message.role == "assistant" and answer.message.content
    assert answer.eval_count and answer.prompt_eval_count

    parts = list(client.chat(model=OLLAMA_MODEL, messages=[{"role": "user", "content": "Say hello."}], stream=True, options={"num_predict": 8}))
    assert all(isinstance(part, ollama.ChatResponse) for part in parts)
    assert parts[-1].done and not any(part.done for part in parts[:-1])
    assert "".join(part.message.content for part in parts) == answer.message.content

    generated = client.generate(model=OLLAMA_MODEL, prompt="Say hello.", options={"num_predict": 8})
    assert isinstance(generated, ollama.GenerateResponse) and generated.response

    assert httpx.get(f"{ollama_server.url}/api/version").json()["version"]


def test_errors_have_ollamas_status_codes_and_bodies(ollama_server):
    client = ollama.Client(host=ollama_server.url)
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nope:1b", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404
    assert missing.value.error == 'model "nope:1b" not found, try pulling it first'

    with pytest.raises(ollama.ResponseError) as unknown:
        client.show("nope:1b")
    assert unknown.value.status_code == 404

    response = httpx.post(f"{ollama_server.url}/api/chat", json={"messages": []})
    assert response.status_code == 400 and response.json() == {"error": "model is required"}


def test_chat_and_stream_pass_options_and_keep_alive(ollama_server):
    llm = ollama_llm(ollama_server, keep_alive="10m", options={"seed": 7, "top_k": 20})
    answer = llm.chat([{"role": "user", "content": "List three colors."}])
    assert answer.strip()

    path, body = ollama_server.requests[-1]
    assert path == "/api/chat" and body["stream"] is False
    assert body["keep_alive"] == "10m"
    assert body["options"] == {"temperature": 0.0, "seed": 7, "top_k": 20, "num_predict": llm.max_tokens}

    pieces = list(llm.chat([{"role": "user", "content": "List three colors."}], stream=True))
    assert len(pieces) > 3
    assert "".join(pieces) == answer
    assert ollama_server.requests[-1][1]["stream"] is True


def test_context_window_from_show_or_num_ctx(ollama_server):
    assert ollama_llm(ollama_server).context_window == 2048  # llama.context_length of /api/show
    llm = ollama_llm(ollama_server, options={"num_ctx": 1024})
    assert llm.context_window == 1024
    llm.chat("Say hi.", max_tokens=4)
    assert ollama_server.requests[-1][1]["options"]["num_ctx"] == 1024


def test_auto_pull_shows_progress_and_makes_the_model_appear(ollama_server):
    seen = []
    llm = ollama_llm(ollama_server, progress=Pulls(seen), model="llama3.2:1b", auto_pull=True)
    assert llm.chat("Say hi.", max_tokens=4).strip()

    statuses = [status for status, _, _ in seen]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    downloads = [(completed, total) for status, completed, total in seen if status.startswith("pulling ") and total]
    assert len(downloads) > 2
    assert [c for c, _ in downloads] == sorted(c for c, _ in downloads)
    assert downloads[-1][0] == downloads[-1][1]
    assert "llama3.2:1b" in [m.model for m in ollama.Client(host=ollama_server.url).list().models]


def test_pull_bar_shows_statuses_and_bytes(ollama_server):
    console = Console(file=io.StringIO(), width=120)
    ollama_llm(ollama_server, progress=PullBar(console), model="qwen3:0.6b").pull()
    shown = console.file.getvalue()
    assert "ollama: pulling manifest" in shown and "ollama: success" in shown
    assert "4.2/4.2 MB" in shown


def test_missing_model_without_auto_pull_says_how_to_pull(ollama_server):
    llm = ollama_llm(ollama_server, model="llama3.2:1b")
    with pytest.raises(ModelNotFound, match=r"ollama pull llama3\.2:1b"):
        llm.chat("hi")
    with pytest.raises(ModelNotFound):
        list(llm.chat("hi", stream=True))
    assert "/api/pull" not in [path for path, _ in ollama_server.requests]
    status = llm.status()
    assert status["available"] is False and "ollama pull llama3.2:1b" in status["error"]


def test_model_that_cannot_be_pulled(ollama_server):
    llm = ollama_llm(ollama_server, model="no-such-model", auto_pull=True)
    with pytest.raises(ModelNotFound, match="file does not exist"):
        llm.chat("hi")


def test_server_down_names_the_url_and_how_to_start_it():
    url = f"http://127.0.0.1:{free_port()}"
    llm = create_llm(llm_config("ollama", ollama={"base_url": url, "model": OLLAMA_MODEL}))
    for call in (lambda: llm.chat("hi"), lambda: list(llm.chat("hi", stream=True))):
        with pytest.raises(LLMUnavailable) as error:
            call()
        message = str(error.value)
        assert url in message and "ollama serve" in message and "docker compose up -d ollama" in message
    assert llm.status()["available"] is False


def test_slow_server_times_out(ollama_server):
    ollama_server.delay = 3.0
    llm = ollama_llm(ollama_server, timeout=0.5)
    llm.ensure()  # /api/show is not delayed: only generation is slow
    with pytest.raises(LLMTimeout, match=r"llm\.ollama\.timeout"):
        llm.chat("hi")


def test_failure_mid_stream_raises_after_the_first_pieces(ollama_server):
    ollama_server.fail_after = 2
    pieces = []
    with pytest.raises(LLMError, match="unexpected EOF"):
        for piece in ollama_llm(ollama_server).chat("List three colors.", stream=True):
            pieces.append(piece)
    assert len(pieces) == 2


def test_status_reports_server_and_model(ollama_server):
    status = ollama_llm(ollama_server).status()
    assert status["backend"] == "ollama" and status["available"]
    assert status["model_available"] and status["version"] and status["context_window"] == 2048
