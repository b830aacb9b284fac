"""The one small interface every LLM backend implements, and a conservative token estimate."""

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator

from .config import LLMConfig

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
    """

    name = "llm"

    def __init__(self, config: LLMConfig):
        self.config = config
        self.reason = f"llm.provider is {config.provider}"

    @property
    @abstractmethod
    def model(self) -> str:
        """Model name as the backend knows it."""

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

    def chat(self, messages, max_tokens: int | None = None, stream: bool = False, stop=None, temperature=None):
        """Answers a conversation: str, or an iterator of str pieces with stream=True."""
        messages = as_messages(messages)
        max_tokens = max_tokens or self.config.max_tokens
        temperature = self.config.temperature if temperature is None else temperature
        if stream:
            return self.generate(messages, max_tokens, list(stop or []), temperature)
        return self.complete(messages, max_tokens, list(stop or []), temperature)

    def complete(self, messages: list[dict], max_tokens: int, stop: list[str], temperature: float) -> str:
        """The whole answer in one request; by default the joined stream."""
        return "".join(self.generate(messages, max_tokens, stop, temperature))

    @abstractmethod
    def generate(self, messages: list[dict], max_tokens: int, stop: list[str], temperature: float) -> Iterator[str]:
        """Streams the answer's text pieces; raises LLMError subclasses."""

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
