"""Ollama backend: the official `ollama` client against an Ollama server over HTTP."""

import logging
from collections.abc import Iterator
from contextlib import closing, contextmanager

import httpx
import ollama

from ..progress import Progress
from .base import LLM
from .config import LLMConfig
from .deadline import Shared
from .errors import LLMError, LLMTimeout, LLMUnavailable, ModelNotFound

logger = logging.getLogger(__name__)

# Ollama's own default num_ctx (2048 up to 0.5, 4096 or more since): the window budgeted for when
# llm.ollama.options.num_ctx and llm.context_window are unset. Set num_ctx to use more.
DEFAULT_NUM_CTX = 2048

class PullLog(Progress):
    """Default pull progress: one log line per status change or 10% step."""

    last = None

    def pull(self, status: str, completed: int | None = None, total: int | None = None):
        step = int(10 * completed / total) if completed is not None and total else None
        if (status, step) != self.last:
            self.last = (status, step)
            logger.info("ollama pull: %s%s", status, f" {10 * step}%" if step is not None else "")


def normalize(model: str) -> str:
    """Ollama's model name: a bare name means the `latest` tag."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


class OllamaLLM(LLM):
    """Chat through an Ollama server. The model is checked (and pulled if llm.ollama.auto_pull) once,
    lazily; the context window is options.num_ctx, else llm.context_window, else the smaller of the
    model's context length (/api/show) and Ollama's default num_ctx. Tokens are estimated
    conservatively: Ollama has no tokenize endpoint. llm.ollama.timeout bounds each answer and the
    model check (a pull takes as long as it takes, each progress line within the timeout)."""

    name = "ollama"
    timeout_setting = "llm.ollama.timeout"

    def __init__(self, config: LLMConfig, progress: Progress | None = None):
        super().__init__(config)
        self.settings = config.ollama
        self.url = self.settings.base_url
        timeout = self.settings.timeout
        self.client = ollama.Client(host=self.url, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        self.progress = progress or PullLog()
        self.shown = Shared(self.show, "ollama-show")
        self.pulled = Shared(self.pull, "ollama-pull")

    @property
    def label(self) -> str:
        return f"Ollama at {self.url}"

    def unavailable(self, detail) -> LLMUnavailable:
        return LLMUnavailable(
            f"Ollama is not reachable at {self.url} ({detail}). Start it with `docker compose up -d ollama` "
            f"or `ollama serve`, or set llm.ollama.base_url / OLLAMA_BASE_URL, or llm.provider: embedded."
        )

    def not_found(self) -> ModelNotFound:
        return ModelNotFound(
            f"model {self.model!r} is not available at {self.url}. Pull it with `ollama pull {self.model}` "
            f"(in Docker: `docker compose exec ollama ollama pull {self.model}`) or set llm.ollama.auto_pull: true."
        )

    @contextmanager
    def errors(self, missing: bool = True):
        """Maps the client's exceptions to LLMError subclasses with actionable messages."""
        try:
            yield
        except ollama.ResponseError as error:
            if error.status_code == 404 and missing:
                raise self.not_found() from None
            raise LLMError(f"Ollama at {self.url} failed: {error.error}") from None
        except httpx.ConnectTimeout:
            raise self.unavailable("connection timed out") from None
        except httpx.TimeoutException:
            raise LLMTimeout(
                f"Ollama at {self.url} did not answer within {self.settings.timeout:g} s (llm.ollama.timeout). "
                "Local models can be slow: raise the timeout or use a smaller model."
            ) from None
        except (ConnectionError, httpx.ConnectError) as error:
            detail = str(error) if isinstance(error, httpx.ConnectError) and str(error) else "cannot connect"
            raise self.unavailable(detail) from None
        except httpx.HTTPError as error:
            raise LLMError(f"Ollama at {self.url}: connection failed: {error}") from None

    def ensure(self) -> dict:
        """The model's /api/show details, pulling the model first if it is missing and auto_pull is on.

        Concurrent callers share one request, each waiting at most llm.ollama.timeout: a hung server
        fails them all at once. Details are kept; a failure is not (the next call asks again)."""
        try:
            return self.shown.get(self.deadline())
        except ModelNotFound:
            if not self.settings.auto_pull:
                raise
        self.pulled.get()  # one pull for every caller
        return self.shown.get(self.deadline())

    def prepare(self):
        self.ensure()

    def show(self) -> dict:
        with self.errors():
            return dict(self.client.show(self.model).modelinfo or {})

    def pull(self, progress: Progress | None = None):
        """Pulls the model, reporting progress.pull(status, completed, total)."""
        progress = progress or self.progress
        logger.info("pulling %s from %s", self.model, self.url)
        try:
            with self.errors(missing=False):
                for part in self.client.pull(self.model, stream=True):
                    progress.pull(part.status or "", part.completed, part.total)
        except LLMError as error:
            raise ModelNotFound(f"could not pull {self.model!r} at {self.url}: {error}") from None

    def has_model(self) -> bool:
        """True if the server lists the model (raises LLMUnavailable if it does not answer)."""
        with self.errors():
            names = {normalize(item.model or "") for item in self.client.list().models}
        return normalize(self.model) in names

    @property
    def context_window(self) -> int:
        configured = self.settings.options.get("num_ctx") or self.config.context_window
        if configured:
            return int(configured)
        lengths = [value for key, value in self.ensure().items() if key.endswith(".context_length")]
        return min([DEFAULT_NUM_CTX, *[int(value) for value in lengths]])

    def options(self, max_tokens, stop, temperature, extra) -> dict:
        options = {"temperature": temperature, **self.settings.options, **extra, "num_predict": max_tokens}
        if self.config.context_window and "num_ctx" not in options:
            options["num_ctx"] = self.config.context_window
        if stop:
            options["stop"] = stop
        return options

    def call(self, messages, max_tokens, stop, temperature, extra, stream):
        return self.client.chat(
            model=self.model,
            messages=messages,
            stream=stream,
            options=self.options(max_tokens, stop, temperature, extra),
            keep_alive=self.settings.keep_alive,
        )

    def complete(self, messages, max_tokens, stop, temperature, extra) -> list[str]:
        with self.errors():
            return [self.call(messages, max_tokens, stop, temperature, extra, False).message.content or ""]

    def generate(self, messages, max_tokens, stop, temperature, extra) -> Iterator[str]:
        with self.errors(), closing(self.call(messages, max_tokens, stop, temperature, extra, True)) as parts:
            for part in parts:
                if part.message and part.message.content:
                    yield part.message.content

    def version(self) -> str | None:
        with self.errors():
            response = httpx.get(f"{self.url}/api/version", timeout=min(self.settings.timeout, 10.0))
            response.raise_for_status()
        return response.json().get("version")

    def details(self) -> dict:
        """Server version and model presence; never pulls (auto_pull waits for the first question)."""
        details = {"base_url": self.url, "version": self.version(), "model_available": self.has_model()}
        if not details["model_available"]:
            if not self.settings.auto_pull:
                raise self.not_found()
            details["context_window"] = int(self.settings.options.get("num_ctx") or self.config.context_window or DEFAULT_NUM_CTX)
            details["note"] = "the model is pulled on first use (llm.ollama.auto_pull)"
        return details

    def close(self):
        self.client.close()
