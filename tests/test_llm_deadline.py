"""An LLM backend's timeout is a deadline for the whole answer: a backend that trickles tokens or never
answers fails the call once the timeout has passed, concurrent callers fail together, and a server with
calls in flight stops promptly on SIGTERM. Real HTTP throughout: the Ollama-compatible test server
(tests/ollama_server.py, generating with the real embedded model) with its `trickle` and `hang` knobs,
for Ollama's API and its OpenAI-compatible /v1 routes."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.llm import EmbeddedLLM, LLMTimeout, LLMUnavailable, abort_calls, create_llm
from tests.conftest_llm import OLLAMA_MODEL, llm_config
from tests.ollama_server import free_port
from tests.helpers import ADMIN_KEY, ApiServer, make_workspace, sse_events

ROOT = Path(__file__).resolve().parent.parent
STORY = "Write a long story about a dragon who guards a library."


def ollama_llm(server, **settings):
    return create_llm(llm_config("ollama", ollama={"base_url": server.url, "model": OLLAMA_MODEL, **settings}))


def openai_llm(server, **settings):
    return create_llm(llm_config("openai", openai={"base_url": f"{server.url}/v1", "model": OLLAMA_MODEL, **settings}))


def timed(call) -> tuple[float, Exception | None]:
    """How long call() took, and what it raised."""
    start = time.monotonic()
    try:
        call()
    except Exception as error:
        return time.monotonic() - start, error
    return time.monotonic() - start, None


def together(calls) -> list[tuple[float, Exception | None]]:
    """Runs the calls at once in threads; (seconds from the common start, exception) of each."""
    start, outcomes = time.monotonic(), [None] * len(calls)

    def run(i):
        _, error = timed(calls[i])
        outcomes[i] = (time.monotonic() - start, error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


def collect(llm, pieces: list, prompt: str = STORY):
    """Streams an answer into pieces (which keeps what came before a failure)."""
    for piece in llm.chat(prompt, stream=True):
        pieces.append(piece)


def eventually(check, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def assert_cut(server):
    """The server's last stream stopped before its end: the client closed the connection."""
    time.sleep(1.5)  # the client closes at the next piece, the server stops at its next write
    sent = server.streams[-1]["sent"]
    time.sleep(1.5)
    assert server.streams[-1] == {"sent": sent, "done": False}


def test_trickling_ollama_fails_at_the_deadline_and_the_stream_is_cut(ollama_server):
    ollama_server.trickle = 0.5  # a token every 0.5 s: each read is quick, the answer would take 20 s
    llm, pieces = ollama_llm(ollama_server, timeout=3), []
    seconds, error = timed(lambda: collect(llm, pieces))
    assert isinstance(error, LLMTimeout)
    assert f"Ollama at {ollama_server.url} did not finish within 3 s (llm.ollama.timeout)" in str(error)
    assert pieces and seconds < 5
    assert_cut(ollama_server)


def test_hung_ollama_fails_concurrent_callers_together_and_the_failure_is_not_kept(ollama_server):
    ollama_server.hang = True  # /api/show and /api/chat are accepted and never answered
    llm = ollama_llm(ollama_server, timeout=2)
    outcomes = together([lambda: llm.chat("hi"), lambda: llm.chat("hi"), lambda: list(llm.chat("hi", stream=True))])
    assert all(isinstance(error, LLMTimeout) for _, error in outcomes), outcomes
    ends = sorted(seconds for seconds, _ in outcomes)
    assert ends[0] > 1.5 and ends[-1] < 3.5, ends  # before: 2, 4 and 6 s, one after another
    assert [path for path, _ in ollama_server.requests] == ["/api/show"]  # one shared model check

    ollama_server.hang = False
    time.sleep(0.5)  # the shared check ends with its own read timeout, just after its callers'
    assert llm.chat("Say hi.", max_tokens=4).strip()  # the next call asks again

    ollama_server.hang = True  # the model is known now: the chats themselves hang
    outcomes = together([lambda: llm.chat("hi")] * 3)
    assert all(isinstance(error, LLMTimeout) for _, error in outcomes), outcomes
    assert max(seconds for seconds, _ in outcomes) < 3.5


def test_ollama_answers_as_before_within_the_deadline(ollama_server):
    ollama_server.trickle = 0.05
    llm, pieces = ollama_llm(ollama_server, timeout=30), []
    collect(llm, pieces, "List three colors.")
    assert len(pieces) > 3
    assert "".join(pieces) == llm.chat("List three colors.")
    assert ollama_server.streams == [{"sent": len(pieces) + 1, "done": True}]


def test_openai_compatible_server_trickling_or_hung(ollama_server):
    works = openai_llm(ollama_server, timeout=60)  # Ollama's /v1 answers, streamed or not
    assert "".join(works.chat("List three colors.", stream=True)) == works.chat("List three colors.")

    ollama_server.trickle = 0.5
    llm, pieces = openai_llm(ollama_server, timeout=3), []
    seconds, error = timed(lambda: collect(llm, pieces))
    assert isinstance(error, LLMTimeout) and "within 3 s (llm.openai.timeout)" in str(error)
    assert pieces and seconds < 5
    assert_cut(ollama_server)

    ollama_server.hang = True
    llm = openai_llm(ollama_server, timeout=2)
    outcomes = together([lambda: llm.chat("hi"), lambda: llm.chat("hi"), lambda: list(llm.chat("hi", stream=True))])
    assert all(isinstance(error, LLMTimeout) for _, error in outcomes), outcomes
    ends = sorted(seconds for seconds, _ in outcomes)
    assert ends[0] > 1.5 and ends[-1] < 3.5, ends


