"""Errors of the LLM backends: each message says what failed and what to do about it."""


class LLMError(Exception):
    """An LLM backend failed; the message is meant for the user."""


class LLMUnavailable(LLMError):
    """The backend cannot be reached or started."""


class ModelNotFound(LLMError):
    """The configured model is not available on the backend."""


class LLMTimeout(LLMError):
    """The backend did not answer within the configured timeout."""


class EmbeddedModelMissing(LLMUnavailable):
    """The GGUF file of the embedded model does not exist."""


class ContextOverflow(LLMError):
    """The prompt cannot fit the model's context window, even without passages."""
