"""LLM fixtures: the real embedded model (loaded once per session) and an Ollama-compatible server
that generates with it. tests/conftest.py imports them: `from tests.conftest_llm import *`."""

import pytest

from rag.llm import EmbeddedLLM, LLMConfig
from tests.ollama_server import OllamaServer

__all__ = ["embedded_llm", "ollama_session", "ollama_server"]

# Short answers keep the suite fast on a shared 2-core machine
TEST_MAX_TOKENS = 40
OLLAMA_MODEL = "smollm2:135m"


def llm_config(provider: str = "embedded", **settings) -> LLMConfig:
    """An LLMConfig for tests: greedy decoding, short answers, overrides from settings."""
    return LLMConfig(**{"provider": provider, "temperature": 0.0, "max_tokens": TEST_MAX_TOKENS, **settings})


@pytest.fixture(scope="session")
def embedded_llm() -> EmbeddedLLM:
    """SmolLM2-135M-Instruct in process (xllamacpp), loaded once for the whole session."""
    llm = EmbeddedLLM(llm_config())
    llm.loaded
    return llm


@pytest.fixture(scope="session")
def ollama_session(embedded_llm):
    """One Ollama-compatible HTTP server for the session, serving `smollm2:135m` with the embedded model."""
    with OllamaServer(embedded_llm, models=[OLLAMA_MODEL], library=["llama3.2:1b", "qwen3:0.6b"]) as server:
        yield server


@pytest.fixture
def ollama_server(ollama_session):
    """The session's Ollama server, reset to its initial models and knobs for each test."""
    ollama_session.reset(models=[OLLAMA_MODEL])
    yield ollama_session
    ollama_session.reset(models=[OLLAMA_MODEL])
