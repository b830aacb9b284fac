"""LLM backends for grounded answers: Ollama, embedded llama.cpp, OpenAI-compatible servers.

    from rag.llm import LLMConfig, create_llm
    llm = create_llm(LLMConfig(provider="auto"))
    print(llm.reason)
    for piece in llm.chat([{"role": "user", "content": "Hi"}], stream=True): ...
"""

from .base import LLM, estimate_tokens
from .config import EmbeddedConfig, LLMConfig, OllamaConfig, OpenAIConfig
from .deadline import abort_calls
from .embedded import EmbeddedLLM, default_model_path
from .errors import ContextOverflow, EmbeddedModelMissing, LLMError, LLMTimeout, LLMUnavailable, ModelNotFound
from .factory import create_llm, select, shared_llm
from .ollama import OllamaLLM

__all__ = [
    "LLM",
    "ContextOverflow",
    "EmbeddedConfig",
    "EmbeddedLLM",
    "EmbeddedModelMissing",
    "LLMConfig",
    "LLMError",
    "LLMTimeout",
    "LLMUnavailable",
    "LocalRAGGeneration",
    "ModelNotFound",
    "OllamaConfig",
    "OllamaLLM",
    "OpenAIConfig",
    "OpenAILLM",
    "abort_calls",
    "create_llm",
    "default_model_path",
    "estimate_tokens",
    "select",
    "shared_llm",
]


def __getattr__(name):
    # openai and txtai are imported only when asked for (method: rag.llm.LocalRAGGeneration)
    if name == "OpenAILLM":
        from .openai_compat import OpenAILLM

        return OpenAILLM
    if name == "LocalRAGGeneration":
        from .generation import LocalRAGGeneration

        return LocalRAGGeneration
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
