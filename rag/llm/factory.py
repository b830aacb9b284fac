"""Builds the configured LLM backend; `auto` picks Ollama when it serves the model, else embedded."""

import threading
from pathlib import Path

import httpx
import ollama

from .base import LLM
from .config import LLMConfig
from .embedded import EmbeddedLLM
from .errors import EmbeddedModelMissing
from ..progress import Progress
from .ollama import OllamaLLM, normalize

SHARED: dict[str, LLM] = {}
SHARED_LOCK = threading.Lock()


def create_llm(config: LLMConfig | None = None, root: Path | None = None, progress: Progress | None = None) -> LLM:
    """The backend llm.provider asks for; `llm.reason` says why it was chosen.

    root resolves a relative llm.embedded.model_path (the config file's folder); progress receives
    Ollama pull progress (Progress.pull).
    """
    config = config or LLMConfig()
    provider = config.provider
    if provider == "ollama":
        return OllamaLLM(config, progress)
    if provider == "embedded":
        return EmbeddedLLM(config, root)
    if provider == "openai":
        from .openai_compat import OpenAILLM  # the openai package is slow to import

        return OpenAILLM(config)
    return select(config, root, progress)


def select(config: LLMConfig, root: Path | None = None, progress: Progress | None = None) -> LLM:
    """provider auto: Ollama if it answers at base_url within probe_timeout and has the model
    (or auto_pull is on), else the embedded model. Raises EmbeddedModelMissing when neither works."""
    settings = config.ollama
    url, model = settings.base_url, settings.model
    try:
        with ollama.Client(host=url, timeout=settings.probe_timeout) as client:
            names = {normalize(item.model or "") for item in client.list().models}
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError, ValueError) as error:  # ValueError: not Ollama
        why = f"ollama at {url} not reachable ({type(error).__name__}: {error})"
    else:
        if normalize(model) in names:
            llm = OllamaLLM(config, progress)
            llm.reason = f"auto: ollama at {url} serves {model}"
            return llm
        if settings.auto_pull:
            llm = OllamaLLM(config, progress)
            llm.reason = f"auto: ollama at {url} answers; {model} is pulled on first use (auto_pull)"
            return llm
        why = f"ollama at {url} does not have {model} (`ollama pull {model}` or llm.ollama.auto_pull: true)"

    llm = EmbeddedLLM(config, root)
    try:
        llm.check()
    except EmbeddedModelMissing as error:
        raise EmbeddedModelMissing(f"no LLM available: {why}; and {error}") from None
    llm.reason = f"auto: {why}; using embedded {llm.model}"
    return llm


def shared_llm(config: LLMConfig | None = None, root: Path | None = None, progress: Progress | None = None) -> LLM:
    """One backend per distinct configuration in the process, so the answer pipeline, txtai
    pipelines and workflows share it (embedded models are shared per file anyway)."""
    config = config or LLMConfig()
    secret = config.openai.api_key.get_secret_value() if config.openai.api_key else ""
    key = f"{config.model_dump_json()}|{hash(secret)}|{root}"
    with SHARED_LOCK:
        if key not in SHARED:
            SHARED[key] = create_llm(config, root, progress)
        return SHARED[key]
