"""A txtai Generation backed by localrag's LLM, so txtai pipelines and workflows use the same model.

    from txtai.pipeline import LLM
    llm = LLM(method="rag.llm.LocalRAGGeneration")                      # localrag's config ($RAG_CONFIG, ./config.yml)
    llm = LLM(path="config.yml", method="rag.llm.LocalRAGGeneration")   # the llm: section of a config
    llm = LLM(path="embedded", method="rag.llm.LocalRAGGeneration")     # a provider, defaults otherwise
    llm = LLM(path="ollama", method="rag.llm.LocalRAGGeneration", llm={"ollama": {"model": "qwen3:0.6b"}})

In a txtai application / workflow YAML:

    llm:
      path: ${RAG_CONFIG:-config.yml}
      method: rag.llm.LocalRAGGeneration
"""

from pathlib import Path

from txtai.pipeline.llm.generation import Generation

from .base import LLM
from .config import LLMConfig
from .factory import shared_llm

PROVIDERS = ("auto", "ollama", "embedded", "openai")

# The path txtai's LLM pipeline substitutes when none is given
TXTAI_DEFAULT = "ibm-granite/granite-4.0-350m"

# Arguments txtai passes to every generation framework that do not concern us
IGNORED = ("quantize", "gpu", "model", "task")


class LocalRAGGeneration(Generation):
    """txtai Generation over a localrag LLM.

    path: a provider name (auto | ollama | embedded | openai), a config.yml path (its `llm:`
    section) or none (localrag's config); kwargs `llm`: an LLM instance, or a dict of llm-section
    fields overriding the rest.
    """

    def __init__(self, path=None, template=None, llm=None, **kwargs):
        super().__init__(path, template, **{k: v for k, v in kwargs.items() if k not in IGNORED})
        self.llm = llm if isinstance(llm, LLM) else shared_llm(*resolve(path, llm or {}))

    def stream(self, texts, maxlength, stream, stop, **kwargs):
        for text in texts:
            messages = [{"role": "user", "content": text}] if isinstance(text, str) else text
            result = self.llm.chat(messages, max_tokens=maxlength, stream=stream, stop=stop, temperature=kwargs.get("temperature"))
            if stream:
                yield from result
            else:
                yield result


def resolve(path, overrides: dict) -> tuple[LLMConfig, Path | None]:
    """LLMConfig and config folder from a provider name or a config file path. No path (txtai then
    passes its default model name) means localrag's own config: $RAG_CONFIG or ./config.yml."""
    if path in PROVIDERS:
        return LLMConfig(**{"provider": path, **overrides}), None

    from ..config import load_config, locate

    if not path or path == TXTAI_DEFAULT:
        if not locate().is_file():
            return LLMConfig(**overrides), None
        path = None
    elif not Path(path).is_file():
        raise ValueError(f"LocalRAGGeneration path {path!r}: expected {' | '.join(PROVIDERS)} or a config.yml file")
    config = load_config(path)
    data = config.llm.model_dump(exclude_unset=True)
    return LLMConfig(**merge(data, overrides)), config.root


def merge(base: dict, overrides: dict) -> dict:
    """Nested dict update."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged
