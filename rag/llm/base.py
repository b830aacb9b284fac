"""The one small interface every LLM backend implements, and a conservative token estimate."""

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from .config import LLMConfig
from .deadline import Deadline, within

# Pieces a tokenizer rarely merges across: ASCII words (with one leading space), single digits,
# whitespace runs, any other char
PIECES = re.compile(r" ?[A-Za-z]+|\d|\s+|.", re.DOTALL)

# Tokens a chat template adds per message (role markers, separators) when it cannot be measured
MESSAGE_OVERHEAD = 8


def estimate_tokens(text: str) -> int:
    """Upper estimate of the tokens of text for an unknown BPE/SentencePiece tokenizer.

    Used when the backend exposes no tokenizer (Ollama). It errs on the high side so a prompt
    never overflows: ASCII words count one token per 3 letters (real: about one per 4-5) with the
    space before them free, every digit, punctuation mark, newline and other space counts one, a
    non-ASCII char counts its UTF-8 bytes minus one (accented letters 1, CJK 2, emoji 3).
    """
    count = 0
    for piece in PIECES.findall(text):
        word = piece.lstrip(" ")
        first = word[:1] or piece[0]
        if first.isascii() and first.isalpha():
            count += (len(word) + 2) // 3
        elif first.isspace():
            count += (len(piece) + 1) // 2
        elif first.isascii():
            count += 1
        else:
            count += max(1, len(first.encode("utf-8")) - 1)
    return count


def as_messages(prompt) -> list[dict]:
    """Chat messages from a string (one user message) or a list of {role, content} dicts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": message["role"], "content": message.get("content") or ""} for message in prompt]


class LLM(ABC):
    """A chat model. Backends: OllamaLLM, EmbeddedLLM, OpenAILLM.

    `chat` returns the whole answer, or with stream=True an iterator of text pieces. Failures raise
    LLMError subclasses (LLMUnavailable, ModelNotFound, LLMTimeout, EmbeddedModelMissing).
    Backends implement the blocking `generate` (and optionally `complete`); `chat` runs them in a
    worker thread under the backend's timeout (rag.llm.deadline).
    """

    name = "llm"
    timeout_setting = ""  # the config key of `timeout`, named in LLMTimeout
    settings = None  # the backend's own section of `llm:` (llm.ollama, llm.openai, ...)

    def __init__(self, config: LLMConfig):
        self.config = config
        self.reason = f"llm.provider is {config.provider}"

    @property
    def model(self) -> str:
        """Model name as the backend knows it (its section's `model`)."""
        return self.settings.model

    @property
    @abstractmethod
    def context_window(self) -> int:
        """Tokens the model sees at once: prompt plus answer."""

    @property
    def max_tokens(self) -> int:
        """Answer budget (llm.max_tokens)."""
        return self.config.max_tokens

    @property
    def exact_tokens(self) -> bool:
        """True when count_tokens uses the model's own tokenizer, False for the estimate."""
        return False

    def count_tokens(self, text: str) -> int:
        """Tokens of text; the default is the conservative estimate."""
        return estimate_tokens(text)

    def count_messages(self, messages) -> int:
        """Tokens of a chat prompt including the chat template's role markers."""
        messages = as_messages(messages)
        return sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages) + MESSAGE_OVERHEAD

    @property
    def timeout(self) -> float | None:
        """Seconds a whole answer may take: its section's `timeout` (None: no limit)."""
        return getattr(self.settings, "timeout", None)

    def deadline(self) -> Deadline:
        """The deadline of a call starting now."""
        return Deadline(self.timeout, self.timeout_setting, self.label)

    @property
    def label(self) -> str:
        """The backend as LLM errors name it."""
        return f"the {self.name} LLM"

    def chat(self, messages, max_tokens: int | None = None, stream: bool = False, stop=None, temperature=None, top_p=None, seed=None):
        """Answers a conversation: str, or an iterator of str pieces with stream=True. top_p and seed
        are passed to the backend when given (its defaults otherwise).

        The backend's timeout is a deadline for the whole answer, counted from this call: connecting,
        the first token and every later one. Past it, LLMTimeout, even while the backend still sends.
        Closing the stream stops the generation at its next piece."""
        self.prepare()
        messages, stop = as_messages(messages), list(stop or [])
        max_tokens = max_tokens or self.config.max_tokens
        temperature = self.config.temperature if temperature is None else temperature
        extra = {key: value for key, value in (("top_p", top_p), ("seed", seed)) if value is not None}
        produce = self.generate if stream else self.complete
        pieces = within(self.deadline(), lambda: produce(messages, max_tokens, stop, temperature, extra), f"llm-{self.name}")
        return pieces if stream else "".join(pieces)

    def prepare(self):
        """Runs before the deadline of a chat starts, e.g. Ollama checks (and pulls) the model."""

    def complete(self, messages: list[dict], max_tokens: int, stop: list[str], temperature: float, extra: dict) -> Iterable[str]:
        """The whole answer, blocking, as pieces: by default the stream (which the deadline can stop);
        backends with a one-shot request return [text]."""
        return self.generate(messages, max_tokens, stop, temperature, extra)

    @abstractmethod
    def generate(self, messages: list[dict], max_tokens: int, stop: list[str], temperature: float, extra: dict) -> Iterator[str]:
        """Streams the answer's text pieces, blocking (chat runs it in a worker thread); closing it
        ends the request. Raises LLMError subclasses."""

    def status(self) -> dict:
        """Backend, model and window; never raises (problems go into `error`)."""
        status = {"backend": self.name, "model": self.model, "reason": self.reason, "max_tokens": self.max_tokens}
        try:
            status.update(self.details())
            status.setdefault("context_window", self.context_window)
            status["available"] = True
        except Exception as error:  # status reports, it does not fail
            status["available"] = False
            status["error"] = str(error)
        return status

    def details(self) -> dict:
        """Backend-specific status fields; may raise."""
        return {}

    def close(self):
        """Releases connections."""

    def __repr__(self):
        return f"{type(self).__name__}(model={self.model!r})"
