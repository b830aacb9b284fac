"""The embedded backend: SmolLM2-135M-Instruct run in process by llama.cpp (xllamacpp)."""

import threading
import time

import pytest

from rag.llm import EmbeddedLLM, EmbeddedModelMissing, LLMConfig, create_llm, estimate_tokens
from tests.conftest_llm import llm_config

SAMPLES = {
    "prose": "Copy the indexes folder to back up every index. Restores are a copy back, nothing else is needed.",
    "code": "def handle(request):\n    return {'status': 200, 'items': [x ** 2 for x in range(10)]}\n",
    "numbers": "Invoice 2024-117: 3 x 19.99 EUR, 12 x 4.50 EUR; total 113.97 EUR; IBAN DE89370400440532013000.",
    "cjk": "東京は日本の首都です。人口は約1400万人です。",
    "accents": "Crème brûlée, façade, naïve, Ærøskøbing, Łódź, São Paulo.",
    "emoji": "Deploy 🚀 then celebrate 🎉🎉 and rest 😴.",
    "markdown": "## Install\n\n| OS | Command |\n|----|---------|\n| Linux | `make demo` |\n",
}


def test_answers_a_simple_instruction(embedded_llm):
    text = embedded_llm.chat([{"role": "user", "content": "List three colors."}])
    assert text.strip()
    assert any(color in text.lower() for color in ("red", "blue", "green", "yellow"))


def test_stream_yields_pieces_of_the_same_answer(embedded_llm):
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name three colors."}]
    pieces = list(embedded_llm.chat(messages, stream=True))
    assert len(pieces) > 3
    assert "".join(pieces) == embedded_llm.chat(messages)  # greedy decoding: same text either way


def test_token_counts_are_the_models_own(embedded_llm):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": SAMPLES["prose"]}]
    result = embedded_llm.loaded.server.handle_chat_completions({"messages": messages, "max_tokens": 1})
    assert embedded_llm.count_messages(messages) == result["usage"]["prompt_tokens"]
    assert embedded_llm.exact_tokens


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_estimate_never_undercounts_the_real_tokenizer(embedded_llm, kind):
    """The estimate used where no tokenizer is available (Ollama) must stay on the safe side."""
    text = SAMPLES[kind]
    real = embedded_llm.count_tokens(text)
    assert real <= estimate_tokens(text) <= 3 * real + 10


def test_closing_a_stream_stops_generation(embedded_llm):
    before = embedded_llm.metrics()["tokens_predicted_total"]
    pieces = embedded_llm.chat("Count from 1 to 500, separated by commas.", max_tokens=1500, stream=True)
    assert [next(pieces) for _ in range(5)]
    pieces.close()
    deadline = time.monotonic() + 30
    while embedded_llm.metrics()["requests_processing"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert embedded_llm.metrics()["requests_processing"] == 0
    assert embedded_llm.metrics()["tokens_predicted_total"] - before < 30  # not the hundreds it was asked for


def test_concurrent_streams_each_get_their_answer(embedded_llm):
    results = {}

    def ask(name, prompt):
        results[name] = "".join(embedded_llm.chat(prompt, max_tokens=16, stream=True))

    threads = [threading.Thread(target=ask, args=(n, f"Say the word {n}.")) for n in ("apple", "river")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(results) == {"apple", "river"}
    assert all(text.strip() for text in results.values())


def test_model_is_loaded_once_per_process(embedded_llm):
    other = EmbeddedLLM(llm_config(max_tokens=8, temperature=0.5))
    assert other.loaded is embedded_llm.loaded
    assert other.context_window == embedded_llm.context_window == 2048


def test_missing_model_file_is_reported_with_its_path(tmp_path):
    llm = create_llm(LLMConfig(provider="embedded", embedded={"model_path": "models/missing.gguf"}), root=tmp_path)
    with pytest.raises(EmbeddedModelMissing, match=str(tmp_path / "models" / "missing.gguf")):
        llm.chat("hello")
    status = llm.status()
    assert status["available"] is False and "missing.gguf" in status["error"]


def test_status_names_model_and_window(embedded_llm):
    status = embedded_llm.status()
    assert status["backend"] == "embedded"
    assert status["model"] == "SmolLM2-135M-Instruct"
    assert status["context_window"] == 2048
    assert status["available"] and status["loaded"]
