"""provider: auto picks Ollama when it serves the model at base_url, else the embedded model, and says why."""

import pytest

from rag.llm import EmbeddedLLM, EmbeddedModelMissing, OllamaLLM, create_llm, shared_llm
from tests.conftest_llm import OLLAMA_MODEL, llm_config
from tests.ollama_server import free_port


def auto(url, model=OLLAMA_MODEL, **settings):
    return create_llm(llm_config("auto", ollama={"base_url": url, "model": model, **settings}))


def test_ollama_with_the_model_is_chosen(ollama_server):
    llm = auto(ollama_server.url)
    assert isinstance(llm, OllamaLLM)
    assert ollama_server.url in llm.reason and OLLAMA_MODEL in llm.reason
    assert llm.chat("Say hi.", max_tokens=4).strip()
    assert llm.status()["reason"] == llm.reason


def test_ollama_down_falls_back_to_embedded():
    url = f"http://127.0.0.1:{free_port()}"
    llm = auto(url)
    assert isinstance(llm, EmbeddedLLM)
    assert f"ollama at {url} not reachable" in llm.reason
    assert "using embedded SmolLM2-135M-Instruct" in llm.reason
    assert llm.chat("Say hi.", max_tokens=4).strip()


def test_ollama_without_the_model_falls_back_unless_auto_pull(ollama_server):
    llm = auto(ollama_server.url, model="llama3.2:1b")
    assert isinstance(llm, EmbeddedLLM)
    assert "does not have llama3.2:1b" in llm.reason and "ollama pull llama3.2:1b" in llm.reason

    llm = auto(ollama_server.url, model="llama3.2:1b", auto_pull=True)
    assert isinstance(llm, OllamaLLM) and "pulled on first use" in llm.reason


def test_no_backend_at_all_explains_both(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    config = llm_config("auto", ollama={"base_url": url}, embedded={"model_path": str(tmp_path / "none.gguf")})
    with pytest.raises(EmbeddedModelMissing) as error:
        create_llm(config)
    assert url in str(error.value) and "none.gguf" in str(error.value)


def test_shared_llm_is_one_instance_per_configuration():
    config = llm_config("embedded")
    assert shared_llm(config) is shared_llm(llm_config("embedded"))
    assert shared_llm(config) is not shared_llm(llm_config("embedded", max_tokens=8))