def test_embedded_generation_stops_at_the_deadline(embedded_llm):
    llm = EmbeddedLLM(llm_config(max_tokens=400), timeout=1.0)  # shares the session's loaded model
    before = embedded_llm.metrics()["tokens_predicted_total"]
    for call in (lambda: collect(llm, []), lambda: llm.chat(STORY)):
        seconds, error = timed(call)
        assert isinstance(error, LLMTimeout) and "within 1 s (llm.embedded.timeout)" in str(error)
        assert seconds < 3
    # Had either kept generating its 400 tokens, this would wait for them, and the count would show
    # them: two 1 s calls stopped at the deadline predict well under one whole answer, however fast
    assert embedded_llm.chat("Say hi.", max_tokens=4).strip()
    assert embedded_llm.metrics()["tokens_predicted_total"] - before < 400


def test_abort_calls_ends_waits_on_a_hung_backend(ollama_server):
    ollama_server.hang = True
    llm = ollama_llm(ollama_server, timeout=60)
    threading.Timer(0.5, abort_calls, args=("the server is shutting down",)).start()
    seconds, error = timed(lambda: llm.chat("hi"))
    assert isinstance(error, LLMUnavailable) and "shutting down" in str(error)
    assert seconds < 3


def ollama_workspace(folder: Path, server, timeout: float, max_tokens: int = 12) -> Path:
    """make_workspace's documents, index and keys, answering through the Ollama test server."""
    config = make_workspace(folder, provider="ollama", ollama_url=server.url)
    text = config.read_text().replace("    timeout: 5", f"    timeout: {timeout}\n    model: {OLLAMA_MODEL}")
    config.write_text(text.replace("max_tokens: 12", f"max_tokens: {max_tokens}"), encoding="utf-8")
    return config


@pytest.fixture
def api(tmp_path, ollama_server):
    """The API over a fresh workspace whose LLM is the Ollama test server, with a 4 s timeout and
    answers long enough that a trickle outlasts it."""
    config = ollama_workspace(tmp_path, ollama_server, timeout=4, max_tokens=40)
    server = ApiServer(config).start()
    yield server
    ollama_server.hang = False
    server.stop()


def test_ask_against_a_trickling_ollama_ends_at_the_deadline(api, ollama_server):
    ollama_server.trickle = 0.5
    with api.client() as client:
        start = time.monotonic()
        with client.stream("POST", "/ask", json={"question": "How do I back up the index?", "stream": True}) as response:
            assert response.status_code == 200, response.read()
            events = sse_events(response)
        seconds = time.monotonic() - start
    names = [name for name, _ in events]
    assert names[0] == "token" and "error" in names and names[-1] == "done"
    assert '"llm_timeout"' in dict(events)["error"] and '"complete": false' in dict(events)["done"]
    assert seconds < 7  # the 4 s deadline, not the 20 s the trickle takes


def test_concurrent_asks_against_a_hung_ollama_fail_together(api, ollama_server):
    ollama_server.hang = True

    def ask(stream: bool):
        with api.client() as client:
            response = client.post("/ask", json={"question": "How do I back up the index?", "stream": stream})
        assert response.status_code == 504 and response.json()["error"]["type"] == "llm_timeout"

    outcomes = together([lambda: ask(False), lambda: ask(False), lambda: ask(True)])
    assert all(error is None for _, error in outcomes), outcomes
    ends = sorted(seconds for seconds, _ in outcomes)
    assert ends[0] > 3.5 and ends[-1] < 6.5, ends  # before: 4, 8 and 12 s


@pytest.mark.slow
def test_sigterm_stops_the_server_with_an_ask_in_flight(tmp_path, ollama_server):
    config = ollama_workspace(tmp_path, ollama_server, timeout=120)
    port, log = free_port(), tmp_path / "serve.log"
    code = "import sys; from api.server import serve; serve(sys.argv[1], port=int(sys.argv[2]))"
    with log.open("wb") as output:
        command = [sys.executable, "-c", code, str(config), str(port)]
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        assert eventually(lambda: ready(url) or process.poll() is not None, 180) and process.poll() is None, log.read_text()[-2000:]
        ollama_server.hang = True
        threading.Thread(target=ask_quietly, args=(url,), daemon=True).start()
        assert eventually(lambda: "/api/show" in [path for path, _ in ollama_server.requests])  # the ask waits on Ollama
        start = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        seconds = time.monotonic() - start
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert seconds < 10, log.read_text()[-2000:]  # api.server.GRACEFUL_SHUTDOWN, then the call is aborted; before: its 120 s deadline


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ask_quietly(url: str):
    try:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        httpx.post(f"{url}/ask", json={"question": "How do I back up the index?", "stream": True}, headers=headers, timeout=150)
    except httpx.HTTPError:
        pass
