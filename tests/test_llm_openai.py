"""The OpenAI-compatible backend against a real llama.cpp HTTP server: the one xllamacpp runs for the
embedded model (127.0.0.1, random port, protected by a random API key)."""

import httpx
import pytest

from rag.llm import LLMError, LLMTimeout, LLMUnavailable, create_llm
from tests.conftest_llm import llm_config
from tests.ollama_server import free_port


def openai_llm(embedded_llm, **settings):
    settings = {"base_url": f"{embedded_llm.http_url}/v1", "api_key": embedded_llm.api_key, "model": "smollm2", **settings}
    return create_llm(llm_config("openai", openai=settings))


def test_llama_cpp_serves_openai_chat_completions(embedded_llm):
    response = httpx.post(
        f"{embedded_llm.http_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {embedded_llm.api_key}"},
        json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert httpx.post(f"{embedded_llm.http_url}/v1/chat/completions", json={"messages": []}).status_code == 401


def test_chat_and_stream(embedded_llm):
    llm = openai_llm(embedded_llm)
    answer = llm.chat([{"role": "user", "content": "List three colors."}])
    assert answer.strip()
    pieces = list(llm.chat([{"role": "user", "content": "List three colors."}], stream=True))
    assert len(pieces) > 3 and "".join(pieces) == answer


def test_uses_llama_cpps_tokenizer_and_window(embedded_llm):
    llm = openai_llm(embedded_llm)
    assert llm.exact_tokens
    text = "Copy the indexes folder to back up every index."
    assert llm.count_tokens(text) == embedded_llm.count_tokens(text)
    assert llm.context_window == 2048
    assert openai_llm(embedded_llm, model="x").status()["available"]


def test_rejected_key(embedded_llm):
    with pytest.raises(LLMError, match="rejected the API key"):
        openai_llm(embedded_llm, api_key="wrong").chat("hi")


def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = create_llm(llm_config("openai", openai={"base_url": url}))
    with pytest.raises(LLMUnavailable, match=url):
        llm.chat("hi")
    with pytest.raises(LLMUnavailable, match=url):
        list(llm.chat("hi", stream=True))


def test_timeout(embedded_llm):
    llm = openai_llm(embedded_llm, timeout=0.001)
    with pytest.raises(LLMTimeout, match=r"llm\.openai\.timeout"):
        llm.chat("Write a long story.", max_tokens=200)
