"""OpenAI-compatible backend: the `openai` client against llama.cpp's server, vLLM, LocalAI, ..."""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai

from .base import LLM, as_messages
from .config import LLMConfig
from .errors import LLMError, LLMTimeout, LLMUnavailable, ModelNotFound
from .llamacpp import LlamaCppTokenizer

# Budgeted window when the server reports none and llm.context_window is unset
DEFAULT_WINDOW = 2048


class OpenAILLM(LLM):
    """Chat through an OpenAI-compatible server. When the server is llama.cpp's, its /tokenize
    and /props give exact token counts and the real window; otherwise tokens are estimated and
    the window is /v1/models `max_model_len` (vLLM), llm.context_window, or 2048."""

    name = "openai"
    timeout_setting = "llm.openai.timeout"

    def __init__(self, config: LLMConfig):
        super().__init__(config)
        self.settings = config.openai
        self.url = self.settings.base_url.rstrip("/")
        self.key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        self.client = openai.OpenAI(base_url=self.url, api_key=self.key or "none", timeout=self.settings.timeout, max_retries=0)
        self._tokenizer = None
        self._window = None

    @property
    def label(self) -> str:
        return f"the OpenAI-compatible server at {self.url}"

    @property
    def root(self) -> str:
        """The server's root URL (base_url without /v1)."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    @property
    def tokenizer(self) -> LlamaCppTokenizer | bool:
        """llama.cpp's tokenizer when the server has one, else False (probed once)."""
        if self._tokenizer is None:
            self._tokenizer = LlamaCppTokenizer.probe(self.root, self.key) or False
        return self._tokenizer

    @property
    def exact_tokens(self) -> bool:
        return bool(self.tokenizer)

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text) if self.tokenizer else super().count_tokens(text)

    def count_messages(self, messages) -> int:
        if self.tokenizer:
            return self.tokenizer.count_messages(as_messages(messages))
        return super().count_messages(messages)

    @property
    def context_window(self) -> int:
        if self._window is None:
            detected = self.tokenizer.context_window() if self.tokenizer else None
            if detected is None:
                detected = self.max_model_len()
            configured = self.config.context_window
            self._window = min(configured, detected) if configured and detected else configured or detected or DEFAULT_WINDOW
        return self._window

    def max_model_len(self) -> int | None:
        """vLLM reports each model's window in /v1/models."""
        try:
            for item in self.client.models.list().data:
                if item.id == self.model and getattr(item, "max_model_len", None):
                    return int(item.max_model_len)
        except (openai.OpenAIError, httpx.HTTPError, ValueError, TypeError):
            return None
        return None

    @contextmanager
    def errors(self):
        try:
            yield
        except openai.APITimeoutError:
            raise LLMTimeout(
                f"the OpenAI-compatible server at {self.url} did not answer within {self.settings.timeout:g} s (llm.openai.timeout)"
            ) from None
        except openai.APIConnectionError as error:
            raise LLMUnavailable(f"the OpenAI-compatible server at {self.url} is not reachable ({error}); check llm.openai.base_url") from None
        except openai.NotFoundError as error:
            raise ModelNotFound(f"model {self.model!r} or its endpoint is not available at {self.url}: {message(error)}") from None
        except openai.AuthenticationError as error:
            raise LLMError(f"{self.url} rejected the API key (llm.openai.api_key / OPENAI_API_KEY): {message(error)}") from None
        except openai.APIStatusError as error:
            raise LLMError(f"the OpenAI-compatible server at {self.url} failed ({error.status_code}): {message(error)}") from None
        except openai.OpenAIError as error:
            raise LLMError(f"the OpenAI-compatible server at {self.url} failed: {error}") from None

    def call(self, messages, max_tokens, stop, temperature, extra, stream):
        extra = {**self.settings.options, **extra}
        return self.client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop or None,
            stream=stream,
            extra_body=extra or None,
        )

    def complete(self, messages, max_tokens, stop, temperature, extra) -> list[str]:
        with self.errors():
            return [self.call(messages, max_tokens, stop, temperature, extra, False).choices[0].message.content or ""]

    def generate(self, messages, max_tokens, stop, temperature, extra) -> Iterator[str]:
        with self.errors(), self.call(messages, max_tokens, stop, temperature, extra, True) as chunks:
            for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content

    def details(self) -> dict:
        with self.errors():
            models = [item.id for item in self.client.models.list().data]
        return {"base_url": self.url, "models": models, "exact_tokens": self.exact_tokens}

    def close(self):
        self.client.close()
        if self.tokenizer:
            self.tokenizer.close()


def message(error) -> str:
    """The server's own error message from an OpenAI-style error body."""
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        return str(inner.get("message", inner) if isinstance(inner, dict) else inner)
    return str(error)
